#pragma once

// Where an openSUSE/SLE binary RPM's source RPM lives: the source
// repository, by a URL template over the binary's SOURCERPM header
// (https://download.opensuse.org/source/tumbleweed/repo/oss/<src|nosrc>/<sourcerpm>;
// kernel flavours such as kernel-default ship a .nosrc.rpm). When the source
// repository's own rpm-md index is configured, its sha256 is attached too.

#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/result.h"
#include "rebuilder/distros/common/source_list.h"
#include "rebuilder/distros/common/template.h"

namespace kmr::suse {

// Keys: srpm ({sourcerpm}, {srpm_arch}); srpm_index (the source repository's
// rpm-md root, no placeholders: its primary gives each source RPM's sha256).
const std::vector<distros::TemplateSpec>& template_specs();

// "src" or "nosrc" from a source RPM file name ("x-1-1.1.nosrc.rpm" -> "nosrc"); "" otherwise.
std::string srpm_arch(std::string_view sourcerpm);

Result<distros::SourceFile> srpm_source(const std::string& srpm_template, const std::string& sourcerpm);

}  // namespace kmr::suse

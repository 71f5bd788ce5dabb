#pragma once

// Where a NixOS output's recipe comes from: nixpkgs at the channel's
// revision, as a tarball (https://github.com/NixOS/nixpkgs/archive/<rev>.tar.gz),
// the revision read from the channel (https://channels.nixos.org/<channel>/git-revision,
// which redirects to the release's immutable copy) or pinned in the config.
// The .drv is then instantiated from it (the binary cache does not serve it).

#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/result.h"
#include "rebuilder/distros/common/source_list.h"
#include "rebuilder/distros/common/template.h"

namespace kmr::nixos {

// Keys: nixpkgs_tarball ({rev}), git_revision ({channel}), channel and
// nixpkgs_rev (plain values, off by default).
const std::vector<distros::TemplateSpec>& template_specs();

// 40 lowercase hex digits.
bool is_git_revision(std::string_view rev);

// A channel's git-revision file: one revision, optionally followed by a newline.
Result<std::string> parse_git_revision(std::string_view text);

Result<std::string> git_revision_url(const std::string& git_revision_template, const std::string& channel);

Result<distros::SourceFile> nixpkgs_source(const std::string& tarball_template, const std::string& rev);

}  // namespace kmr::nixos

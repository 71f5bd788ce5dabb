#pragma once

// Which source URL templates each distro's repositories take, their
// real-world defaults, and the check kmrd's config runs on them. The
// per-distro expansion lives beside each distro (arch/, debian/, suse/,
// nixos/ sources.h).

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/result.h"
#include "rebuilder/distros/common/template.h"

namespace kmr::distros {


// The specs for a distro (arch, debian, proxmox, suse, nixos); empty for others.
const std::vector<TemplateSpec>& source_template_specs(std::string_view distro);

// The configured values over the defaults. Unknown keys, bad templates and
// bad plain values are errors naming `where` and the key. An empty string
// turns a default off.
Result<std::map<std::string, std::string>> resolve_source_templates(std::string_view distro,
                                                                    const std::map<std::string, std::string>& given,
                                                                    const std::string& where);

}  // namespace kmr::distros

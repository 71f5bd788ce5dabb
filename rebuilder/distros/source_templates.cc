#include "rebuilder/distros/source_templates.h"

#include "rebuilder/distros/arch/sources.h"
#include "rebuilder/distros/debian/sources.h"
#include "rebuilder/distros/nixos/sources.h"
#include "rebuilder/distros/suse/sources.h"
#include "rebuilder/distros/common/template.h"

namespace kmr::distros {

const std::vector<TemplateSpec>& source_template_specs(std::string_view distro) {
  static const std::vector<TemplateSpec> none;
  if (distro == "arch") return arch::template_specs();
  if (distro == "debian") return debian::template_specs("debian");
  if (distro == "proxmox") return debian::template_specs("proxmox");
  if (distro == "suse") return suse::template_specs();
  if (distro == "nixos") return nixos::template_specs();
  return none;
}

Result<std::map<std::string, std::string>> resolve_source_templates(std::string_view distro,
                                                                    const std::map<std::string, std::string>& given,
                                                                    const std::string& where) {
  const auto& specs = source_template_specs(distro);
  std::map<std::string, std::string> out;
  for (const auto& s : specs) out[s.key] = s.default_value;
  for (const auto& [key, value] : given) {
    const TemplateSpec* spec = nullptr;
    for (const auto& s : specs)
      if (s.key == key) spec = &s;
    if (spec == nullptr) {
      std::string known;
      for (const auto& s : specs) known += (known.empty() ? "" : ", ") + s.key;
      return malformed(where + ": unknown key \"" + key.substr(0, 40) + "\" for distro " + std::string(distro) +
                       " (known: " + (known.empty() ? "none" : known) + ")");
    }
    if (!value.empty()) {
      if (spec->is_url_template) {
        KMR_TRY(check_url_template(where + "." + key, value, spec->placeholders));
      } else if (!is_segment_value(value)) {
        return malformed(where + "." + key + ": \"" + value.substr(0, 80) + "\" is not a plain value (one URL path segment)");
      }
    }
    out[key] = value;
  }
  return out;
}

}  // namespace kmr::distros

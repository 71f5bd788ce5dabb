#include "rebuilder/distros/suse/sources.h"

namespace kmr::suse {

const std::vector<distros::TemplateSpec>& template_specs() {
  static const std::vector<distros::TemplateSpec> specs = {
      {"srpm", "https://download.opensuse.org/source/tumbleweed/repo/oss/{srpm_arch}/{sourcerpm}", {"sourcerpm", "srpm_arch"},
       true, "source RPM (.src.rpm or .nosrc.rpm) of each binary RPM"},
      {"srpm_index", "https://download.opensuse.org/source/tumbleweed/repo/oss/", {}, true,
       "the source repository's rpm-md root: the source RPM's sha256 and size"}};
  return specs;
}

std::string srpm_arch(std::string_view s) {
  if (s.ends_with(".nosrc.rpm")) return "nosrc";
  if (s.ends_with(".src.rpm")) return "src";
  return "";
}

Result<distros::SourceFile> srpm_source(const std::string& srpm_template, const std::string& sourcerpm) {
  const std::string arch = srpm_arch(sourcerpm);
  if (arch.empty() || !distros::is_plain_file_name(sourcerpm))
    return malformed("SOURCERPM \"" + sourcerpm.substr(0, 80) + "\" is not a .src.rpm or .nosrc.rpm file name");
  distros::SourceFile f;
  KMR_ASSIGN_OR_RETURN(f.url, distros::expand_template(srpm_template, {{"sourcerpm", sourcerpm}, {"srpm_arch", arch}}));
  f.name = sourcerpm;
  f.what = "source RPM " + sourcerpm;
  return f;
}

}  // namespace kmr::suse

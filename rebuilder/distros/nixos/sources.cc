#include "rebuilder/distros/nixos/sources.h"

#include <algorithm>

namespace kmr::nixos {

const std::vector<distros::TemplateSpec>& template_specs() {
  static const std::vector<distros::TemplateSpec> specs = {
      {"nixpkgs_tarball", "https://github.com/NixOS/nixpkgs/archive/{rev}.tar.gz", {"rev"}, true,
       "nixpkgs source tarball at a revision"},
      {"git_revision", "https://channels.nixos.org/{channel}/git-revision", {"channel"}, true,
       "the channel's nixpkgs revision"},
      {"channel", "", {}, false, "channel name, e.g. nixos-25.05"},
      {"nixpkgs_rev", "", {}, false, "pinned nixpkgs revision (40 hex digits), instead of the channel's"},
  };
  return specs;
}

bool is_git_revision(std::string_view rev) {
  return rev.size() == 40 && std::all_of(rev.begin(), rev.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

Result<std::string> parse_git_revision(std::string_view text) {
  if (text.size() > 41) return malformed("git-revision is longer than a revision and a newline");
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (!is_git_revision(text)) return malformed("git-revision is not 40 lowercase hex digits");
  return std::string(text);
}

Result<std::string> git_revision_url(const std::string& git_revision_template, const std::string& channel) {
  return distros::expand_template(git_revision_template, {{"channel", channel}});
}

Result<distros::SourceFile> nixpkgs_source(const std::string& tarball_template, const std::string& rev) {
  if (!is_git_revision(rev)) return malformed("nixpkgs revision \"" + rev.substr(0, 80) + "\" is not 40 lowercase hex digits");
  distros::SourceFile f;
  KMR_ASSIGN_OR_RETURN(f.url, distros::expand_template(tarball_template, {{"rev", rev}}));
  f.name = "nixpkgs-" + rev + ".tar.gz";
  f.what = "nixpkgs at " + rev;
  return f;
}

}  // namespace kmr::nixos

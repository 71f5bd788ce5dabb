#include "rebuilder/distros/arch/sources.h"

#include <cctype>

namespace kmr::arch {
namespace {

bool alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
bool alpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }

// sed -E 's/([a-zA-Z0-9]+)\+([a-zA-Z]+)/\1-\2/g'
std::string join_plus_between_words(std::string_view s) {
  std::string out;
  std::size_t pos = 0;
  while (pos < s.size()) {
    if (alnum(s[pos])) {
      std::size_t j = pos;
      while (j < s.size() && alnum(s[j])) ++j;
      if (j + 1 < s.size() && s[j] == '+' && alpha(s[j + 1])) {
        std::size_t k = j + 1;
        while (k < s.size() && alpha(s[k])) ++k;
        out.append(s.substr(pos, j - pos)).append("-").append(s.substr(j + 1, k - j - 1));
        pos = k;
        continue;
      }
      out.append(s.substr(pos, j - pos));
      pos = j;
      continue;
    }
    out += s[pos++];
  }
  return out;
}

// A name or version of a package file name: no '/', no whitespace, printable.
bool file_part(std::string_view s) { return distros::is_segment_value(s); }

}  // namespace

const std::vector<distros::TemplateSpec>& template_specs() {
  static const std::vector<distros::TemplateSpec> specs = {
      {"pkgbuild_git", "https://gitlab.archlinux.org/archlinux/packaging/packages/{project}.git", {"pkgbase", "project"},
       true, "packaging git repository (cloned at the release tag)"},
      {"archive", "https://archive.archlinux.org/packages/{c}/{name}/{file}", {"c", "name", "version", "arch", "file"},
       true, "package archive (every version, with .sig)"},
  };
  return specs;
}

std::string gitlab_project_path(std::string_view pkgbase) {
  std::string p = join_plus_between_words(pkgbase);
  std::string spelled;
  for (char c : p) spelled += c == '+' ? std::string("plus") : std::string(1, c);
  for (char& c : spelled)
    if (!alnum(c) && c != '_' && c != '-' && c != '.') c = '-';
  std::string out;
  for (std::size_t i = 0; i < spelled.size();) {
    if (spelled[i] == '_' || spelled[i] == '-') {
      std::size_t j = i;
      while (j < spelled.size() && (spelled[j] == '_' || spelled[j] == '-')) ++j;
      out += j - i >= 2 ? std::string("-") : std::string(1, spelled[i]);
      i = j;
    } else {
      out += spelled[i++];
    }
  }
  return out == "tree" ? "unix-tree" : out;
}

std::string release_tag(std::string_view version) {
  std::string tag(version);
  if (auto colon = tag.find(':'); colon != std::string::npos) tag[colon] = '-';
  for (char& c : tag)
    if (c == '~') c = '.';
  return tag;
}

Result<distros::GitSource> pkgbuild_source(const std::string& git_template, const std::string& pkgbase,
                                           const std::string& version) {
  if (!file_part(pkgbase) || !file_part(version)) return malformed("Arch pkgbase or version is not a plain name: " + pkgbase.substr(0, 80));
  distros::GitSource g;
  KMR_ASSIGN_OR_RETURN(g.url, distros::expand_template(git_template, {{"pkgbase", pkgbase}, {"project", gitlab_project_path(pkgbase)}}));
  g.ref = release_tag(version);
  g.dir = pkgbase;
  g.what = "PKGBUILD of " + pkgbase + " " + version + " (packaging repository at tag " + g.ref + ")";
  return g;
}

Result<InstalledPackage> parse_installed(std::string_view entry) {
  // name-pkgver-pkgrel-arch: the last three dash-separated fields.
  const auto a = entry.rfind('-');
  const auto r = a == std::string_view::npos || a == 0 ? std::string_view::npos : entry.rfind('-', a - 1);
  const auto v = r == std::string_view::npos || r == 0 ? std::string_view::npos : entry.rfind('-', r - 1);
  if (v == std::string_view::npos || v == 0) return malformed("installed entry \"" + std::string(entry.substr(0, 80)) + "\" is not name-pkgver-pkgrel-arch");
  InstalledPackage p{std::string(entry.substr(0, v)), std::string(entry.substr(v + 1, a - v - 1)), std::string(entry.substr(a + 1))};
  if (!file_part(p.name) || !file_part(p.version) || !file_part(p.arch) || p.version.find('-') == 0)
    return malformed("installed entry \"" + std::string(entry.substr(0, 80)) + "\" has a bad name, version or arch");
  return p;
}

Result<std::string> archive_url(const std::string& archive_template, const InstalledPackage& pkg, const std::string& extension) {
  if (!file_part(pkg.name)) return malformed("Arch package name is not a plain name");
  const std::string file = pkg.name + "-" + pkg.version + "-" + pkg.arch + extension;
  return distros::expand_template(archive_template, {{"c", pkg.name.substr(0, 1)}, {"name", pkg.name}, {"version", pkg.version},
                                                     {"arch", pkg.arch}, {"file", file}});
}

}  // namespace kmr::arch

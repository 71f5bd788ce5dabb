#pragma once

// Where an Arch package's build inputs live, from URL templates:
// - the PKGBUILD: the packaging git repository at the release tag, as
//   `pkgctl repo clone --switch <version>` gets it
//   (https://gitlab.archlinux.org/archlinux/packaging/packages/<project>.git);
// - the packages of a .BUILDINFO's `installed` list: the archive,
//   https://archive.archlinux.org/packages/<first letter>/<name>/<file>, plus `.sig`.

#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/result.h"
#include "rebuilder/distros/common/source_list.h"
#include "rebuilder/distros/common/template.h"

namespace kmr::arch {

// Keys: pkgbuild_git ({pkgbase}, {project}), archive ({c}, {name}, {version}, {arch}, {file}).
const std::vector<distros::TemplateSpec>& template_specs();

// devtools' GitLab project path for a pkgbase (gitlab_project_name_to_path):
// a '+' between words becomes '-', other '+' "plus", characters outside
// [A-Za-z0-9_.-] '-', runs of '_'/'-' one '-', and "tree" "unix-tree".
std::string gitlab_project_path(std::string_view pkgbase);

// devtools' release tag for a version (get_tag_from_pkgver): the epoch's ':'
// becomes '-', every '~' a '.'. "1:1.10.0-2" -> "1-1.10.0-2".
std::string release_tag(std::string_view version);

// The packaging repository of `pkgbase` at the tag of `version`
// ("pkgver-pkgrel", with epoch if any), cloned into the directory `pkgbase`.
Result<distros::GitSource> pkgbuild_source(const std::string& git_template, const std::string& pkgbase,
                                           const std::string& version);

// One .BUILDINFO `installed` entry, "name-pkgver-pkgrel-arch".
struct InstalledPackage {
  std::string name, version, arch;  // version = [epoch:]pkgver-pkgrel
};
Result<InstalledPackage> parse_installed(std::string_view entry);

// The archive URL of a package file (`extension` ".pkg.tar.zst" or ".pkg.tar.xz");
// its signature is the same URL plus ".sig".
Result<std::string> archive_url(const std::string& archive_template, const InstalledPackage& pkg,
                                const std::string& extension = ".pkg.tar.zst");

}  // namespace kmr::arch

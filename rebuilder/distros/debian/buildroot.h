#pragma once

// Debian/Proxmox build roots made with mmdebstrap from Debian's archive,
// holding exactly a .buildinfo's Installed-Build-Depends at the recorded
// versions, cached by their exact package set. See README.md beside this file.

#include <chrono>
#include <string>
#include <vector>

#include "rebuilder/base/result.h"
#include "rebuilder/buildenv/environment.h"
#include "rebuilder/distros/common/root_cache.h"

namespace kmr::debian {

// One Installed-Build-Depends entry. `arch` is "" when the entry carries no
// ":arch" qualifier (then the installed package may be of the build
// architecture or "all").
struct PinnedPackage {
  std::string name;
  std::string version;
  std::string arch;
  std::string spec() const { return name + (arch.empty() ? "" : ":" + arch) + "=" + version; }
};

// The pinned set from a parsed .buildinfo (BuildEnvironment::installed,
// "name[:arch]=version"). Names and versions are checked against Debian's
// syntax: each becomes an argument of apt. Sorted by name; duplicates and
// unversioned entries are errors.
Result<std::vector<PinnedPackage>> pinned_packages(const build::BuildEnvironment& env);

struct ArchiveOptions {
  // URL templates of the archive and of its security archive. {suite} is
  // the suite, {build_date} the .buildinfo's Build-Date as
  // YYYYMMDDTHHMMSSZ (for snapshot-style mirrors).
  std::string mirror = "http://deb.debian.org/debian";
  std::string security_mirror = "http://deb.debian.org/debian-security";
  std::string suite;           // "" = from base-files' version, else the host's
  std::string components = "main";
  std::string cache_dir = "/var/tmp/kmr-buildroots";
  std::chrono::milliseconds timeout{std::chrono::minutes(60)};
};

// Options with $KMR_DEBIAN_MIRROR, $KMR_DEBIAN_SECURITY_MIRROR,
// $KMR_DEBIAN_SUITE and $KMR_BUILDROOT_CACHE applied over the defaults.
ArchiveOptions archive_options_from_env();

// The suite a .buildinfo was built on: from the pinned base-files major
// version (11 bullseye, 12 bookworm, 13 trixie, 14 forky), else the host's
// VERSION_CODENAME. "" when neither says.
std::string suite_for(const std::vector<PinnedPackage>& pinned);

// The apt sources (one-line "deb URL SUITE COMPONENTS") for a suite: the
// suite, SUITE-updates and SUITE-security.
std::vector<std::string> apt_sources(const ArchiveOptions& options, const std::string& suite,
                                     const std::string& build_date);

// The Packages index URLs those sources mean for `arch`.
std::vector<std::string> packages_index_urls(const std::vector<std::string>& sources, const std::string& arch);

// The cache key: sha256 hex over the sorted pinned set, the sources, suite,
// architecture and the recipe's version.
std::string root_key(const std::vector<PinnedPackage>& pinned, const std::vector<std::string>& sources,
                     const std::string& suite, const std::string& arch);

// Compares a root's installed packages (dpkg-query on its dpkg database)
// with the pinned set. Returns one line per difference ("missing NAME=V",
// "NAME installed at V' (pinned V)", "extra NAME=V", "NAME arch A (pinned
// B)"); empty when equal.
Result<std::vector<std::string>> compare_installed(const std::string& root, const std::vector<PinnedPackage>& pinned,
                                                   const std::string& build_arch);

// The root (distros/common/root_cache.h): `missing` as "NAME=VERSION (not
// in URL, URL...)", `log` mmdebstrap's output.
using distros::BuildRoot;

// Returns the cached root for `env`'s pinned set, or makes it: mmdebstrap
// --variant=essential --include=<every pinned NAME=VERSION> from the
// archive (Release signatures checked with debian-archive-keyring), into a
// temporary directory, verified by compare_installed, renamed into
// <cache_dir>/<key>. One creator at a time per key (flock). A pinned
// version the archive lacks fills `missing` (no error); every other failure
// is an error.
Result<BuildRoot> ensure_build_root(const build::BuildEnvironment& env, const ArchiveOptions& options);

}  // namespace kmr::debian

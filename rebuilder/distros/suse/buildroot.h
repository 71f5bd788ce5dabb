#pragma once

// SUSE build roots: an rpm root (`rpm --root`) made from a signed rpm-md
// repository (download.opensuse.org's layout) at exact pinned versions, every
// package checked twice (the repomd.xml.asc -> primary -> sha256 chain, and
// `rpmkeys --checksig` with the repository's key in a private rpmdb), cached
// by the exact package set. See README.md beside this file.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/result.h"

namespace kmr::suse {

// One dependency as rpm-md and `rpm -q --requires` write it: a name (a
// capability or a file path) with an optional comparison.
struct RpmDep {
  std::string name;
  std::string flags;  // "", "EQ", "LT", "LE", "GT", "GE"
  std::string epoch, version, release;
};

// A package of primary.xml with what resolution needs.
struct RepoPackage {
  std::string name, epoch, version, release, arch;
  std::string location;  // href relative to the repository root
  std::string sha256;    // hex
  std::uint64_t size = 0;
  std::vector<RpmDep> provides, requirements;
  std::vector<std::string> files;  // the <file> entries primary lists
  std::string evr() const;         // "E:V-R" (E "0" when empty)
  std::string nevra() const;       // "N-E:V-R.A"
};

// primary.xml -> packages. Caps: 1,000,000 packages, 100,000 dependencies
// or files per package, names and versions 4096 bytes; only sha256
// checksums; locations relative, without "..", backslashes or a scheme.
Result<std::vector<RepoPackage>> parse_primary_packages(std::string_view xml, const std::string& what);

// A pinned package (OBS _buildenv <bdep>, or a resolved one).
struct PinnedRpm {
  std::string name, epoch, version, release, arch;
  std::string evr() const;
  std::string nevra() const;
};

// OBS's _buildenv (the build's <buildinfo> with one <bdep name epoch version
// release arch .../> per package of the build root): the pinned set, sorted
// by name. Names and versions are checked against rpm's syntax (each becomes
// an argument); duplicates, a bdep without version or release, and more than
// 20,000 entries are errors.
Result<std::vector<PinnedRpm>> parse_buildenv(std::string_view xml, const std::string& what);

// `rpm -qp --requires` output of a source RPM -> its BuildRequires
// (rpmlib() and other internal capabilities dropped).
Result<std::vector<RpmDep>> parse_requires(std::string_view text, const std::string& what);

// rpm's version comparison (rpmvercmp): <0, 0, >0.
int rpmvercmp(std::string_view a, std::string_view b);
// Compares "E:V-R" of two packages.
int compare_evr(std::string_view e1, std::string_view v1, std::string_view r1, std::string_view e2, std::string_view v2,
                std::string_view r2);

// Whether `p` satisfies `d` (a provide, a file it lists, or its own name;
// versions compared as rpm does).
bool satisfies(const RepoPackage& p, const RpmDep& d);

struct Resolution {
  std::vector<PinnedRpm> pinned;         // sorted by name
  std::vector<std::string> unresolved;   // requirements no package provides
};

// The closure of `wanted` over the repository: for each requirement the
// newest package of `arch` or noarch providing it (a package named as the
// requirement first), then its Requires, until nothing new. Deterministic.
Resolution resolve(const std::vector<RpmDep>& wanted, const std::vector<RepoPackage>& repo, const std::string& arch);

struct MirrorOptions {
  // The binary repository's root (repodata/, x86_64/, noarch/).
  std::string mirror = "https://download.opensuse.org/tumbleweed/repo/oss";
  // The repository's signing key(s), OpenPGP, armored (what repomd.xml.key
  // holds). Required: the mirror's own repomd.xml.key is never trusted.
  std::string key;
  // OBS's project config names what every build root holds beyond the
  // BuildRequires (Preinstall/Support); these are its stand-in.
  std::vector<std::string> base = {"aaa_base", "rpm-build"};
  std::string cache_dir = "/var/tmp/kmr-buildroots";
  std::string arch = "x86_64";
  std::string ca_file;  // extra trust anchor for the mirror's TLS ("" = system store)
  std::chrono::milliseconds timeout{std::chrono::minutes(60)};
};

// Options with $KMR_SUSE_MIRROR, $KMR_SUSE_REPO_KEY, $KMR_SUSE_BASE (space
// separated) and $KMR_BUILDROOT_CACHE applied over the defaults.
MirrorOptions mirror_options_from_env();

// What the root is made for: the source RPM (its BuildRequires) and, when
// the job carries it, OBS's _buildenv (exact versions).
struct RootRequest {
  std::string srpm;
  std::string buildenv;  // path, "" when none
};

struct BuildRoot {
  std::string path;  // "" when unavailable
  std::string key;
  bool cached = false;
  std::string pinned_from;          // "_buildenv" or "BuildRequires resolved against <primary URL>"
  std::vector<std::string> pinned;  // N-E:V-R.A, sorted
  // Pinned packages the mirror lacks, each with the URL tried.
  std::vector<std::string> missing;
  std::chrono::milliseconds duration{0};
};

// The cache key: sha256 hex over the recipe version, architecture and the
// sorted "nevra sha256" lines (not the mirror's URL: a package is its bytes).
std::string root_key(const std::string& arch, const std::vector<std::string>& nevra_sha256);

// Compares `rpm --root ROOT -qa` (gpg-pubkey entries left out) with the
// pinned set; one line per difference, empty when equal.
Result<std::vector<std::string>> compare_installed(const std::string& root, const std::vector<std::string>& pinned);

// The cached root for the request, or made: repomd.xml verified with the key
// (repomd.xml.asc), primary checked against repomd's sha256, the pinned set
// (the _buildenv's, else the BuildRequires + `base` resolved), each package
// downloaded through its primary sha256 and size, `rpmkeys --checksig` with
// the key imported into a private rpmdb (signatures required, not only
// digests), `rpm --root` install (scriptlets off) into <key>.tmp-<pid>,
// the installed set compared with the pinned one, renamed into
// <cache_dir>/suse-<key>. A pinned package the mirror lacks fills `missing`
// (no error); a bad signature or checksum is an error.
Result<BuildRoot> ensure_build_root(const RootRequest& request, const MirrorOptions& options);

}  // namespace kmr::suse

#pragma once

// Arch build roots, as archlinux-repro makes them: every package of a
// .BUILDINFO's `installed` list fetched from the archive (URL template, plus
// its detached `.sig`), each signature checked against a keyring with
// sqv/gpgv, the set installed into a fresh root with pacman (`--root`, no
// scriptlets, no hooks), the root's package database compared with the list,
// and the root cached by the exact set. See README.md beside this file.

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/result.h"
#include "rebuilder/buildenv/environment.h"
#include "rebuilder/distros/common/root_cache.h"
#include "rebuilder/distros/arch/sources.h"

namespace kmr::arch {

// The pinned set from a .BUILDINFO's `installed` entries
// (name-[epoch:]pkgver-pkgrel-arch). Names, versions and architectures are
// checked against pacman's syntax (each becomes a file name and an argument
// of pacman): names [a-z0-9@._+-] not starting with '-' or '.', pkgver
// [A-Za-z0-9._+~] with an optional numeric epoch, pkgrel digits and dots,
// arch [A-Za-z0-9_]. Sorted by name; duplicates, an empty list and more than
// 4096 entries are errors.
Result<std::vector<InstalledPackage>> pinned_packages(const std::vector<std::string>& installed);

struct RootOptions {
  // The archive's URL template (rebuilder/distros/arch/sources.h, key `archive`).
  std::string archive = "https://archive.archlinux.org/packages/{c}/{name}/{file}";
  // The packagers' keys (OpenPGP keyring, binary or armored): Debian's
  // archlinux-keyring ships Arch's.
  std::string keyring = "/usr/share/keyrings/archlinux.gpg";
  std::string cache_dir = "/var/tmp/kmr-buildroots";
  std::chrono::milliseconds timeout{std::chrono::minutes(60)};
  std::uint64_t max_package_bytes = 4ull << 30;
};

// Options with $KMR_ARCH_ARCHIVE, $KMR_ARCH_KEYRING and $KMR_BUILDROOT_CACHE
// applied over the defaults.
RootOptions root_options_from_env();

// The cache key: sha256 hex over the recipe's version, the keyring's sha256
// and the sorted pinned set. The archive URL is not part of it: packages
// are identified by name-version-arch and their signatures by the keyring.
std::string root_key(const std::vector<InstalledPackage>& pinned, const std::string& keyring_sha256);

// One package entry of pacman's local database (`local/<name>-<version>/desc`):
// "%KEY%" lines each followed by its values up to an empty line. At most
// 1 MiB, 64 sections, 4096 bytes per line; keys are upper-case letters,
// digits and '_'; a repeated key is an error. `NAME`, `VERSION` and `ARCH`
// must each be one value.
struct DescEntry {
  std::string name, version, arch;
  std::map<std::string, std::vector<std::string>> fields;
};
Result<DescEntry> parse_desc(std::string_view text);

// Compares the root's pacman database with the pinned set: every
// local/*/desc (parse_desc) and `pacman -Q --root` must agree, and equal the
// set. One line per difference ("missing N-V-A", "N installed at V' (pinned
// V)", "N arch A' (pinned A)", "extra N-V-A"); empty when equal.
Result<std::vector<std::string>> compare_installed(const std::string& root, const std::vector<InstalledPackage>& pinned);

// The root (distros/common/root_cache.h): `missing` as "N-V-A: GET URL: HTTP
// 404 ... (also tried URL)", `log` pacman's output.
using distros::BuildRoot;

// Returns the cached root for `env.installed`, or makes it: downloads each
// package (.pkg.tar.zst, else .pkg.tar.xz) and its .sig with the one HTTPS
// client, streamed to disk through SHA-256; verifies each signature with
// the keyring (archive/openpgp.h: sqv or gpgv); installs exactly that set
// with `pacman --root R --dbpath R/var/lib/pacman -U --noscriptlet` (its own
// pacman.conf: no repositories, no hooks extracted; the signatures were
// checked above, not by pacman); compares the result (compare_installed);
// renames it into <cache_dir>/<key>. One creator per key (flock). A package
// or signature the archive does not give fills `missing` (no error); a bad
// signature is a kVerificationFailed error naming the file.
Result<BuildRoot> ensure_build_root(const build::BuildEnvironment& env, const RootOptions& options);

}  // namespace kmr::arch

#pragma once

// What every distro's repository reader shares: what a reader is told about the
// configured repository (RepositorySource), and the fetch and signature
// helpers the readers use (they fetch with net::fetch_url and resolve with
// net::resolve_url_or_keep). The readers themselves live in each distro's
// folder: arch/repository.h (pacman db), debian/repository.h (apt Release +
// Packages), suse/repository.h (rpm-md), nixos/repository.h (binary cache).
// Everything they read is untrusted: sizes are capped, hashes and signatures
// checked before a package is listed.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/result.h"
#include "rebuilder/distros/common/indexed_package.h"

namespace kmr::distros {

// What a reader needs to know of a configured repository.
struct RepositorySource {
  std::string name;                        // for messages
  std::string url;                         // the index's URL (per format, see each reader)
  std::vector<std::string> trusted_keys;   // OpenPGP keyring files; Nix: "name:base64" or key files
  std::vector<std::string> architectures;  // empty: all
  std::vector<std::string> packages;       // Nix: store paths to read, or name globs
  std::string resource_class = "default";
  // The operator's filter (names, globs, architectures); empty: every package.
  std::function<bool(std::string_view name, std::string_view arch)> wants;
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};

  bool wanted(const IndexedPackage& p) const { return !wants || wants(p.name, p.arch); }
};

// Verifies a detached OpenPGP signature over `data` with `keyring` (sqv or
// gpgv); kVerificationFailed naming `what` when it does not verify.
Result<void> verify_detached_data(const std::string& keyring, const std::string& what, std::string_view data,
                                  std::string_view sig);

// 64 lowercase hex digits (a sha256 as the indexes spell it).
bool lower_hex64(std::string_view s);

// "/a/b/c" -> "/a/b/"; the URL up to and including its last '/'.
std::string url_dir(const std::string& url);
// The URL with one trailing '/'.
std::string with_slash(const std::string& url);

}  // namespace kmr::distros

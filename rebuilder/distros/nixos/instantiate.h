#pragma once

// The .drv of a NixOS output when the binary cache does not serve it
// (cache.nixos.org serves none): nixpkgs at the channel's revision (the job's
// nixpkgs-<rev>.tar.gz, sources.h) unpacked by kmr and evaluated by
// `nix-instantiate` inside kmr's sandbox, into a job-local store. The result
// must be exactly the narinfo's Deriver, whose outputs hold the shipped
// path; anything else is refused, never used instead.
//
// Why a job-local store bound at /nix rather than --store local?root=...:
// inside the sandbox the job's store *is* /nix (as for nix-realise.sh), so
// the .drv files nix-instantiate writes there are the ones the build then
// realises, at the same paths; --readonly-mode would write no .drv at all.
//
// The tarball is untrusted bytes and its expressions untrusted code: the
// unpacking refuses absolute paths, "..", links that leave the tree, hard
// links, device files and members under a symbolic link, within caps; the
// evaluation runs with no network (loopback only), none of the host's files
// but the toolchain's (no /etc/shadow, /root, /home), a memory bound and a
// wall-time limit. What the evaluation wrote is read back by kmr without
// following any symbolic link.

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/result.h"
#include "rebuilder/distros/nixos/derivation.h"

namespace kmr::nixos {

struct UnpackLimits {
  std::uint64_t max_members = 300'000;
  std::uint64_t max_member_bytes = 1ull << 30;
  std::uint64_t max_total_bytes = 4ull << 30;  // decompressed
  std::uint32_t max_depth = 64;                // path components
};

struct UnpackStats {
  std::string top;  // the one top-level directory, stripped ("nixpkgs-<rev>")
  std::uint64_t files = 0, directories = 0, symlinks = 0, bytes = 0;
};

// Unpacks a tarball whose members all sit in one top-level directory into
// `dest` (created; must not exist), that directory stripped. Errors name the
// member and the reason.
Result<UnpackStats> unpack_tree(const std::string& tarball, const std::string& dest, const UnpackLimits& limits = {});

// The attribute nixpkgs names a derivation by, from its .drv path or base
// name ("<hash>-<name>.drv"): the name split as builtins.parseDrvName does
// (the version starts at the first '-' followed by a non-letter); the
// kernel "linux-<major>.<minor>.<patch>…" is linux_<major>_<minor> (as in
// nixpkgs' all-packages.nix), anything else its package name ("hello-2.12.1"
// -> hello). Not an attribute path (empty, a non-identifier): malformed.
Result<std::string> attribute_for_deriver(std::string_view drv);

// An explicit attribute path: dot-separated Nix identifiers
// ([A-Za-z_][A-Za-z0-9_'-]*), at most 256 bytes.
Result<std::string> parse_attribute_path(std::string_view text);

// The nixpkgs tarball among a rebuild's sources: `sources` itself when it is
// a file named nixpkgs-*.tar.gz, else the one such file in the directory
// `sources`. kNotFound when there is none; more than one is malformed.
Result<std::string> find_nixpkgs_tarball(const std::string& sources);

// An explicit attribute path for a rebuild: the file `nix-attr` in the
// sources directory (one line). "" when there is none.
Result<std::string> explicit_attribute(const std::string& sources);

// Reads `rel` (relative, no "..") under `root` without following any
// symbolic link on the way, at most max_bytes.
Result<std::string> read_beneath(const std::string& root, const std::string& rel, std::uint64_t max_bytes);

struct InstantiateRequest {
  std::string tarball;                      // nixpkgs-<rev>.tar.gz
  std::string attr;                         // attribute path to instantiate
  std::string deriver;                      // the narinfo's Deriver, a full store path
  std::vector<std::string> shipped_outputs; // full store paths the .drv must produce
  std::string work_dir;                     // created; holds nixpkgs/, nixroot/, the sandbox's dirs
  std::uint64_t memory_bytes = 8ull << 30;
  std::chrono::milliseconds wall_time{std::chrono::minutes(30)};
  std::string cgroup_parent;
};

struct Instantiated {
  std::string drv;                           // == request.deriver
  std::string store_root;                    // work_dir/nixroot: the job's store is store_root/nix
  std::string tarball_sha256;
  std::string drv_sha256;
  Derivation derivation;
  std::map<std::string, Derivation> closure;  // every .drv reachable through inputDrvs, by path
  UnpackStats unpacked;
  std::chrono::milliseconds eval_time{0};
};

// Unpacks, evaluates in the sandbox, checks. The evaluation failing (or the
// sandbox being unavailable), or yielding another .drv than the Deriver, is
// kNotFound naming what failed (both paths for a mismatch): the recipe is
// unavailable. A Deriver whose outputs lack a shipped path is
// kVerificationFailed. Hostile tarball members and .drv files are malformed.
Result<Instantiated> instantiate(const InstantiateRequest& request);

}  // namespace kmr::nixos

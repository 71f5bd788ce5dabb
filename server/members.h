#pragma once

// The member index: what end users hold, mapped to the artifacts that ship it.
// From a package file kmrd has checked against its repository sha256 (a .deb,
// an Arch package, an RPM, or a narinfo with its NAR beside it), every regular
// member's sha256 as stored; for kernel modules and images also the sha256 of
// the decompressed file (.ko.zst -> .ko, vmlinux.gz -> vmlinux) and of the
// content without its signature (a module's PKCS#7 or Merkle trailer, a PE
// image's Authenticode certificate table removed as `sbattach --remove` does);
// for a Nix output its NarHash. Bounded: at most `max_hashes` entries per
// artifact (the rest is dropped and the result says so), members read into
// memory only when they are modules or images and smaller than
// `max_member_bytes`.

#include <cstdint>
#include <string>
#include <vector>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/limits.h"
#include "rebuilder/base/result.h"

namespace kmr::server {

struct MemberHash {
  std::string key;   // lowercase hex sha256
  std::string path;  // member path in the package (Nix: "<store path>/<path>", the output itself: "<store path>")
  std::string kind;  // file | decompressed | stripped | nar
};

struct MemberLimits {
  std::size_t max_hashes = 50000;                  // entries per artifact
  std::uint64_t max_member_bytes = 512ull << 20;   // a module or image read into memory (decompressed)
  Limits archive;                                  // the archive readers' own caps
};

struct MemberIndex {
  std::vector<MemberHash> hashes;
  bool truncated = false;  // max_hashes reached: later members were not indexed
};

// Indexes the package at `path`; `filename` (the artifact's file name) selects the format:
// *.deb, *.rpm, *.narinfo (its NAR at the narinfo's URL relative to `path`'s directory,
// or at `nar_path` when given; FileHash and NarHash are checked), else an Arch package
// (tar, any compression). `work_dir` holds the decompressed NAR while it is read.
Result<MemberIndex> index_package(const std::string& path, const std::string& filename, const std::string& work_dir,
                                  const MemberLimits& limits = {}, const std::string& nar_path = "");

// The hashes of one member's bytes (exposed for tests and the fuzz target): "file", then for
// a module or image "decompressed" (when compressed) and "stripped" (when signed).
std::vector<MemberHash> member_hashes(const std::string& path, Bytes data);

// True for a member path kmrd reads whole to hash its decompressed and stripped forms.
bool is_kernel_member(const std::string& path);

// A PE image without its Authenticode signature, as `sbattach --remove` writes it: the
// certificate table dropped from the end, its data directory entry zeroed. Empty when the
// image is not a signed PE file.
ByteVector strip_authenticode(Bytes image);

// Normalises what a user may type for a Nix NarHash: "sha256:<nix32>", "<nix32>" (52),
// "sha256:<hex>", "<hex>" (64) or SRI "sha256-<base64>" -> lowercase hex; "" when it is none.
std::string nar_hash_hex(const std::string& text);

}  // namespace kmr::server

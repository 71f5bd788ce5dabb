#pragma once

// A shipped or rebuilt package reduced to what the verdicts need: the file's
// hash, every member's hash (as stored and with known signatures stripped),
// the kernel modules with their trailers, modules.order and the Merkle root
// embedded in the kernel image.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "rebuilder/base/limits.h"
#include "rebuilder/base/result.h"
#include "rebuilder/kmod/image_mask.h"
#include "rebuilder/kmod/merkle.h"
#include "rebuilder/kmod/trailer.h"

namespace kmr::build {

struct MemberDigest {
  std::string type;             // file | dir | symlink | hardlink
  std::string sha256;           // content as stored (files), target (links)
  // Content with appended module signatures / Merkle proofs stripped and,
  // for digest manifests (.MTREE, .PKGINFO size, md5sums, Installed-Size,
  // rpm file digests), the per-file digests and sizes dropped: those files
  // are compared member by member anyway.
  std::string stripped_sha256;
  std::uint32_t mode = 0;
  // Kernel images (vmlinux*, vmlinuz*, bzImage, Image): the ranges a
  // build-time key changes (certificate, build-id, Authenticode, bzImage
  // CRC32) and the digest with them masked (kmod::mask_image). nullopt for
  // other members, or when the image cannot be masked (mask_error says why).
  std::optional<kmod::ImageMask> mask;
  std::string mask_error;
};

struct ModuleRecord {
  std::string member;           // archive member path
  std::string order_name;       // as modules.order lists it (kernel/x/y.ko)
  std::int64_t order_pos = -1;  // index in modules.order, -1 if not listed
  kmod::TrailerKind trailer = kmod::TrailerKind::kNone;
  std::optional<kmod::MerkleProof> proof;
  Digest256 leaf_at_order{};    // leaf over the module without trailer at order_pos
  Digest256 leaf_at_proof{};    // leaf at proof->pos (when a proof exists)
  std::string error;            // unreadable / malformed trailer
};

struct Artifact {
  std::string file;             // path as given
  std::string display_name;     // name in reports ("" = file's base name; Nix: store path base name)
  std::string format;           // pkg.tar | deb | rpm | nar
  std::string file_sha256;
  std::map<std::string, MemberDigest> members;
  std::vector<std::string> modules_order;   // entries of modules.order
  std::string modules_dir;                  // member dir holding modules.order
  std::vector<ModuleRecord> modules;
  std::string image_member;                 // member the root was read from
  std::string image_error;                  // image found but unreadable
  std::optional<kmod::MerkleRoot> image_root;  // nullopt: no image or no .module_hashes
  bool image_found = false;
  // Embedded build description (.BUILDINFO, rpm header facts...), raw text.
  std::map<std::string, std::string> build_description;
};

// Reads a package: .pkg.tar.* (Arch), .deb (Debian/Proxmox), .rpm (SUSE;
// payload through rpm2cpio), .nar/.nar.xz/.nar.zst or .narinfo (Nix; the NAR
// is found through the narinfo's URL).
Result<Artifact> read_artifact(const std::string& path, const Limits& limits = {});

// The Merkle root inside a kernel image (kmod::root_from_image: ELF vmlinux,
// x86 bzImage, compressed vmlinux); nullopt when the kernel has none.
Result<std::optional<kmod::MerkleRoot>> image_root_from_bytes(Bytes image, const std::string& what,
                                                              std::uint64_t max_bytes = 1ull << 30);

// Copies the tree `from` into `to` (created) without following any symlink:
// directories, regular files (bytes and permission bits) and symlinks as
// symlinks. A symlink must stay inside the tree: a relative target whose
// leading ".." do not climb above `from` and with no ".." after another
// component; an absolute target, one that leaves the tree, or a device,
// FIFO or socket is an error naming it. Depth and entry count are capped.
Result<void> copy_tree_no_follow(const std::string& from, const std::string& to);

// Copies one source file (a regular file, not through a symlink in its last
// component) to `to` (replaced).
Result<void> copy_file_no_follow(const std::string& from, const std::string& to);

// Copies the build output `relative` (a path beneath `root`) to `dest`
// (created exclusively, 0644). The path is resolved with
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS),
// or component by component with O_NOFOLLOW where openat2 is missing; only a
// regular file is accepted. Errors name the output.
Result<void> collect_output(const std::string& root, const std::string& relative, const std::string& dest,
                            std::uint64_t max_bytes = 64ull << 30);

}  // namespace kmr::build

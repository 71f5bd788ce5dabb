#pragma once

// The kernel's module Merkle tree (CONFIG_MODULE_HASHES, patch series v5),
// bit for bit: leaves, inner nodes, levels, the 36-byte root struct, the
// `<module>.merkle` proof file and the kernel's proof check. The scheme is
// written out byte for byte in rebuilder/kmod/README.md.

#include <cstdint>
#include <string>
#include <vector>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"
#include "rebuilder/base/sha256.h"

namespace kmr::kmod {

inline constexpr std::size_t kHashSize = 32;
inline constexpr std::size_t kRootStructSize = 36;
// Deepest tree we accept: 2^32 leaves would need positions beyond be32.
inline constexpr std::uint32_t kMaxLevels = 32;

struct MerkleRoot {
  std::uint32_t levels = 0;
  Digest256 hash{};
  bool operator==(const MerkleRoot&) const = default;
};

// Streaming leaf: SHA256(0x01 || be32(pos) || module bytes fed in chunks).
class LeafHasher {
 public:
  explicit LeafHasher(std::uint32_t pos);
  void update(Bytes chunk) { sha_.update(chunk); }
  Digest256 finish() { return sha_.finish(); }

 private:
  Sha256 sha_;
};

Digest256 leaf_hash(std::uint32_t pos, Bytes module);
// SHA256(0x02 || left || right).
Digest256 node_hash(const Digest256& left, const Digest256& right);
// 0 for n == 0, 1 for n == 1, else ceil(log2(n)).
std::uint32_t levels_for(std::uint64_t n);

// A whole tree over leaves in modules.order order.
class MerkleTree {
 public:
  explicit MerkleTree(std::vector<Digest256> leaves);

  std::uint64_t count() const { return count_; }
  MerkleRoot root() const { return root_; }
  // Sibling hashes of leaf `pos`, leaf level first (`levels` entries).
  std::vector<Digest256> siblings(std::uint32_t pos) const;
  // The whole `<module>.merkle` file the kernel appends to module `pos`.
  ByteVector proof_file(std::uint32_t pos) const;

 private:
  std::uint64_t count_;
  MerkleRoot root_;
  std::vector<std::vector<Digest256>> rows_;  // rows_[0] = leaves
};

// The 36-byte struct module_hashes_root in the target's endianness.
ByteVector root_struct_bytes(const MerkleRoot& root, bool little_endian);
// Parses the struct; rejects a wrong size or levels > kMaxLevels.
Result<MerkleRoot> parse_root_struct(Bytes bytes, bool little_endian);

// A Merkle proof as carried in a module trailer (id_type 3).
struct MerkleProof {
  std::uint32_t pos = 0;
  std::vector<Digest256> siblings;  // leaf level first
};

// Proof payload (be32 pos || siblings), i.e. the signature blob of sig_len bytes.
ByteVector proof_payload(const MerkleProof& proof);
// Parses a sig blob; its size must be 4 + 32 * levels for some levels <= kMaxLevels.
Result<MerkleProof> parse_proof_payload(Bytes blob);

// The root a proof leads to from `leaf`: at level i, bit i of pos set means
// the current node is the right child.
Digest256 proof_root(const Digest256& leaf, const MerkleProof& proof);

// The kernel's check: the proof has exactly root.levels siblings and leads
// from `leaf` to root.hash. kVerificationFailed with the reason otherwise.
Result<void> verify_proof(const Digest256& leaf, const MerkleProof& proof, const MerkleRoot& root);

}  // namespace kmr::kmod

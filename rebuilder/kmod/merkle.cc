#include "rebuilder/kmod/merkle.h"

#include "rebuilder/base/hex.h"
#include "rebuilder/kmod/trailer_format.h"

namespace kmr::kmod {

namespace {

void put_be32(ByteVector& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

}  // namespace

LeafHasher::LeafHasher(std::uint32_t pos) {
  const std::uint8_t prefix[5] = {0x01, static_cast<std::uint8_t>(pos >> 24), static_cast<std::uint8_t>(pos >> 16),
                                  static_cast<std::uint8_t>(pos >> 8), static_cast<std::uint8_t>(pos)};
  sha_.update(Bytes(prefix, sizeof prefix));
}

Digest256 leaf_hash(std::uint32_t pos, Bytes module) {
  LeafHasher h(pos);
  h.update(module);
  return h.finish();
}

Digest256 node_hash(const Digest256& left, const Digest256& right) {
  std::uint8_t buf[1 + 2 * kHashSize];
  buf[0] = 0x02;
  std::copy(left.begin(), left.end(), buf + 1);
  std::copy(right.begin(), right.end(), buf + 1 + kHashSize);
  return sha256(Bytes(buf, sizeof buf));
}

std::uint32_t levels_for(std::uint64_t n) {
  if (n <= 1) return n == 0 ? 0 : 1;
  std::uint32_t levels = 0;
  while ((std::uint64_t{1} << levels) < n) ++levels;
  return levels;
}

MerkleTree::MerkleTree(std::vector<Digest256> leaves) : count_(leaves.size()) {
  root_.levels = levels_for(count_);
  if (count_ == 0) return;  // zero root
  rows_.push_back(std::move(leaves));
  // n == 1 still has one level: the leaf paired with itself.
  while (rows_.size() <= root_.levels) {
    const auto& cur = rows_.back();
    std::vector<Digest256> next;
    next.reserve((cur.size() + 1) / 2);
    for (std::size_t i = 0; i < cur.size(); i += 2) {
      next.push_back(node_hash(cur[i], i + 1 < cur.size() ? cur[i + 1] : cur[i]));
    }
    rows_.push_back(std::move(next));
  }
  root_.hash = rows_.back().front();
}

std::vector<Digest256> MerkleTree::siblings(std::uint32_t pos) const {
  KMR_CHECK(pos < count_);
  std::vector<Digest256> out;
  std::uint64_t idx = pos;
  for (std::uint32_t level = 0; level < root_.levels; ++level) {
    const auto& row = rows_[level];
    const std::uint64_t sib = idx ^ 1;
    out.push_back(sib < row.size() ? row[sib] : row[idx]);
    idx /= 2;
  }
  return out;
}

ByteVector MerkleTree::proof_file(std::uint32_t pos) const {
  MerkleProof p{pos, siblings(pos)};
  const ByteVector payload = proof_payload(p);
  ModuleSignature sig;
  sig.id_type = kIdTypeMerkle;
  sig.sig_len = static_cast<std::uint32_t>(payload.size());
  return build_trailer(payload, sig);
}

ByteVector root_struct_bytes(const MerkleRoot& root, bool little_endian) {
  ByteVector out;
  for (int i = 0; i < 4; ++i) {
    const int shift = little_endian ? 8 * i : 24 - 8 * i;
    out.push_back(static_cast<std::uint8_t>(root.levels >> shift));
  }
  out.insert(out.end(), root.hash.begin(), root.hash.end());
  return out;
}

Result<MerkleRoot> parse_root_struct(Bytes bytes, bool little_endian) {
  if (bytes.size() != kRootStructSize) {
    return malformed("module_hashes_root: size " + std::to_string(bytes.size()) + ", expected 36");
  }
  MerkleRoot r;
  for (int i = 0; i < 4; ++i) {
    const int shift = little_endian ? 8 * i : 24 - 8 * i;
    r.levels |= static_cast<std::uint32_t>(bytes[static_cast<std::size_t>(i)]) << shift;
  }
  if (r.levels > kMaxLevels) {
    return malformed("module_hashes_root: levels " + std::to_string(r.levels) + " exceeds " + std::to_string(kMaxLevels));
  }
  std::copy(bytes.begin() + 4, bytes.end(), r.hash.begin());
  return r;
}

ByteVector proof_payload(const MerkleProof& proof) {
  ByteVector out;
  out.reserve(4 + kHashSize * proof.siblings.size());
  put_be32(out, proof.pos);
  for (const auto& s : proof.siblings) out.insert(out.end(), s.begin(), s.end());
  return out;
}

Result<MerkleProof> parse_proof_payload(Bytes blob) {
  if (blob.size() < 4 || (blob.size() - 4) % kHashSize != 0) {
    return malformed("merkle proof: size " + std::to_string(blob.size()) + " is not 4 + 32 * levels");
  }
  const std::size_t levels = (blob.size() - 4) / kHashSize;
  if (levels > kMaxLevels) {
    return malformed("merkle proof: " + std::to_string(levels) + " levels exceeds " + std::to_string(kMaxLevels));
  }
  MerkleProof p;
  p.pos = (static_cast<std::uint32_t>(blob[0]) << 24) | (static_cast<std::uint32_t>(blob[1]) << 16) |
          (static_cast<std::uint32_t>(blob[2]) << 8) | static_cast<std::uint32_t>(blob[3]);
  p.siblings.resize(levels);
  for (std::size_t i = 0; i < levels; ++i) {
    std::copy(blob.begin() + static_cast<long>(4 + i * kHashSize), blob.begin() + static_cast<long>(4 + (i + 1) * kHashSize),
              p.siblings[i].begin());
  }
  return p;
}

Digest256 proof_root(const Digest256& leaf, const MerkleProof& proof) {
  Digest256 cur = leaf;
  for (std::size_t i = 0; i < proof.siblings.size(); ++i) {
    const bool right = i < 32 && ((proof.pos >> i) & 1u) != 0;
    cur = right ? node_hash(proof.siblings[i], cur) : node_hash(cur, proof.siblings[i]);
  }
  return cur;
}

Result<void> verify_proof(const Digest256& leaf, const MerkleProof& proof, const MerkleRoot& root) {
  if (proof.siblings.size() != root.levels) {
    return Error(ErrorCode::kVerificationFailed,
                 "proof size " + std::to_string(4 + kHashSize * proof.siblings.size()) + " is not 4 + 32 * levels (levels " +
                     std::to_string(root.levels) + ")");
  }
  const Digest256 got = proof_root(leaf, proof);
  if (got != root.hash) {
    return Error(ErrorCode::kVerificationFailed,
                 "wrong root: proof for position " + std::to_string(proof.pos) + " leads to " + to_hex(got) +
                     ", expected " + to_hex(root.hash));
  }
  return kmr::ok();
}

}  // namespace kmr::kmod

#include "attest/merkle.h"

#include <bit>

namespace kmr::attest {
namespace {

Error proof_error(std::string msg) { return Error(ErrorCode::kVerificationFailed, std::move(msg)); }

}  // namespace

Hash leaf_hash(Bytes data) {
  Sha256 h;
  h.update(std::uint8_t{0x00});
  h.update(data);
  return h.finish();
}

Hash node_hash(const Hash& left, const Hash& right) {
  Sha256 h;
  h.update(std::uint8_t{0x01});
  h.update(Bytes(left.data(), left.size()));
  h.update(Bytes(right.data(), right.size()));
  return h.finish();
}

Hash empty_root() { return sha256(Bytes()); }

std::uint64_t split_point(std::uint64_t n) {
  KMR_CHECK(n >= 2);
  return std::bit_floor(n - 1);
}

Result<void> verify_inclusion(std::uint64_t index, std::uint64_t size, const Hash& leaf,
                              const std::vector<Hash>& proof, const Hash& root) {
  if (index >= size) {
    return proof_error("inclusion proof: index " + std::to_string(index) + " is not below tree size " +
                       std::to_string(size));
  }
  std::uint64_t fn = index;
  std::uint64_t sn = size - 1;
  Hash r = leaf;
  for (const Hash& p : proof) {
    if (sn == 0) return proof_error("inclusion proof: too many hashes");
    if ((fn & 1) != 0 || fn == sn) {
      r = node_hash(p, r);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = node_hash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return proof_error("inclusion proof: too few hashes");
  if (r != root) return proof_error("inclusion proof: computed root does not match the checkpoint root");
  return ok();
}

Result<void> verify_consistency(std::uint64_t size1, std::uint64_t size2, const Hash& root1,
                                const Hash& root2, const std::vector<Hash>& proof) {
  if (size1 > size2) return proof_error("consistency proof: old size is larger than new size");
  if (size1 == size2) {
    if (!proof.empty()) return proof_error("consistency proof: must be empty for equal sizes");
    if (root1 != root2) return proof_error("consistency proof: roots differ at the same size (forked log)");
    return ok();
  }
  if (size1 == 0) {
    if (!proof.empty()) return proof_error("consistency proof: must be empty when the old tree is empty");
    return ok();
  }
  if (proof.empty()) return proof_error("consistency proof: empty proof");
  std::vector<Hash> path;
  path.reserve(proof.size() + 1);
  if (std::has_single_bit(size1)) path.push_back(root1);
  path.insert(path.end(), proof.begin(), proof.end());
  std::uint64_t fn = size1 - 1;
  std::uint64_t sn = size2 - 1;
  while ((fn & 1) != 0) {
    fn >>= 1;
    sn >>= 1;
  }
  Hash fr = path[0];
  Hash sr = path[0];
  for (std::size_t i = 1; i < path.size(); ++i) {
    const Hash& c = path[i];
    if (sn == 0) return proof_error("consistency proof: too many hashes");
    if ((fn & 1) != 0 || fn == sn) {
      fr = node_hash(c, fr);
      sr = node_hash(c, sr);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      sr = node_hash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return proof_error("consistency proof: too few hashes");
  if (fr != root1) return proof_error("consistency proof: does not reproduce the old root (forked or rewritten log)");
  if (sr != root2) return proof_error("consistency proof: does not reproduce the new root");
  return ok();
}

}  // namespace kmr::attest

#pragma once

#include <cstdint>
#include <vector>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"
#include "rebuilder/base/sha256.h"

namespace kmr::attest {

using Hash = Digest256;

// RFC 6962 / 9162 hashing: leaf = SHA-256(0x00 || data),
// node = SHA-256(0x01 || left || right), empty tree = SHA-256("").
Hash leaf_hash(Bytes data);
Hash node_hash(const Hash& left, const Hash& right);
Hash empty_root();

// Largest power of two strictly smaller than n (n >= 2).
std::uint64_t split_point(std::uint64_t n);

// RFC 9162 §2.1.3.2. Errors name the reason (index out of range, wrong proof
// length, root mismatch).
Result<void> verify_inclusion(std::uint64_t index, std::uint64_t size, const Hash& leaf,
                              const std::vector<Hash>& proof, const Hash& root);

// RFC 9162 §2.1.4.2, including the edge cases: equal sizes need an empty
// proof and equal roots; old size 0 needs an empty proof.
Result<void> verify_consistency(std::uint64_t size1, std::uint64_t size2, const Hash& root1,
                                const Hash& root2, const std::vector<Hash>& proof);

}  // namespace kmr::attest

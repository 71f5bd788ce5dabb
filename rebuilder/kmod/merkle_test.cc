#include "rebuilder/kmod/merkle.h"

#include <gtest/gtest.h>

#include "rebuilder/base/hex.h"

namespace kmr::kmod {
namespace {

MerkleTree make_tree(std::uint32_t n) {
  std::vector<Digest256> leaves;
  for (std::uint32_t i = 0; i < n; ++i) leaves.push_back(leaf_hash(i, as_bytes("m" + std::to_string(i))));
  return MerkleTree(leaves);
}

TEST(MerkleTest, RootByHandForThreeLeaves) {
  // Independent of MerkleTree: the odd last node pairs with itself.
  const Digest256 a = leaf_hash(0, as_bytes("m0")), b = leaf_hash(1, as_bytes("m1")), c = leaf_hash(2, as_bytes("m2"));
  const Digest256 want = node_hash(node_hash(a, b), node_hash(c, c));
  EXPECT_EQ(make_tree(3).root().hash, want);
  // node_hash really is SHA256(0x02 || l || r).
  ByteVector buf = {0x02};
  buf.insert(buf.end(), a.begin(), a.end());
  buf.insert(buf.end(), b.begin(), b.end());
  EXPECT_EQ(node_hash(a, b), sha256(buf));
}

TEST(MerkleTest, EveryProofVerifiesAndTamperingFails) {
  for (std::uint32_t n : {1u, 2u, 5u, 17u}) {
    const MerkleTree t = make_tree(n);
    for (std::uint32_t pos = 0; pos < n; ++pos) {
      MerkleProof p{pos, t.siblings(pos)};
      const Digest256 leaf = leaf_hash(pos, as_bytes("m" + std::to_string(pos)));
      ASSERT_TRUE(verify_proof(leaf, p, t.root()).has_value()) << n << "/" << pos;
      auto parsed = parse_proof_payload(proof_payload(p));
      ASSERT_TRUE(parsed.has_value());
      EXPECT_EQ(parsed->pos, pos);
      EXPECT_EQ(parsed->siblings, p.siblings);
      // Wrong leaf content.
      EXPECT_FALSE(verify_proof(leaf_hash(pos, as_bytes("evil")), p, t.root()).has_value());
      // A flipped sibling bit.
      MerkleProof q = p;
      q.siblings[0][5] ^= 1;
      EXPECT_FALSE(verify_proof(leaf, q, t.root()).has_value());
    }
  }
}

TEST(MerkleTest, WrongLevelsAndWrongRootMessages) {
  const MerkleTree t = make_tree(4);
  MerkleProof p{1, t.siblings(1)};
  const Digest256 leaf = leaf_hash(1, as_bytes("m1"));
  MerkleRoot r = t.root();
  r.levels = 3;
  auto e = verify_proof(leaf, p, r);
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().code(), ErrorCode::kVerificationFailed);
  EXPECT_EQ(e.error().message(), "proof size 68 is not 4 + 32 * levels (levels 3)");
  MerkleRoot wrong = t.root();
  wrong.hash[0] ^= 0xff;
  auto w = verify_proof(leaf, p, wrong);
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().message(), "wrong root: proof for position 1 leads to " + to_hex(t.root().hash) + ", expected " +
                                     to_hex(wrong.hash));
}

TEST(MerkleTest, BadPayloadsAndStructs) {
  auto e = parse_proof_payload(ByteVector(4 + 31));
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().message(), "merkle proof: size 35 is not 4 + 32 * levels");
  auto e2 = parse_proof_payload(ByteVector(3));
  ASSERT_FALSE(e2.has_value());
  auto e3 = parse_proof_payload(ByteVector(4 + 32 * 33));
  ASSERT_FALSE(e3.has_value());
  EXPECT_EQ(e3.error().message(), "merkle proof: 33 levels exceeds 32");
  auto s = parse_root_struct(ByteVector(35), true);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().message(), "module_hashes_root: size 35, expected 36");
  ByteVector big(36);
  big[0] = 40;
  auto s2 = parse_root_struct(big, true);
  ASSERT_FALSE(s2.has_value());
  EXPECT_EQ(s2.error().message(), "module_hashes_root: levels 40 exceeds 32");
  auto s3 = parse_root_struct(big, false);  // 40 << 24 in big endian
  ASSERT_FALSE(s3.has_value());
}

}  // namespace
}  // namespace kmr::kmod

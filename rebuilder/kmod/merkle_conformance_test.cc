// The C++ engine against the kernel-produced conformance vectors
// (tests/conformance/merkle-vectors.json): count, levels, root, the 36-byte
// section and every listed .merkle file, byte for byte.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "rebuilder/base/hex.h"
#include "rebuilder/kmod/merkle.h"
#include "rebuilder/kmod/trailer.h"

namespace kmr::kmod {
namespace {

nlohmann::json load_vectors() {
  std::ifstream in("tests/conformance/merkle-vectors.json");
  EXPECT_TRUE(in.good()) << "vectors file missing from runfiles";
  return nlohmann::json::parse(in);
}

// The documented content rule: 'module {i} of {n}\n' repeated (i % 7 + 1) times.
std::string module_content(std::uint64_t i, std::uint64_t n) {
  std::string line = "module " + std::to_string(i) + " of " + std::to_string(n) + "\n";
  std::string out;
  for (std::uint64_t k = 0; k < i % 7 + 1; ++k) out += line;
  return out;
}

TEST(MerkleConformance, EveryVector) {
  const auto v = load_vectors();
  ASSERT_EQ(v["cases"].size(), 21u);
  int proofs_checked = 0;
  for (const auto& [key, c] : v["cases"].items()) {
    SCOPED_TRACE("case " + key);
    const std::uint64_t n = c["count"];
    std::vector<Digest256> leaves;
    for (std::uint64_t i = 0; i < n; ++i) {
      const std::string content = module_content(i, n);
      // Streamed in uneven chunks, as the tree verifier feeds it.
      LeafHasher h(static_cast<std::uint32_t>(i));
      const Bytes b = as_bytes(content);
      for (std::size_t off = 0; off < b.size(); off += 7) h.update(b.subspan(off, std::min<std::size_t>(7, b.size() - off)));
      leaves.push_back(h.finish());
      ASSERT_EQ(leaves.back(), leaf_hash(static_cast<std::uint32_t>(i), b));
    }
    const MerkleTree tree(leaves);
    EXPECT_EQ(tree.count(), n);
    EXPECT_EQ(tree.root().levels, c["levels"].get<std::uint32_t>());
    EXPECT_EQ(to_hex(tree.root().hash), c["root"].get<std::string>());
    EXPECT_EQ(to_hex(root_struct_bytes(tree.root(), true)), c["module_hashes_section_hex"].get<std::string>());
    // The section parses back, and the big-endian form differs only in levels.
    auto parsed = parse_root_struct(*from_hex(c["module_hashes_section_hex"].get<std::string>()), true);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, tree.root());
    auto be = parse_root_struct(root_struct_bytes(tree.root(), false), false);
    ASSERT_TRUE(be.has_value());
    EXPECT_EQ(*be, tree.root());
    for (const auto& [pos_s, hex] : c["proofs"].items()) {
      const auto pos = static_cast<std::uint32_t>(std::stoul(pos_s));
      const ByteVector file = tree.proof_file(pos);
      EXPECT_EQ(to_hex(file), hex.get<std::string>()) << "proof " << pos;
      // The kernel's check accepts the expected proof appended to its module.
      std::string module = module_content(pos, n);
      ByteVector whole(module.begin(), module.end());
      const auto proof_bytes = *from_hex(hex.get<std::string>());
      whole.insert(whole.end(), proof_bytes.begin(), proof_bytes.end());
      auto t = parse_trailer(whole, "mod");
      ASSERT_TRUE(t.has_value()) << t.error().to_string();
      ASSERT_EQ(t->kind, TrailerKind::kMerkle);
      EXPECT_EQ(t->content_length, module.size());
      EXPECT_EQ(t->proof->pos, pos);
      const Digest256 leaf = leaf_hash(pos, Bytes(whole.data(), t->content_length));
      EXPECT_TRUE(verify_proof(leaf, *t->proof, tree.root()).has_value());
      ++proofs_checked;
    }
  }
  EXPECT_GT(proofs_checked, 1000);
}

TEST(MerkleConformance, EmptySet) {
  const MerkleTree tree({});
  EXPECT_EQ(tree.root().levels, 0u);
  EXPECT_EQ(tree.root().hash, Digest256{});
  EXPECT_EQ(to_hex(root_struct_bytes(tree.root(), true)), std::string(72, '0'));
}

TEST(MerkleConformance, LevelsFormula) {
  EXPECT_EQ(levels_for(0), 0u);
  EXPECT_EQ(levels_for(1), 1u);
  EXPECT_EQ(levels_for(2), 1u);
  EXPECT_EQ(levels_for(3), 2u);
  EXPECT_EQ(levels_for(4), 2u);
  EXPECT_EQ(levels_for(5), 3u);
  EXPECT_EQ(levels_for(6000), 13u);
  EXPECT_EQ(levels_for(8192), 13u);
  EXPECT_EQ(levels_for(8193), 14u);
}

}  // namespace
}  // namespace kmr::kmod

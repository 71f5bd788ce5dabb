#include "rebuilder/kmod/module_tree.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "rebuilder/archive/decompress.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/kmod/test_util.h"

namespace kmr::kmod {
namespace {

using testing::sh;
using testing::tmpdir;

std::string py() { return "python3 '" + testing::python_merkle_script() + "'"; }

MerkleRoot parse_py_root(const std::string& out) {
  MerkleRoot r;
  r.levels = static_cast<std::uint32_t>(std::stoul(out.substr(0, out.find(' '))));
  const auto h = from_hex(out.substr(out.find(' ') + 1, 64));
  EXPECT_TRUE(h.has_value());
  std::copy(h->begin(), h->end(), r.hash.begin());
  return r;
}

// A build tree of n modules (sizes vary, some larger than the trailer
// window) with proofs made by the Python implementation, installed as
// <name>/lib/modules/6.99/kernel/... with the proofs appended and every
// third module zstd-compressed. Returns the root Python computed.
MerkleRoot make_installed_tree(const std::string& name, int n) {
  std::string script = "rm -rf " + name + " && mkdir -p " + name + "/build/drivers && cd " + name + "/build && : > modules.order; ";
  script += "i=0; while [ $i -lt " + std::to_string(n) + " ]; do "
            "head -c $(( (i * 7919) % 200000 + 100 )) /dev/urandom > drivers/m$i.ko; "
            "echo drivers/m$i.o >> modules.order; i=$((i+1)); done; "
            "head -c 1200000 /dev/urandom > drivers/m0.ko; ";
  script += py() + " root modules.order > ../root.txt; " + py() + " proofs modules.order ../proofs; ";
  script += "d=../lib/modules/6.99; mkdir -p $d/kernel/drivers; "
            "sed 's|^\\(.*\\)\\.o$|kernel/\\1.ko|' modules.order > $d/modules.order; "
            "i=0; while [ $i -lt " + std::to_string(n) + " ]; do "
            "cat drivers/m$i.ko ../proofs/drivers/m$i.merkle > $d/kernel/drivers/m$i.ko; "
            "if [ $((i % 3)) -eq 0 ]; then zstd -q --rm $d/kernel/drivers/m$i.ko; fi; i=$((i+1)); done";
  sh(script);
  return parse_py_root(*read_text_file(tmpdir() + "/" + name + "/root.txt", 1000));
}

std::string tree_dir(const std::string& name) { return tmpdir() + "/" + name + "/lib/modules/6.99"; }

const ModuleResult* find(const TreeReport& r, const std::string& path) {
  for (const auto& m : r.modules) {
    if (m.path == path) return &m;
  }
  return nullptr;
}

TEST(ModulesOrderTest, Lines) {
  auto r = parse_modules_order("drivers/a.o\n\nkernel/b.ko\r\nkernel/c.ko.zst\n  fs/d.o  \n", ".ko", "modules.order");
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(*r, (std::vector<std::string>{"drivers/a.ko", "kernel/b.ko", "kernel/c.ko.zst", "fs/d.ko"}));
  auto s = parse_modules_order("a.o\n", ".ko.stripped", "m");
  EXPECT_EQ(s->front(), "a.ko.stripped");
  auto e = parse_modules_order("", ".ko", "m");
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->empty());
}

TEST(ModulesOrderTest, BadLines) {
  auto err = [](std::string_view text) { return parse_modules_order(text, ".ko", "mo").error().to_string(); };
  EXPECT_EQ(err("a.o\n/abs/x.ko\n"), "mo: line 2: absolute path '/abs/x.ko'");
  EXPECT_EQ(err("../x.ko\n"), "mo: line 1: '..' in path '../x.ko'");
  EXPECT_EQ(err("a/../../x.o\n"), "mo: line 1: '..' in path 'a/../../x.o'");
  EXPECT_EQ(err("a//x.o\n"), "mo: line 1: empty or '.' component in path 'a//x.o'");
  EXPECT_EQ(err("x.c\n"), "mo: line 1: 'x.c' is not a module path (.o, .ko, .ko.zst, .ko.xz or .ko.gz)");
  EXPECT_EQ(err("x.o\ny.o\nx.ko\n"), "mo: line 3: duplicate entry 'x.ko'");
  EXPECT_EQ(err(std::string(5000, 'a') + ".o\n"), "mo: line 1: longer than 4096 bytes");
  OrderLimits small;
  small.max_entries = 2;
  EXPECT_EQ(parse_modules_order("a.o\nb.o\nc.o\n", ".ko", "mo", small).error().to_string(), "mo: more than 2 entries");
}

TEST(ModuleTreeTest, ComputeTreeAgreesWithPythonAndVectorsFromFiles) {
  // Regenerate conformance module files from the documented content rule.
  std::ifstream in("tests/conformance/merkle-vectors.json");
  const auto v = nlohmann::json::parse(in);
  for (const char* key : {"1", "7", "33", "257"}) {
    const auto& c = v["cases"][key];
    const std::uint64_t n = c["count"];
    const std::string dir = tmpdir() + "/vec" + key;
    sh("rm -rf " + dir + " && mkdir -p " + dir + "/drivers");
    std::string order;
    for (std::uint64_t i = 0; i < n; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "drivers/mod%05llu", static_cast<unsigned long long>(i));
      std::string content;
      for (std::uint64_t k = 0; k < i % 7 + 1; ++k) content += "module " + std::to_string(i) + " of " + std::to_string(n) + "\n";
      write_file_atomic(dir + "/" + name + ".ko", as_bytes(content)).value();
      order += std::string(name) + ".o\n";
    }
    write_file_atomic(dir + "/modules.order", as_bytes(order)).value();
    auto t = compute_tree(dir + "/modules.order", ".ko");
    ASSERT_TRUE(t.has_value()) << t.error().to_string();
    EXPECT_EQ(t->tree.count(), n);
    EXPECT_EQ(t->tree.root().levels, c["levels"].get<std::uint32_t>());
    EXPECT_EQ(to_hex(t->tree.root().hash), c["root"].get<std::string>());
    for (const auto& [pos, hex] : c["proofs"].items()) {
      EXPECT_EQ(to_hex(t->tree.proof_file(static_cast<std::uint32_t>(std::stoul(pos)))), hex.get<std::string>());
    }
  }
}

TEST(ModuleTreeTest, InstalledTreeVerifies) {
  const MerkleRoot root = make_installed_tree("ok", 23);
  auto rep = verify_module_tree(tree_dir("ok"), root);
  ASSERT_TRUE(rep.has_value()) << rep.error().to_string();
  EXPECT_EQ(rep->count, 23u);
  EXPECT_EQ(rep->verified, 23u);
  EXPECT_EQ(rep->failed, 0u);
  EXPECT_EQ(rep->unauthenticated, 0u);
  EXPECT_TRUE(rep->problems.empty());
  EXPECT_TRUE(rep->ok);
  // The installed (decompressed, trailer-stripped) tree yields the same root.
  auto t = compute_tree(tree_dir("ok") + "/modules.order", ".ko");
  ASSERT_TRUE(t.has_value()) << t.error().to_string();
  EXPECT_EQ(t->tree.root(), root);
  // One thread gives the same report.
  HashOptions one;
  one.threads = 1;
  auto rep1 = verify_module_tree(tree_dir("ok"), root, one);
  ASSERT_TRUE(rep1.has_value());
  EXPECT_EQ(rep1->verified, 23u);
}

TEST(ModuleTreeTest, WrongRoot) {
  MerkleRoot root = make_installed_tree("wrong", 5);
  root.hash[0] ^= 1;
  auto rep = verify_module_tree(tree_dir("wrong"), root);
  ASSERT_TRUE(rep.has_value());
  EXPECT_EQ(rep->failed, 5u);
  EXPECT_FALSE(rep->ok);
  EXPECT_EQ(rep->modules[0].reason.rfind("wrong root: proof for position 0 leads to ", 0), 0u) << rep->modules[0].reason;
}

TEST(ModuleTreeTest, ProofSizeNotMatchingLevels) {
  MerkleRoot root = make_installed_tree("levels", 5);  // levels 3
  root.levels = 4;
  auto rep = verify_module_tree(tree_dir("levels"), root);
  ASSERT_TRUE(rep.has_value());
  EXPECT_EQ(rep->failed, 5u);
  EXPECT_EQ(rep->modules[1].reason, "proof size 100 is not 4 + 32 * levels (levels 4)");
  ASSERT_FALSE(rep->problems.empty());
  EXPECT_EQ(rep->problems.back(), "modules.order lists 5 modules, which needs 3 levels; the root has 4");
}

TEST(ModuleTreeTest, ReorderedModulesOrderStillVerifies) {
  // Proof positions differ from the line index: the leaf is re-hashed at the
  // proof's position and every position is still claimed once.
  const MerkleRoot root = make_installed_tree("reorder", 6);
  sh("cd reorder/lib/modules/6.99 && (sed -n 2p modules.order; sed -n 1p modules.order; sed -n '3,$p' modules.order) > o && mv o modules.order");
  auto rep = verify_module_tree(tree_dir("reorder"), root);
  ASSERT_TRUE(rep.has_value());
  EXPECT_EQ(rep->verified, 6u);
  EXPECT_TRUE(rep->ok);
}

TEST(ModuleTreeTest, DuplicateAndOutOfRangePositions) {
  const MerkleRoot root = make_installed_tree("dup", 4);
  // m2 replaced by a copy of m1 (same proof, same position 1).
  sh("cd dup/lib/modules/6.99/kernel/drivers && cp m1.ko m2.ko");
  auto rep = verify_module_tree(tree_dir("dup"), root);
  ASSERT_TRUE(rep.has_value());
  EXPECT_EQ(find(*rep, "kernel/drivers/m2.ko")->reason, "duplicate position 1 (also claimed by kernel/drivers/m1.ko)");
  EXPECT_EQ(find(*rep, "kernel/drivers/m1.ko")->reason, "duplicate position 1 (also claimed by kernel/drivers/m2.ko)");
  EXPECT_EQ(rep->problems.front(), "2 position(s) without a verified module: 1, 2");
  EXPECT_FALSE(rep->ok);
  // Only m0, m1, m3 listed: m3 claims position 3 of 3 modules.
  sh("cd dup/lib/modules/6.99 && cp kernel/drivers/m1.ko.zst /dev/null 2>/dev/null || true; "
     "printf 'kernel/drivers/m0.ko\\nkernel/drivers/m1.ko\\nkernel/drivers/m3.ko\\n' > modules.order && rm kernel/drivers/m2.ko");
  auto rep2 = verify_module_tree(tree_dir("dup"), root);
  ASSERT_TRUE(rep2.has_value());
  EXPECT_EQ(find(*rep2, "kernel/drivers/m3.ko")->reason, "position 3 >= module count 3");
  EXPECT_FALSE(rep2->ok);
}

TEST(ModuleTreeTest, MissingUnauthenticatedUnlistedAndTruncated) {
  const MerkleRoot root = make_installed_tree("mixed", 5);
  sh("cd mixed/lib/modules/6.99/kernel/drivers && rm m4.ko && cp ../../../../../build/drivers/m2.ko m2.ko && "
     "head -c 500 /dev/urandom > extra.ko && printf 'abc~Module signature appended~\\n' >> m1.ko");
  auto rep = verify_module_tree(tree_dir("mixed"), root);
  ASSERT_TRUE(rep.has_value());
  EXPECT_EQ(find(*rep, "kernel/drivers/m4.ko")->reason, "listed in modules.order but missing");
  EXPECT_EQ(find(*rep, "kernel/drivers/m2.ko")->status, ModuleStatus::kUnauthenticated);
  EXPECT_EQ(find(*rep, "kernel/drivers/m2.ko")->reason, "no Merkle proof");
  const ModuleResult* extra = find(*rep, "kernel/drivers/extra.ko");
  ASSERT_NE(extra, nullptr);
  EXPECT_EQ(extra->reason, "not listed in modules.order");
  const ModuleResult* m1 = find(*rep, "kernel/drivers/m1.ko");
  EXPECT_EQ(m1->status, ModuleStatus::kFailed);
  EXPECT_NE(m1->reason.find("m1.ko: sig_len "), std::string::npos) << m1->reason;
  EXPECT_EQ(rep->verified, 2u);
  EXPECT_EQ(rep->unauthenticated, 2u);
  EXPECT_EQ(rep->failed, 2u);
}

TEST(ModuleTreeTest, EmptyOrderAndBadLines) {
  sh("mkdir -p empty && : > empty/modules.order && mkdir -p abs && echo /etc/passwd.ko > abs/modules.order && "
     "mkdir -p dots && echo ../x.ko > dots/modules.order");
  MerkleRoot root;
  EXPECT_EQ(verify_module_tree(tmpdir() + "/empty", root).error().to_string(),
            tmpdir() + "/empty/modules.order: empty modules.order (no modules listed)");
  EXPECT_EQ(verify_module_tree(tmpdir() + "/abs", root).error().to_string(),
            tmpdir() + "/abs/modules.order: line 1: absolute path '/etc/passwd.ko'");
  EXPECT_EQ(verify_module_tree(tmpdir() + "/dots", root).error().to_string(),
            tmpdir() + "/dots/modules.order: line 1: '..' in path '../x.ko'");
  EXPECT_EQ(verify_module_tree(tmpdir() + "/nonexistent", root).error().code(), ErrorCode::kIo);
  EXPECT_EQ(compute_tree(tmpdir() + "/dots/modules.order", ".ko").error().to_string(),
            tmpdir() + "/dots/modules.order: line 1: '..' in path '../x.ko'");
  sh("mkdir -p miss && echo a.o > miss/modules.order");
  EXPECT_EQ(compute_tree(tmpdir() + "/miss/modules.order", ".ko").error().to_string(),
            tmpdir() + "/miss/modules.order: module 'a.ko' listed but missing");
}

TEST(ModuleTreeTest, DecompressionBombIsCapped) {
  sh("mkdir -p bomb/kernel && head -c 5000000 /dev/zero | zstd -q -c > bomb/kernel/b.ko.zst && echo kernel/b.ko > bomb/modules.order");
  HashOptions o;
  o.max_module_bytes = 1 << 20;
  auto rep = verify_module_tree(tmpdir() + "/bomb", MerkleRoot{}, o);
  ASSERT_TRUE(rep.has_value());
  EXPECT_EQ(rep->modules[0].reason, tmpdir() + "/bomb/kernel/b.ko.zst: decompressed size exceeds 1048576 bytes");
}

TEST(ModuleTreeTest, InMemoryModules) {
  const MerkleRoot root = make_installed_tree("mem", 7);
  const std::string dir = tree_dir("mem");
  const std::string order = *read_text_file(dir + "/modules.order", 1 << 20);
  std::vector<ByteVector> storage;
  std::vector<std::string> paths;
  for (int i = 0; i < 7; ++i) {
    const std::string base = "kernel/drivers/m" + std::to_string(i) + ".ko";
    const std::string rel = i % 3 == 0 ? base + ".zst" : base;
    storage.push_back(*archive::decompress_all(*read_file(dir + "/" + rel, 1 << 30), 1 << 30));
    paths.push_back(rel);
  }
  std::vector<MemoryModule> mods;
  for (std::size_t i = 0; i < storage.size(); ++i) mods.push_back({paths[i], storage[i]});
  auto rep = verify_modules_in_memory(order, mods, root);
  ASSERT_TRUE(rep.has_value()) << rep.error().to_string();
  EXPECT_EQ(rep->verified, 7u);
  EXPECT_TRUE(rep->ok);
  // Drop one module, add an unlisted one, tamper with another.
  const ByteVector extra = {'x'};
  mods.pop_back();
  mods.push_back({"kernel/extra.ko", extra});
  ByteVector bad = storage[1];
  bad[3] ^= 1;
  mods[1].content = bad;
  auto rep2 = verify_modules_in_memory(order, mods, root);
  ASSERT_TRUE(rep2.has_value());
  EXPECT_EQ(rep2->verified, 5u);
  EXPECT_EQ(rep2->failed, 2u);
  EXPECT_EQ(rep2->unauthenticated, 1u);
  EXPECT_EQ(find(*rep2, "kernel/drivers/m6.ko")->reason, "listed in modules.order but missing");
  EXPECT_EQ(find(*rep2, "kernel/drivers/m1.ko")->reason.rfind("wrong root", 0), 0u);
  EXPECT_FALSE(rep2->ok);
}

TEST(ModuleTreeTest, VerifyModuleBytes) {
  std::vector<Digest256> leaves;
  const std::string a = "module a", b = "module b";
  leaves.push_back(leaf_hash(0, as_bytes(a)));
  leaves.push_back(leaf_hash(1, as_bytes(b)));
  const MerkleTree t(leaves);
  ByteVector mb(b.begin(), b.end());
  const ByteVector proof = t.proof_file(1);
  mb.insert(mb.end(), proof.begin(), proof.end());
  auto r = verify_module_bytes(mb, t.root(), "b.ko");
  EXPECT_EQ(r.status, ModuleStatus::kVerified) << r.reason;
  EXPECT_EQ(r.pos, 1u);
  mb[0] ^= 1;
  EXPECT_EQ(verify_module_bytes(mb, t.root(), "b.ko").status, ModuleStatus::kFailed);
  EXPECT_EQ(verify_module_bytes(as_bytes(a), t.root(), "a.ko").status, ModuleStatus::kUnauthenticated);
  std::string trunc = "x~Module signature appended~\n";
  auto tr = verify_module_bytes(as_bytes(trunc), t.root(), "t.ko");
  EXPECT_EQ(tr.status, ModuleStatus::kFailed);
  EXPECT_EQ(tr.reason, "t.ko: truncated trailer: 1 bytes before the signature marker, the signature struct needs 12");
}

}  // namespace
}  // namespace kmr::kmod

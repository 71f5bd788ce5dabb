// The Myers diff against GNU tools: our unified hunks must apply with
// `patch` and be exactly as minimal as GNU diff's; hex diffs and caps.
#include "rebuilder/compare/line_diff.h"

#include <gtest/gtest.h>

#include "rebuilder/base/require.h"

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "rebuilder/base/subprocess.h"

namespace kmr::compare {
namespace {

std::string tmp(const std::string& name) {
  const char* d = std::getenv("TEST_TMPDIR");
  return std::string(d != nullptr ? d : "/tmp") + "/" + name;
}

void write(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

std::string read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::size_t changed_lines(const std::string& udiff) {
  std::size_t n = 0;
  for (auto l : split_lines(udiff)) {
    if (!l.empty() && (l[0] == '+' || l[0] == '-') && l.substr(0, 3) != "---" && l.substr(0, 3) != "+++") ++n;
  }
  return n;
}

std::string random_text(std::mt19937& rng, int lines, int alphabet) {
  std::string s;
  std::uniform_int_distribution<int> d(0, alphabet - 1);
  for (int i = 0; i < lines; ++i) s += "line " + std::to_string(d(rng)) + "\n";
  return s;
}

std::string mutate(std::mt19937& rng, const std::string& text, int edits) {
  auto lines = split_lines(text);
  std::vector<std::string> v(lines.begin(), lines.end());
  std::uniform_int_distribution<int> op(0, 2);
  for (int e = 0; e < edits; ++e) {
    std::size_t at = v.empty() ? 0 : rng() % v.size();
    switch (op(rng)) {
      case 0: v.insert(v.begin() + static_cast<long>(at), "inserted " + std::to_string(rng() % 50)); break;
      case 1: if (!v.empty()) v.erase(v.begin() + static_cast<long>(at)); break;
      default: if (!v.empty()) v[at] = "changed " + std::to_string(rng() % 50);
    }
  }
  std::string out;
  for (auto& l : v) out += l + "\n";
  return out;
}

TEST(LineDiff, AppliesWithPatchAndIsAsMinimalAsGnuDiff) {
  if (!have_program("patch") || !have_program("diff")) KMR_SKIP_OR_FAIL("patch/diff not installed");
  std::mt19937 rng(42);
  DiffOptions opt;
  opt.max_output_lines = 1 << 20;
  for (int round = 0; round < 40; ++round) {
    std::string a = random_text(rng, 1 + static_cast<int>(rng() % 120), 1 + round % 9);
    std::string b = mutate(rng, a, static_cast<int>(rng() % 15));
    LineDiff d = diff_text(a, b, opt);
    ASSERT_EQ(d.identical, a == b);
    if (a == b) continue;
    write(tmp("a.txt"), a);
    write(tmp("b.txt"), b);
    write(tmp("d.patch"), "--- a.txt\n+++ b.txt\n" + d.text);
    auto p = run_subprocess({"patch", "--quiet", "-o", tmp("out.txt"), tmp("a.txt"), tmp("d.patch")});
    ASSERT_TRUE(p.has_value());
    ASSERT_TRUE(p->success()) << p->out << p->err << "\n" << d.text;
    EXPECT_EQ(read(tmp("out.txt")), b) << "round " << round;
    auto g = run_subprocess({"diff", "-U7", tmp("a.txt"), tmp("b.txt")});
    ASSERT_TRUE(g.has_value());
    EXPECT_EQ(changed_lines(d.text), changed_lines(g->out)) << "round " << round << "\nours:\n" << d.text << "\ngnu:\n" << g->out;
  }
}

TEST(LineDiff, IdenticalHeaderFormat) {
  DiffOptions opt;
  opt.context = 1;
  LineDiff d = diff_text("a\nb\nc\n", "a\nB\nc\n", opt);
  EXPECT_EQ(d.text, "@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
  d = diff_text("", "x\n", opt);
  EXPECT_EQ(d.text, "@@ -0,0 +1 @@\n+x\n");
}

TEST(LineDiff, OutputCapIsMarked) {
  DiffOptions opt;
  opt.max_output_lines = 3;
  std::string a;
  std::string b;
  for (int i = 0; i < 20; ++i) {
    a += "a" + std::to_string(i) + "\n";
    b += "b" + std::to_string(i) + "\n";
  }
  LineDiff d = diff_text(a, b, opt);
  EXPECT_EQ(d.lines_removed, 38u);
  EXPECT_NE(d.text.find("[ 38 lines removed ]"), std::string::npos);
}

TEST(LineDiff, EditDistanceCapGivesCoarseValidDiff) {
  DiffOptions opt;
  opt.max_edit_distance = 4;
  LineDiff d = diff_text("1\n2\n3\n4\n5\n6\n", "a\nb\nc\nd\ne\nf\n", opt);
  EXPECT_TRUE(d.approximate);
  EXPECT_EQ(changed_lines(d.text), 12u);
}

TEST(LineDiff, InputCap) {
  DiffOptions opt;
  opt.max_input_lines = 2;
  LineDiff d = diff_text("1\n2\n3\n", "1\n2\n4\n", opt);
  EXPECT_TRUE(d.too_much_input);
  EXPECT_TRUE(d.text.empty());
}

TEST(HexDiff, MatchesXxdLayoutAndOnlyDifferingRows) {
  ByteVector a(64);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<std::uint8_t>(i + 0x30);
  ByteVector b = a;
  b[33] = 0;
  DiffOptions opt;
  opt.context = 0;
  LineDiff d = diff_hex(Bytes(a.data(), a.size()), Bytes(b.data(), b.size()), opt);
  EXPECT_EQ(d.text,
            "@@ -3 +3 @@\n"
            "-00000020: 5051 5253 5455 5657 5859 5a5b 5c5d 5e5f  PQRSTUVWXYZ[\\]^_\n"
            "+00000020: 5000 5253 5455 5657 5859 5a5b 5c5d 5e5f  P.RSTUVWXYZ[\\]^_\n");
  if (have_program("xxd")) {
    write(tmp("a.bin"), std::string(a.begin(), a.end()));
    auto x = run_subprocess({"xxd", tmp("a.bin")});
    ASSERT_TRUE(x.has_value());
    EXPECT_EQ(split_lines(x->out)[2], hexdump_line(Bytes(a.data() + 32, 16), 32));
  }
}

TEST(HexDiff, DifferentSizesAlignOnContent) {
  ByteVector a(160, 0x41);
  ByteVector b(176, 0x41);
  for (std::size_t i = 0; i < 16; ++i) b[80 + i] = 0x42;  // one inserted row
  for (std::size_t i = 96; i < 176; ++i) b[i] = 0x41;
  DiffOptions opt;
  LineDiff d = diff_hex(Bytes(a.data(), a.size()), Bytes(b.data(), b.size()), opt);
  EXPECT_FALSE(d.identical);
  EXPECT_EQ(changed_lines(d.text), 1u) << d.text;
}

}  // namespace
}  // namespace kmr::compare

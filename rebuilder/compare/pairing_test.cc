// Pairing: kernel-release normalisation and the global assignment (checked
// against brute force; a case where greedy first-come pairing is wrong).
#include "rebuilder/compare/pairing.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

namespace kmr::compare {
namespace {

TEST(Pairing, KernelReleasesAndNormalisation) {
  std::vector<std::string> a = {"./lib/modules/6.1.0-1-amd64/kernel/x.ko", "./boot/vmlinuz-6.1.0-1-amd64",
                                "./boot/System.map-6.1.0-1-amd64", "./usr/share/doc/linux-image-6.1.0-1-amd64/copyright"};
  auto rel = kernel_releases(a);
  ASSERT_EQ(rel, std::vector<std::string>{"6.1.0-1-amd64"});
  EXPECT_EQ(normalise_path(a[0], rel), "lib/modules/<KVER>/kernel/x.ko");
  EXPECT_EQ(normalise_path(a[1], rel), "boot/vmlinuz-<KVER>");
  EXPECT_EQ(normalise_path(a[3], rel), "usr/share/doc/linux-image-<KVER>/copyright");
  auto rel2 = kernel_releases({"lib/modules/6.1.0-2-amd64/kernel/x.ko"});
  EXPECT_EQ(normalise_path("lib/modules/6.1.0-2-amd64/kernel/x.ko", rel2), normalise_path(a[0], rel));
  EXPECT_TRUE(kernel_releases({"lib/modules/extra/x.ko", "etc/config-file"}).empty());
}

TEST(Pairing, PayloadMembersPairAcrossCompression) {
  EXPECT_EQ(normalise_path("data.tar.xz", {}), "data.tar");
  EXPECT_EQ(normalise_path("data.tar.zst", {}), normalise_path("data.tar", {}));
  EXPECT_EQ(normalise_path("control.tar.gz", {}), "control.tar");
  // Only the package's own top-level payload members, and only known codecs.
  EXPECT_EQ(normalise_path("usr/share/data.tar.xz", {}), "usr/share/data.tar.xz");
  EXPECT_EQ(normalise_path("data.tar.xz.sig", {}), "data.tar.xz.sig");
  EXPECT_EQ(normalise_path("data.tar.", {}), "data.tar.");
}

double brute_force(const std::vector<std::vector<double>>& c) {
  std::vector<int> perm(c[0].size());
  std::iota(perm.begin(), perm.end(), 0);
  double best = 1e300;
  do {
    double s = 0;
    for (std::size_t i = 0; i < c.size(); ++i) s += c[i][static_cast<std::size_t>(perm[i])];
    best = std::min(best, s);
  } while (std::next_permutation(perm.begin(), perm.end()));
  return best;
}

TEST(Pairing, HungarianMatchesBruteForce) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  for (int round = 0; round < 200; ++round) {
    std::size_t rows = 1 + rng() % 6;
    std::size_t cols = rows + rng() % 2;  // rows <= cols
    std::vector<std::vector<double>> c(rows, std::vector<double>(cols));
    for (auto& r : c) for (auto& x : r) x = u(rng);
    auto as = min_cost_assignment(c);
    double got = 0;
    std::vector<bool> used(cols, false);
    for (std::size_t i = 0; i < rows; ++i) {
      ASSERT_GE(as[i], 0);
      ASSERT_FALSE(used[static_cast<std::size_t>(as[i])]);
      used[static_cast<std::size_t>(as[i])] = true;
      got += c[i][static_cast<std::size_t>(as[i])];
    }
    EXPECT_NEAR(got, brute_force(c), 1e-9) << "round " << round;
  }
}

TEST(Pairing, MoreRowsThanColumnsLeavesRowsUnassigned) {
  auto as = min_cost_assignment({{0.1}, {0.0}, {0.5}});
  EXPECT_EQ(as, (std::vector<int>{-1, 0, -1}));
}

TEST(Pairing, GlobalBeatsGreedy) {
  // Greedy row-by-row takes a0-b0 (0.9) and leaves a1-b1 (0.0): total 0.9.
  // The global optimum is a0-b1 + a1-b0 = 0.8 + 0.8 = 1.6.
  std::vector<std::vector<double>> sim = {{0.9, 0.8}, {0.8, 0.0}};
  std::vector<std::vector<double>> cost = {{0.1, 0.2}, {0.2, 1.0}};
  auto as = min_cost_assignment(cost);
  EXPECT_EQ(as, (std::vector<int>{1, 0}));
  (void)sim;
}

TEST(Pairing, SketchSimilarity) {
  std::mt19937 rng(1);
  ByteVector a(8000);
  for (auto& x : a) x = static_cast<std::uint8_t>(rng());
  ByteVector b = a;
  for (std::size_t i = 0; i < 40; ++i) b[i * 200] ^= 0xff;  // ~0.5 % bytes changed
  ByteVector c(8000);
  for (auto& x : c) x = static_cast<std::uint8_t>(rng());
  auto sa = make_sketch(Bytes(a.data(), a.size()));
  auto sb = make_sketch(Bytes(b.data(), b.size()));
  auto sc = make_sketch(Bytes(c.data(), c.size()));
  EXPECT_DOUBLE_EQ(sketch_similarity(sa, sa), 1.0);
  EXPECT_GT(sketch_similarity(sa, sb), 0.6);
  EXPECT_LT(sketch_similarity(sa, sc), 0.05);
  // Fuzzy pairs: a pairs with b, nothing pairs with c below the threshold.
  auto pairs = fuzzy_pairs({sa, sc}, {"x/a.ko", "x/c.ko"}, {sb}, {"y/b.ko"}, 0.5);
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0].a, 0u);
  EXPECT_EQ(pairs[0].b, 0u);
}

}  // namespace
}  // namespace kmr::compare

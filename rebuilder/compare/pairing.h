#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/bytes.h"

namespace kmr::compare {

// Kernel releases named by paths: lib/modules/<KVER>/, boot/vmlinuz-<KVER>,
// System.map-<KVER>, config-<KVER>, vmlinux-<KVER>, initrd.img-<KVER>.
std::vector<std::string> kernel_releases(const std::vector<std::string>& paths);
// Replaces every occurrence of a release (longest first) with "<KVER>" and
// drops a leading "./", so 6.1.0-1 and 6.1.0-2 trees pair by path. A
// top-level data.tar.<codec> / control.tar.<codec> loses its codec suffix,
// so a recompressed payload pairs with the original.
std::string normalise_path(std::string_view path, const std::vector<std::string>& releases);

// Bottom-k sketch of 8-byte shingles: an estimate of Jaccard similarity.
struct Sketch {
  std::vector<std::uint64_t> mins;  // sorted, at most k
};
Sketch make_sketch(Bytes data);
double sketch_similarity(const Sketch& a, const Sketch& b);

// Global minimum-cost assignment (Hungarian algorithm, O(n^2 m)) of rows to
// columns of a rectangular cost matrix; result[row] = column, or -1 when the
// row is left unassigned (more rows than columns).
std::vector<int> min_cost_assignment(const std::vector<std::vector<double>>& cost);

struct FuzzyPair {
  std::size_t a;
  std::size_t b;
  double similarity;
};
// Pairs leftovers by a global assignment on similarity (content sketch,
// plus a small bonus for equal base names); pairs below `threshold` dropped.
std::vector<FuzzyPair> fuzzy_pairs(const std::vector<Sketch>& a, const std::vector<std::string>& names_a,
                                   const std::vector<Sketch>& b, const std::vector<std::string>& names_b,
                                   double threshold);

}  // namespace kmr::compare

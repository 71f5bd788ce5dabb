#include "rebuilder/compare/pairing.h"

#include <algorithm>
#include <limits>
#include <set>

namespace kmr::compare {

namespace {

bool release_like(std::string_view s) {
  // Starts with a digit and contains a dot: "6.1.0-2-amd64", "6.8.9-arch1-1".
  return !s.empty() && s.front() >= '0' && s.front() <= '9' && s.find('.') != std::string_view::npos &&
         s.find('/') == std::string_view::npos;
}

std::string_view base_name(std::string_view p) {
  auto slash = p.rfind('/');
  return slash == std::string_view::npos ? p : p.substr(slash + 1);
}

}  // namespace

std::vector<std::string> kernel_releases(const std::vector<std::string>& paths) {
  std::set<std::string> found;
  static const std::string_view kPrefixes[] = {"vmlinuz-", "vmlinux-", "System.map-", "config-",
                                               "initrd.img-", "initramfs-"};
  for (const auto& p : paths) {
    std::string_view sp(p);
    auto pos = sp.find("lib/modules/");
    if (pos != std::string_view::npos) {
      std::string_view rest = sp.substr(pos + 12);
      std::string_view rel = rest.substr(0, rest.find('/'));
      if (release_like(rel)) found.emplace(rel);
    }
    std::string_view base = base_name(sp);
    for (auto prefix : kPrefixes) {
      if (base.substr(0, prefix.size()) == prefix) {
        std::string_view rel = base.substr(prefix.size());
        if (release_like(rel)) found.emplace(rel);
      }
    }
  }
  std::vector<std::string> out(found.begin(), found.end());
  std::sort(out.begin(), out.end(), [](const std::string& x, const std::string& y) {
    return x.size() != y.size() ? x.size() > y.size() : x < y;
  });
  return out;
}

std::string normalise_path(std::string_view path, const std::vector<std::string>& releases) {
  while (path.substr(0, 2) == "./") path.remove_prefix(2);
  std::string out(path);
  for (const auto& rel : releases) {
    std::size_t pos = 0;
    while ((pos = out.find(rel, pos)) != std::string::npos) {
      out.replace(pos, rel.size(), "<KVER>");
      pos += 6;
    }
  }
  // A package's own payload members pair regardless of compression
  // (data.tar.xz with data.tar, control.tar.gz with control.tar.zst).
  for (std::string_view tar : {"data.tar.", "control.tar."}) {
    if (out.rfind(tar, 0) == 0 && out.find('/') == std::string::npos) {
      static constexpr std::string_view kCodecs[] = {"gz", "xz", "zst", "bz2", "lzma", "lz4"};
      const std::string_view ext = std::string_view(out).substr(tar.size());
      for (auto c : kCodecs) {
        if (ext == c) return std::string(tar.substr(0, tar.size() - 1));
      }
    }
  }
  return out;
}

Sketch make_sketch(Bytes data) {
  constexpr std::size_t kK = 128;
  Sketch s;
  if (data.size() < 8) {
    std::uint64_t h = 1469598103934665603ull;
    for (auto c : data) h = (h ^ c) * 1099511628211ull;
    s.mins.push_back(h);
    return s;
  }
  // Hash of each 8-byte window (mixing), keep the k smallest distinct.
  std::vector<std::uint64_t> heap;  // max-heap of the k smallest
  std::set<std::uint64_t> seen;
  for (std::size_t i = 0; i + 8 <= data.size(); ++i) {
    std::uint64_t w = 0;
    for (std::size_t j = 0; j < 8; ++j) w = (w << 8) | data[i + j];
    std::uint64_t h = w * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    if (heap.size() == kK && h >= heap.front()) continue;
    if (!seen.insert(h).second) continue;
    heap.push_back(h);
    std::push_heap(heap.begin(), heap.end());
    if (heap.size() > kK) {
      std::pop_heap(heap.begin(), heap.end());
      seen.erase(heap.back());
      heap.pop_back();
    }
  }
  std::sort(heap.begin(), heap.end());
  s.mins = std::move(heap);
  return s;
}

double sketch_similarity(const Sketch& a, const Sketch& b) {
  if (a.mins.empty() || b.mins.empty()) return 0;
  // Bottom-k of the union, count those present in both.
  std::size_t k = std::max(a.mins.size(), b.mins.size());
  std::size_t i = 0;
  std::size_t j = 0;
  std::size_t taken = 0;
  std::size_t both = 0;
  while (taken < k && (i < a.mins.size() || j < b.mins.size())) {
    if (j >= b.mins.size() || (i < a.mins.size() && a.mins[i] < b.mins[j])) {
      ++i;
    } else if (i >= a.mins.size() || b.mins[j] < a.mins[i]) {
      ++j;
    } else {
      ++both;
      ++i;
      ++j;
    }
    ++taken;
  }
  return taken == 0 ? 0 : static_cast<double>(both) / static_cast<double>(taken);
}

std::vector<int> min_cost_assignment(const std::vector<std::vector<double>>& cost_in) {
  std::size_t rows = cost_in.size();
  if (rows == 0) return {};
  std::size_t cols = cost_in[0].size();
  bool transposed = rows > cols;
  std::size_t n = transposed ? cols : rows;  // n <= m
  std::size_t m = transposed ? rows : cols;
  auto cost = [&](std::size_t i, std::size_t j) {  // 1-based
    return transposed ? cost_in[j - 1][i - 1] : cost_in[i - 1][j - 1];
  };
  const double kInf = std::numeric_limits<double>::infinity();
  std::vector<double> u(n + 1, 0), v(m + 1, 0);
  std::vector<std::size_t> p(m + 1, 0), way(m + 1, 0);
  for (std::size_t i = 1; i <= n; ++i) {
    p[0] = i;
    std::size_t j0 = 0;
    std::vector<double> minv(m + 1, kInf);
    std::vector<bool> used(m + 1, false);
    do {
      used[j0] = true;
      std::size_t i0 = p[j0];
      double delta = kInf;
      std::size_t j1 = 0;
      for (std::size_t j = 1; j <= m; ++j) {
        if (used[j]) continue;
        double cur = cost(i0, j) - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (std::size_t j = 0; j <= m; ++j) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] != 0);
    do {
      std::size_t j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0 != 0);
  }
  std::vector<int> result(rows, -1);
  for (std::size_t j = 1; j <= m; ++j) {
    if (p[j] == 0) continue;
    if (transposed) {
      result[j - 1] = static_cast<int>(p[j] - 1);
    } else {
      result[p[j] - 1] = static_cast<int>(j - 1);
    }
  }
  return result;
}

std::vector<FuzzyPair> fuzzy_pairs(const std::vector<Sketch>& a, const std::vector<std::string>& names_a,
                                   const std::vector<Sketch>& b, const std::vector<std::string>& names_b,
                                   double threshold) {
  std::vector<FuzzyPair> out;
  if (a.empty() || b.empty()) return out;
  std::vector<std::vector<double>> sim(a.size(), std::vector<double>(b.size(), 0));
  std::vector<std::vector<double>> cost(a.size(), std::vector<double>(b.size(), 0));
  for (std::size_t i = 0; i < a.size(); ++i) {
    for (std::size_t j = 0; j < b.size(); ++j) {
      double s = sketch_similarity(a[i], b[j]);
      if (base_name(names_a[i]) == base_name(names_b[j])) s = std::min(1.0, s + 0.1);
      sim[i][j] = s;
      cost[i][j] = 1.0 - s;
    }
  }
  std::vector<int> assign = min_cost_assignment(cost);
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (assign[i] < 0) continue;
    auto j = static_cast<std::size_t>(assign[i]);
    if (sim[i][j] >= threshold) out.push_back(FuzzyPair{i, j, sim[i][j]});
  }
  return out;
}

}  // namespace kmr::compare

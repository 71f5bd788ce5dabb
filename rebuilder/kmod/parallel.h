#pragma once

// Runs fn(i) for every i in [0, n) on up to `threads` threads (0: one per
// core, at most 64), handing out indexes one at a time so a few large items
// do not leave a core idle.

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace kmr::kmod {

template <typename Fn>
void parallel_for(std::size_t n, unsigned threads, Fn fn) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<unsigned>(std::min<std::size_t>(std::min(threads, 64u), std::max<std::size_t>(n, 1)));
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (;;) {
      const std::size_t i = next.fetch_add(1);
      if (i >= n) return;
      fn(i);
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
}

}  // namespace kmr::kmod

#pragma once

// A fixed set of threads for work that may block (SQLite, blob reads,
// signing, fsync), fed by a bounded queue. When every thread is busy and the
// queue is full, try_submit() refuses instead of queueing without end; the
// HTTP layer answers 503 with Retry-After.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kmr::server {

class BlockingPool {
 public:
  // threads <= 0: default_threads(). queue_limit: tasks waiting beyond the running ones.
  BlockingPool(int threads, std::size_t queue_limit);
  ~BlockingPool();  // runs what is queued, then joins
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  // False (task dropped, not run) when the queue is full or the pool is stopping.
  bool try_submit(std::function<void()> task);
  void stop();  // stops accepting; queued tasks still run

  int threads() const { return static_cast<int>(threads_.size()); }
  std::size_t queue_limit() const { return queue_limit_; }
  struct Stats {
    std::size_t queued = 0, running = 0;
    std::uint64_t done = 0, refused = 0;
  };
  Stats stats() const;

  // Four per core, at least 8: SQLite reads are short, fsyncs and blob reads wait on the disk.
  static int default_threads();

 private:
  void loop();

  const std::size_t queue_limit_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::size_t running_ = 0;
  std::uint64_t done_ = 0, refused_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace kmr::server

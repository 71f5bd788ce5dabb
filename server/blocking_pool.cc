#include "server/blocking_pool.h"

#include <algorithm>
#include <exception>

#include <spdlog/spdlog.h>

namespace kmr::server {

int BlockingPool::default_threads() {
  unsigned cores = std::thread::hardware_concurrency();
  return static_cast<int>(std::clamp<unsigned>(4 * (cores ? cores : 1), 8, 64));
}

BlockingPool::BlockingPool(int threads, std::size_t queue_limit) : queue_limit_(queue_limit) {
  int n = threads > 0 ? threads : default_threads();
  threads_.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) threads_.emplace_back([this] { loop(); });
}

BlockingPool::~BlockingPool() {
  stop();
  for (auto& t : threads_) t.join();
}

void BlockingPool::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

bool BlockingPool::try_submit(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    // Idle threads take tasks at once; the limit counts what waits beyond them.
    std::size_t idle = threads_.size() - std::min(threads_.size(), running_);
    if (stopping_ || queue_.size() >= queue_limit_ + idle) {
      ++refused_;
      return false;
    }
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
  return true;
}

BlockingPool::Stats BlockingPool::stats() const {
  std::lock_guard lock(mu_);
  return Stats{queue_.size(), running_, done_, refused_};
}

void BlockingPool::loop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    try {
      task();
    } catch (const std::exception& e) {
      spdlog::error("blocking task: {}", e.what());
    } catch (...) {
      spdlog::error("blocking task: unknown exception");
    }
    std::lock_guard lock(mu_);
    --running_;
    ++done_;
  }
}

}  // namespace kmr::server

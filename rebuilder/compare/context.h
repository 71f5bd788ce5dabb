#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/limits.h"
#include "rebuilder/base/result.h"
#include "rebuilder/compare/line_diff.h"

namespace kmr::compare {

struct Options {
  Limits limits;                       // container depth, member bytes, ratio, report bytes, wall time
  DiffOptions diff;
  bool fuzzy = true;                   // global similarity pairing of leftover members
  double fuzzy_threshold = 0.5;        // minimum similarity (0..1) for a fuzzy pair
  std::size_t fuzzy_max_members = 400; // per side; beyond it fuzzy pairing is skipped (noted)
  unsigned jobs = 2;                   // threads comparing independent members
  bool use_objdump = true;             // disassemble differing code sections when installed
  std::uint64_t retain_bytes = 256ull << 20;  // member bytes kept per archive side in pass one
};

// Shared state of one comparison run: limits, deadline, report budget,
// worker slots and the run's temporary directory.
class Context {
 public:
  explicit Context(Options options);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const Options& options() const { return options_; }

  // True once the wall-time limit has passed (sticky).
  bool timed_out();
  std::chrono::milliseconds remaining() const;

  // Reserves `bytes` of the total report budget; false when exhausted.
  bool charge_report(std::size_t bytes);

  // Extra worker threads (jobs - 1 in total across the run).
  bool try_acquire_worker();
  void release_worker();

  // Writes bytes to a fresh file in the run's temporary directory (created
  // on first use, removed by the destructor and by the SIGTERM/SIGINT
  // handler). Returns its path.
  Result<std::string> write_temp(Bytes data, const std::string& stem);
  void remove_temp(const std::string& path);

 private:
  Options options_;
  std::chrono::steady_clock::time_point deadline_;
  std::atomic<bool> timed_out_{false};
  std::atomic<std::uint64_t> report_bytes_{0};
  std::atomic<int> free_workers_;
  std::mutex temp_mu_;
  std::string temp_dir_;
  std::uint64_t temp_counter_ = 0;
};

// Installs SIGTERM/SIGINT/SIGHUP handlers that remove every live temporary
// file of every Context, then die from the signal. Idempotent.
void install_cleanup_handlers();

}  // namespace kmr::compare

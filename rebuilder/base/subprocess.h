#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "rebuilder/base/result.h"

namespace kmr {

struct SubprocessOptions {
  // Wall-time limit; the whole process group is killed (SIGTERM, then
  // SIGKILL after `kill_grace`) when it runs out.
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  std::chrono::milliseconds kill_grace{std::chrono::seconds(2)};
  // Captured bytes kept per stream. Beyond it the middle is dropped: the
  // first and last halves are kept around a truncation marker.
  std::size_t output_cap = 16 << 20;
  std::optional<std::string> cwd;
  // Replaces the environment when set ("KEY=VALUE").
  std::optional<std::vector<std::string>> env;
  std::string stdin_data;
  // Merge stderr into stdout (one interleaved log).
  bool merge_stderr = false;
  // Every other inherited descriptor is closed at exec (close_range). These
  // descriptors of the caller are passed on as 3, 4, ... in this order.
  std::vector<int> pass_fds;
  // Before exec, the child writes its pid into each of these files (cgroup
  // `cgroup.procs`); failing to is an error of run_subprocess.
  std::vector<std::string> join_cgroup_procs;
  // Before exec (after joining the cgroups), the child drops to this host
  // uid/gid with no supplementary groups and no capabilities, and sets
  // no_new_privs. Needs CAP_SETUID/CAP_SETGID.
  struct Credentials {
    std::uint32_t uid;
    std::uint32_t gid;
  };
  std::optional<Credentials> run_as;
  // Called every `watchdog_interval` while the child runs; a non-empty
  // reason kills the process group (and `on_kill`, e.g. a cgroup kill) and
  // is reported in SubprocessResult::killed_reason.
  std::function<std::string()> watchdog;
  std::chrono::milliseconds watchdog_interval{std::chrono::seconds(2)};
  std::function<void()> on_kill;
};

struct SubprocessResult {
  int exit_code = -1;       // valid when !signaled
  int term_signal = 0;      // valid when signaled
  bool signaled = false;
  bool timed_out = false;
  std::string killed_reason;  // set when the watchdog stopped the child
  std::string out;
  std::string err;
  bool out_truncated = false;
  bool err_truncated = false;
  std::chrono::milliseconds elapsed{0};

  bool success() const { return !signaled && !timed_out && killed_reason.empty() && exit_code == 0; }
  // "exit 3", "killed by signal 9", "timed out after 1000 ms", or the
  // watchdog's reason.
  std::string describe() const;
};

// Runs argv[0] (PATH lookup) in its own process group with captured output.
// Errors only when the process cannot be started; a non-zero exit is a
// result, not an error.
Result<SubprocessResult> run_subprocess(const std::vector<std::string>& argv,
                                        const SubprocessOptions& options = {});

// True if `name` is an executable on PATH.
bool have_program(const std::string& name);

// Keeps at most `cap` bytes of a stream: head and tail around a marker.
class CappedBuffer {
 public:
  explicit CappedBuffer(std::size_t cap) : cap_(cap) {}
  void append(const char* data, std::size_t n);
  bool truncated() const { return dropped_ > 0; }
  std::string take();

 private:
  std::size_t cap_;
  std::string head_;
  std::string tail_;  // ring, logically ordered by tail_start_
  std::size_t tail_start_ = 0;
  std::size_t dropped_ = 0;
};

}  // namespace kmr

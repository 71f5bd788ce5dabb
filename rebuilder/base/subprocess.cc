#include "rebuilder/base/subprocess.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdlib>

namespace kmr {
namespace {

using Clock = std::chrono::steady_clock;

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

bool make_pipe(Fd& r, Fd& w) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return false;
  r.fd = p[0];
  w.fd = p[1];
  return true;
}

// Why the child could not exec (sent over the exec pipe).
enum ChildStage : int { kChdir = 1, kPassFds, kCgroup, kCredentials, kExec };

const char* stage_name(int stage) {
  switch (stage) {
    case kChdir: return "chdir";
    case kPassFds: return "passing descriptors";
    case kCgroup: return "joining the cgroup";
    case kCredentials: return "dropping to the build user";
    default: return "exec";
  }
}

// Child only (async-signal-safe calls): reports the failing stage and exits.
[[noreturn]] void child_fail(int fd, int stage) {
  const int msg[2] = {stage, errno};
  (void)!::write(fd, msg, sizeof msg);
  ::_exit(127);
}

// Child only: `fds` become 3, 4, ...; every other descriptor above 2 is
// marked close-on-exec (the exec pipe keeps working until exec).
bool child_arrange_fds(const std::vector<int>& fds) {
  const int n = static_cast<int>(fds.size());
  int high[64];
  if (n > 64) return false;
  for (int i = 0; i < n; ++i) {
    high[i] = ::fcntl(fds[i], F_DUPFD_CLOEXEC, 3 + n);
    if (high[i] < 0) return false;
  }
  for (int i = 0; i < n; ++i) {
    if (::dup2(high[i], 3 + i) < 0) return false;
  }
  constexpr unsigned kCloseRangeCloexec = 1u << 2;  // CLOSE_RANGE_CLOEXEC
  if (::syscall(SYS_close_range, 3u + static_cast<unsigned>(n), ~0u, kCloseRangeCloexec) == 0) return true;
  const long max = std::min(::sysconf(_SC_OPEN_MAX), 1L << 20);
  for (int fd = 3 + n; fd < max; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return true;
}

// Child only: writes "0" (this process) into each cgroup.procs file.
bool child_join_cgroups(const std::vector<std::string>& procs) {
  for (const auto& p : procs) {
    const int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = ::write(fd, "0", 1) == 1;
    ::close(fd);
    if (!ok) return false;
  }
  return true;
}

// Child only: no supplementary groups, the given gid/uid, no capabilities
// (bounding, ambient, permitted, effective, inheritable), no_new_privs.
bool child_drop_to(const SubprocessOptions::Credentials& c) {
  for (int cap = 0; cap <= 63; ++cap) ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);  // needs CAP_SETPCAP; best effort
  if (::setgroups(0, nullptr) != 0) return false;
  if (::setresgid(c.gid, c.gid, c.gid) != 0) return false;
  if (::setresuid(c.uid, c.uid, c.uid) != 0) return false;
  ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capset, &hdr, data) != 0) return false;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
  uid_t r, e, s;
  return ::getresuid(&r, &e, &s) == 0 && r == c.uid && e == c.uid && s == c.uid && ::getegid() == c.gid;
}

}  // namespace

void CappedBuffer::append(const char* data, std::size_t n) {
  const std::size_t head_cap = cap_ / 2;
  const std::size_t tail_cap = cap_ - head_cap;
  if (head_.size() < head_cap) {
    const std::size_t take_n = std::min(n, head_cap - head_.size());
    head_.append(data, take_n);
    data += take_n;
    n -= take_n;
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (tail_cap == 0) {
      ++dropped_;
      continue;
    }
    if (tail_.size() < tail_cap) {
      tail_.push_back(data[i]);
    } else {
      tail_[tail_start_] = data[i];
      tail_start_ = (tail_start_ + 1) % tail_cap;
      ++dropped_;
    }
  }
}

std::string CappedBuffer::take() {
  std::string out = std::move(head_);
  if (dropped_ > 0) {
    out += "\n[... " + std::to_string(dropped_) + " bytes truncated ...]\n";
  }
  out.append(tail_, tail_start_, std::string::npos);
  out.append(tail_, 0, tail_start_);
  head_.clear();
  tail_.clear();
  tail_start_ = 0;
  dropped_ = 0;
  return out;
}

std::string SubprocessResult::describe() const {
  if (!killed_reason.empty()) return killed_reason;
  if (timed_out) return "timed out after " + std::to_string(elapsed.count()) + " ms";
  if (signaled) return "killed by signal " + std::to_string(term_signal);
  return "exit " + std::to_string(exit_code);
}

bool have_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= p.size()) {
    std::size_t end = p.find(':', start);
    if (end == std::string::npos) end = p.size();
    std::string dir = p.substr(start, end - start);
    if (dir.empty()) dir = ".";
    const std::string full = dir + "/" + name;
    struct stat st;
    if (::stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(full.c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

Result<SubprocessResult> run_subprocess(const std::vector<std::string>& argv, const SubprocessOptions& options) {
  if (argv.empty()) return internal_error("run_subprocess: empty argv");
  Fd in_r, in_w, out_r, out_w, err_r, err_w, exec_r, exec_w;
  if (!make_pipe(in_r, in_w) || !make_pipe(out_r, out_w) || !make_pipe(err_r, err_w) ||
      !make_pipe(exec_r, exec_w)) {
    return io_error(std::string("pipe: ") + std::strerror(errno));
  }
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  std::vector<char*> cenv;
  if (options.env) {
    for (const auto& e : *options.env) cenv.push_back(const_cast<char*>(e.c_str()));
    cenv.push_back(nullptr);
  }

  const auto start = Clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) return io_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    // Child: own process group so a timeout kills every descendant.
    ::setpgid(0, 0);
    ::signal(SIGPIPE, SIG_DFL);
    ::dup2(in_r.fd, 0);
    ::dup2(out_w.fd, 1);
    ::dup2(options.merge_stderr ? out_w.fd : err_w.fd, 2);
    if (options.cwd && ::chdir(options.cwd->c_str()) != 0) child_fail(exec_w.fd, kChdir);
    if (!child_arrange_fds(options.pass_fds)) child_fail(exec_w.fd, kPassFds);
    if (!child_join_cgroups(options.join_cgroup_procs)) child_fail(exec_w.fd, kCgroup);
    if (options.run_as && !child_drop_to(*options.run_as)) child_fail(exec_w.fd, kCredentials);
    if (options.env) {
      ::execvpe(cargv[0], cargv.data(), cenv.data());
    } else {
      ::execvp(cargv[0], cargv.data());
    }
    child_fail(exec_w.fd, kExec);
  }
  ::setpgid(pid, pid);
  in_r.reset();
  out_w.reset();
  err_w.reset();
  exec_w.reset();

  int failure[2] = {0, 0};
  if (::read(exec_r.fd, failure, sizeof failure) == static_cast<ssize_t>(sizeof failure)) {
    int status;
    ::waitpid(pid, &status, 0);
    if (failure[0] == kExec) return io_error("cannot run " + argv[0] + ": " + std::strerror(failure[1]));
    return io_error("cannot run " + argv[0] + ": " + stage_name(failure[0]) + ": " + std::strerror(failure[1]));
  }

  SubprocessResult result;
  CappedBuffer out_buf(options.output_cap), err_buf(options.output_cap);
  std::size_t stdin_off = 0;
  if (options.stdin_data.empty()) in_w.reset();
  else ::fcntl(in_w.fd, F_SETFL, O_NONBLOCK);

  const auto deadline = start + options.timeout;
  bool term_sent = false;
  Clock::time_point kill_at{};
  auto next_watch = start + options.watchdog_interval;
  // The watchdog's verdict kills at once (no grace: a limit was crossed).
  auto watch = [&](Clock::time_point now) {
    if (!options.watchdog || !result.killed_reason.empty() || now < next_watch) return;
    next_watch = now + options.watchdog_interval;
    std::string reason = options.watchdog();
    if (reason.empty()) return;
    result.killed_reason = std::move(reason);
    ::kill(-pid, SIGKILL);
    if (options.on_kill) options.on_kill();
  };
  const long long watch_ms = options.watchdog ? std::max<long long>(1, options.watchdog_interval.count()) : 1000;
  char buf[65536];
  while (out_r.fd >= 0 || err_r.fd >= 0) {
    pollfd fds[3];
    int n = 0;
    int out_i = -1, err_i = -1, in_i = -1;
    if (out_r.fd >= 0) { out_i = n; fds[n++] = {out_r.fd, POLLIN, 0}; }
    if (err_r.fd >= 0) { err_i = n; fds[n++] = {err_r.fd, POLLIN, 0}; }
    if (in_w.fd >= 0) { in_i = n; fds[n++] = {in_w.fd, POLLOUT, 0}; }
    const auto now = Clock::now();
    watch(now);
    if (!term_sent && now >= deadline) {
      result.timed_out = true;
      ::kill(-pid, SIGTERM);
      term_sent = true;
      kill_at = now + options.kill_grace;
    }
    if (term_sent && now >= kill_at) {
      ::kill(-pid, SIGKILL);
      kill_at = Clock::time_point::max();
    }
    auto wait_until = term_sent ? kill_at : deadline;
    if (wait_until == Clock::time_point::max()) wait_until = now + std::chrono::milliseconds(200);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(wait_until - now).count();
    const int r = ::poll(fds, static_cast<nfds_t>(n), static_cast<int>(std::clamp<long long>(ms, 1, std::min(1000LL, watch_ms))));
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    auto drain = [&](int idx, Fd& fd, CappedBuffer& sink) {
      if (idx < 0 || !(fds[idx].revents & (POLLIN | POLLHUP | POLLERR))) return;
      const ssize_t got = ::read(fd.fd, buf, sizeof buf);
      if (got > 0) sink.append(buf, static_cast<std::size_t>(got));
      else if (got == 0 || (errno != EINTR && errno != EAGAIN)) fd.reset();
    };
    drain(out_i, out_r, out_buf);
    drain(err_i, err_r, err_buf);
    if (in_i >= 0 && (fds[in_i].revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t w = ::write(in_w.fd, options.stdin_data.data() + stdin_off, options.stdin_data.size() - stdin_off);
      if (w > 0) stdin_off += static_cast<std::size_t>(w);
      if (w < 0 && errno != EAGAIN && errno != EINTR) in_w.reset();
      if (stdin_off >= options.stdin_data.size()) in_w.reset();
    }
  }
  in_w.reset();
  // Output closed: reap the child, still enforcing the deadline (a child may
  // close its output and keep running).
  int status = 0;
  for (;;) {
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) break;
    const auto now = Clock::now();
    watch(now);
    if (!term_sent && now >= deadline) {
      result.timed_out = true;
      ::kill(-pid, SIGTERM);
      term_sent = true;
      kill_at = now + options.kill_grace;
    } else if (term_sent && now >= kill_at) {
      ::kill(-pid, SIGKILL);
      kill_at = Clock::time_point::max();
    }
    ::usleep(5000);
  }
  // Leave nothing behind from the group.
  ::kill(-pid, SIGKILL);
  if (options.on_kill && (result.timed_out || !result.killed_reason.empty())) options.on_kill();
  result.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  if (WIFSIGNALED(status)) {
    result.signaled = true;
    result.term_signal = WTERMSIG(status);
  } else if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  }
  result.out_truncated = out_buf.truncated();
  result.err_truncated = err_buf.truncated();
  result.out = out_buf.take();
  result.err = err_buf.take();
  return result;
}

}  // namespace kmr

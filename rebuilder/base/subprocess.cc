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
#include <optional>

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

// The four pipes of a child: stdin, stdout, stderr and the exec-failure report.
struct Pipes {
  Fd in_r, in_w, out_r, out_w, err_r, err_w, exec_r, exec_w;
  bool open() {
    return make_pipe(in_r, in_w) && make_pipe(out_r, out_w) && make_pipe(err_r, err_w) && make_pipe(exec_r, exec_w);
  }
};

// argv and envp as exec wants them, built before fork (the child does not allocate).
struct ExecArgs {
  std::vector<char*> argv;
  std::vector<char*> env;  // empty: inherit the environment
  ExecArgs(const std::vector<std::string>& args, const std::optional<std::vector<std::string>>& envs) {
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    if (envs) {
      for (const auto& e : *envs) env.push_back(const_cast<char*>(e.c_str()));
      env.push_back(nullptr);
    }
  }
};

// Child only: own process group (so a timeout kills every descendant), the pipes as
// 0-2, then the options' setup and exec; a failure is reported on the exec pipe.
[[noreturn]] void child_exec(const Pipes& p, const SubprocessOptions& options, ExecArgs& args) {
  ::setpgid(0, 0);
  ::signal(SIGPIPE, SIG_DFL);
  ::dup2(p.in_r.fd, 0);
  ::dup2(p.out_w.fd, 1);
  ::dup2(options.merge_stderr ? p.out_w.fd : p.err_w.fd, 2);
  if (options.cwd && ::chdir(options.cwd->c_str()) != 0) child_fail(p.exec_w.fd, kChdir);
  if (!child_arrange_fds(options.pass_fds)) child_fail(p.exec_w.fd, kPassFds);
  if (!child_join_cgroups(options.join_cgroup_procs)) child_fail(p.exec_w.fd, kCgroup);
  if (options.run_as && !child_drop_to(*options.run_as)) child_fail(p.exec_w.fd, kCredentials);
  if (options.env) {
    ::execvpe(args.argv[0], args.argv.data(), args.env.data());
  } else {
    ::execvp(args.argv[0], args.argv.data());
  }
  child_fail(p.exec_w.fd, kExec);
}

// The child's report when it failed before exec (then reaped), else nullopt: the
// exec pipe closes without a word at a successful exec.
std::optional<Error> exec_failure(int exec_r, pid_t pid, const std::string& program) {
  int failure[2] = {0, 0};
  if (::read(exec_r, failure, sizeof failure) != static_cast<ssize_t>(sizeof failure)) return std::nullopt;
  int status;
  ::waitpid(pid, &status, 0);
  if (failure[0] == kExec) return io_error("cannot run " + program + ": " + std::strerror(failure[1]));
  return io_error("cannot run " + program + ": " + stage_name(failure[0]) + ": " + std::strerror(failure[1]));
}

// The running child's limits: the wall-time deadline (SIGTERM to the group, SIGKILL
// after the grace) and the watchdog, whose verdict kills at once (a limit was crossed).
class Supervisor {
 public:
  Supervisor(pid_t pid, const SubprocessOptions& options, Clock::time_point start, SubprocessResult& result)
      : pid_(pid), options_(options), result_(result), deadline_(start + options.timeout),
        next_watch_(start + options.watchdog_interval) {}

  void tick(Clock::time_point now) {
    watch(now);
    if (!term_sent_ && now >= deadline_) {
      result_.timed_out = true;
      ::kill(-pid_, SIGTERM);
      term_sent_ = true;
      kill_at_ = now + options_.kill_grace;
    }
    if (term_sent_ && now >= kill_at_) {
      ::kill(-pid_, SIGKILL);
      kill_at_ = Clock::time_point::max();
    }
  }

  // How long poll() may wait: until the next deadline, at most 1 s and the watchdog interval.
  int poll_timeout_ms(Clock::time_point now) const {
    auto wait_until = term_sent_ ? kill_at_ : deadline_;
    if (wait_until == Clock::time_point::max()) wait_until = now + std::chrono::milliseconds(200);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(wait_until - now).count();
    const long long watch_ms = options_.watchdog ? std::max<long long>(1, options_.watchdog_interval.count()) : 1000;
    return static_cast<int>(std::clamp<long long>(ms, 1, std::min(1000LL, watch_ms)));
  }

 private:
  void watch(Clock::time_point now) {
    if (!options_.watchdog || !result_.killed_reason.empty() || now < next_watch_) return;
    next_watch_ = now + options_.watchdog_interval;
    std::string reason = options_.watchdog();
    if (reason.empty()) return;
    result_.killed_reason = std::move(reason);
    ::kill(-pid_, SIGKILL);
    if (options_.on_kill) options_.on_kill();
  }

  pid_t pid_;
  const SubprocessOptions& options_;
  SubprocessResult& result_;
  Clock::time_point deadline_;
  Clock::time_point next_watch_;
  bool term_sent_ = false;
  Clock::time_point kill_at_{};
};

// One read from a ready output pipe into its buffer; the pipe is closed at EOF or on an error.
void drain(const pollfd* pfd, Fd& fd, CappedBuffer& sink) {
  if (pfd == nullptr || !(pfd->revents & (POLLIN | POLLHUP | POLLERR))) return;
  char buf[65536];
  const ssize_t got = ::read(fd.fd, buf, sizeof buf);
  if (got > 0) sink.append(buf, static_cast<std::size_t>(got));
  else if (got == 0 || (errno != EINTR && errno != EAGAIN)) fd.reset();
}

// Moves the child's output into the buffers and feeds its stdin (non-blocking) until
// both output pipes close, enforcing the limits meanwhile.
void pump(Pipes& p, const std::string& stdin_data, Supervisor& sup, CappedBuffer& out_buf, CappedBuffer& err_buf) {
  std::size_t stdin_off = 0;
  if (stdin_data.empty()) p.in_w.reset();
  else ::fcntl(p.in_w.fd, F_SETFL, O_NONBLOCK);
  while (p.out_r.fd >= 0 || p.err_r.fd >= 0) {
    pollfd fds[3];
    int n = 0;
    auto add = [&](const Fd& fd, short events) -> pollfd* {
      if (fd.fd < 0) return nullptr;
      fds[n] = {fd.fd, events, 0};
      return &fds[n++];
    };
    pollfd* out_p = add(p.out_r, POLLIN);
    pollfd* err_p = add(p.err_r, POLLIN);
    pollfd* in_p = add(p.in_w, POLLOUT);
    const auto now = Clock::now();
    sup.tick(now);
    const int r = ::poll(fds, static_cast<nfds_t>(n), sup.poll_timeout_ms(now));
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    drain(out_p, p.out_r, out_buf);
    drain(err_p, p.err_r, err_buf);
    if (in_p != nullptr && (in_p->revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t w = ::write(p.in_w.fd, stdin_data.data() + stdin_off, stdin_data.size() - stdin_off);
      if (w > 0) stdin_off += static_cast<std::size_t>(w);
      if (w < 0 && errno != EAGAIN && errno != EINTR) p.in_w.reset();
      if (stdin_off >= stdin_data.size()) p.in_w.reset();
    }
  }
  p.in_w.reset();
}

// Output closed: reaps the child, still enforcing the limits (a child may close its
// output and keep running). The wait status.
int reap(pid_t pid, Supervisor& sup) {
  int status = 0;
  for (;;) {
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) break;
    sup.tick(Clock::now());
    ::usleep(5000);
  }
  return status;
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
  Pipes pipes;
  if (!pipes.open()) return io_error(std::string("pipe: ") + std::strerror(errno));
  ExecArgs args(argv, options.env);
  const auto start = Clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) return io_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) child_exec(pipes, options, args);
  ::setpgid(pid, pid);
  pipes.in_r.reset();
  pipes.out_w.reset();
  pipes.err_w.reset();
  pipes.exec_w.reset();
  if (auto failed = exec_failure(pipes.exec_r.fd, pid, argv[0])) return std::move(*failed);

  SubprocessResult result;
  CappedBuffer out_buf(options.output_cap), err_buf(options.output_cap);
  Supervisor sup(pid, options, start, result);
  pump(pipes, options.stdin_data, sup, out_buf, err_buf);
  const int status = reap(pid, sup);
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

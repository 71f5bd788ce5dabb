#include "rebuilder/compare/context.h"

#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <cstdlib>
#include <fcntl.h>
#include <unistd.h>

namespace kmr::compare {

namespace {

// Paths the signal handler removes: fixed slots so the handler touches no
// heap and calls only unlink()/rmdir() (async-signal-safe).
constexpr std::size_t kSlots = 64;
constexpr std::size_t kPathMax = 512;
struct Slot {
  std::atomic<bool> used{false};
  char path[kPathMax];
};
std::array<Slot, kSlots> g_files;
std::array<Slot, 8> g_dirs;
std::mutex g_slot_mu;

template <std::size_t N>
bool add_slot(std::array<Slot, N>& slots, const std::string& path) {
  if (path.size() + 1 > kPathMax) return false;
  std::lock_guard<std::mutex> lock(g_slot_mu);
  for (auto& s : slots) {
    if (!s.used.load()) {
      std::memcpy(s.path, path.c_str(), path.size() + 1);
      s.used.store(true);
      return true;
    }
  }
  return false;
}

template <std::size_t N>
void remove_slot(std::array<Slot, N>& slots, const std::string& path) {
  std::lock_guard<std::mutex> lock(g_slot_mu);
  for (auto& s : slots) {
    if (s.used.load() && path == s.path) {
      s.used.store(false);
      return;
    }
  }
}

extern "C" void cleanup_and_die(int sig) {
  for (auto& s : g_files) {
    if (s.used.load()) ::unlink(s.path);
  }
  for (auto& s : g_dirs) {
    if (s.used.load()) ::rmdir(s.path);
  }
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

}  // namespace

void install_cleanup_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = cleanup_and_die;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaction(sig, &sa, nullptr);
  });
}

Context::Context(Options options)
    : options_(options),
      deadline_(std::chrono::steady_clock::now() + options_.limits.max_wall_time),
      free_workers_(options_.jobs > 1 ? static_cast<int>(options_.jobs) - 1 : 0) {}

Context::~Context() {
  std::lock_guard<std::mutex> lock(temp_mu_);
  if (!temp_dir_.empty()) {
    ::rmdir(temp_dir_.c_str());
    remove_slot(g_dirs, temp_dir_);
  }
}

bool Context::timed_out() {
  if (timed_out_.load()) return true;
  if (std::chrono::steady_clock::now() >= deadline_) timed_out_.store(true);
  return timed_out_.load();
}

std::chrono::milliseconds Context::remaining() const {
  auto left = deadline_ - std::chrono::steady_clock::now();
  if (left.count() < 0) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(left);
}

bool Context::charge_report(std::size_t bytes) {
  std::uint64_t before = report_bytes_.fetch_add(bytes);
  return before + bytes <= options_.limits.max_report_bytes;
}

bool Context::try_acquire_worker() {
  int n = free_workers_.load();
  while (n > 0) {
    if (free_workers_.compare_exchange_weak(n, n - 1)) return true;
  }
  return false;
}

void Context::release_worker() { free_workers_.fetch_add(1); }

Result<std::string> Context::write_temp(Bytes data, const std::string& stem) {
  std::string path;
  {
    std::lock_guard<std::mutex> lock(temp_mu_);
    if (temp_dir_.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      std::string tmpl = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/kmr-diff-XXXXXX";
      if (::mkdtemp(tmpl.data()) == nullptr) return io_error(tmpl + ": mkdtemp failed: " + std::strerror(errno));
      temp_dir_ = tmpl;
      add_slot(g_dirs, temp_dir_);
    }
    path = temp_dir_ + "/" + std::to_string(temp_counter_++) + "-" + stem;
  }
  if (!add_slot(g_files, path)) return internal_error("too many live temporary files");
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    remove_slot(g_files, path);
    return io_error(path + ": cannot create: " + std::strerror(errno));
  }
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t w = ::write(fd, data.data() + done, data.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      remove_temp(path);
      return io_error(path + ": write failed: " + std::strerror(e));
    }
    done += static_cast<std::size_t>(w);
  }
  ::close(fd);
  return path;
}

void Context::remove_temp(const std::string& path) {
  ::unlink(path.c_str());
  remove_slot(g_files, path);
}

}  // namespace kmr::compare

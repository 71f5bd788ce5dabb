#include "rebuilder/build/sandbox.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "rebuilder/base/file.h"

namespace kmr::build {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string test_tmp() {
  const char* t = std::getenv("TEST_TMPDIR");
  return t ? t : "/tmp";
}

SandboxConfig config_in(const std::string& name) {
  SandboxConfig c;
  c.work_dir = test_tmp() + "/" + name;
  fs::remove_all(c.work_dir);
  c.wall_time = 60s;
  return c;
}

SandboxResult run_ok(const SandboxConfig& c, const std::string& script) {
  auto r = run_in_sandbox(c, {"/bin/bash", "-c", script});
  EXPECT_TRUE(r) << r.error().to_string();
  return r ? *r : SandboxResult{};
}

class Sandbox : public ::testing::Test {
 protected:
  void SetUp() override {
    auto a = sandbox_available();
    ASSERT_TRUE(a) << a.error().to_string();
  }
};

TEST_F(Sandbox, PinnedIdentityPathAndEnvironment) {
  auto c = config_in("identity");
  c.env["SOURCE_DATE_EPOCH"] = "1700000000";
  auto r = run_ok(c, "id -un; id -u; id -g; hostname; pwd; echo $HOME; echo $TZ; echo $LANG $LC_ALL; umask; "
                     "echo $SOURCE_DATE_EPOCH; env | wc -l; date +%Z");
  EXPECT_TRUE(r.success()) << r.process.out;
  EXPECT_EQ(r.process.out,
            "builder\n1000\n1000\nkmr-build\n/build\n/build\nUTC\nC.UTF-8 C.UTF-8\n0022\n1700000000\n" +
                std::to_string(sandbox_env(c).size() + 3) + "\nUTC\n");  // + PWD, SHLVL, _ from bash
  // The log file holds the output.
  auto log = read_text_file(r.log_path, 1 << 20);
  ASSERT_TRUE(log);
  EXPECT_NE(log->find("kmr-build"), std::string::npos);
}

TEST_F(Sandbox, HostEnvironmentDoesNotLeak) {
  ::setenv("KMR_SECRET_TEST_VAR", "leak", 1);
  auto c = config_in("envleak");
  auto r = run_ok(c, "env");
  ::unsetenv("KMR_SECRET_TEST_VAR");
  EXPECT_TRUE(r.success());
  EXPECT_EQ(r.process.out.find("KMR_SECRET_TEST_VAR"), std::string::npos) << r.process.out;
}

TEST_F(Sandbox, WritesOnlyInsideItsDirectory) {
  auto c = config_in("writes");
  // A host input directory mounted read-only, and a file next to the test's
  // own tree (stands for the repository / $HOME).
  const std::string input = test_tmp() + "/writes-input";
  fs::create_directories(input);
  std::ofstream(input + "/PKGBUILD") << "original\n";
  c.mounts.push_back({input, "/input", false});
  const std::string marker = "kmr-sandbox-escape-" + std::to_string(::getpid());
  const std::string host_home = std::getenv("HOME") ? std::getenv("HOME") : "/root";
  const std::string cwd = fs::current_path().string();
  auto r = run_ok(c,
                  "fails=0\n"
                  "for p in /tmp/../" + marker + " /" + marker + " /usr/" + marker + " /etc/" + marker +
                      " /var/" + marker + " " + host_home + "/" + marker + " " + cwd + "/" + marker + " " + input +
                      "/" + marker + " /input/" + marker + " /input/PKGBUILD " + test_tmp() + "/" + marker +
                      "; do\n"
                      "  if (echo x > $p) 2>/dev/null; then echo WROTE $p; else fails=$((fails+1)); fi\n"
                      "done\n"
                      "echo built > /build/out.txt && echo scratch > /tmp/scratch && echo fails=$fails");
  EXPECT_TRUE(r.success()) << r.process.out;
  EXPECT_EQ(r.process.out, "fails=11\n");
  // Nothing appeared on the host outside the sandbox's directory...
  for (const auto& p : {"/" + marker, "/usr/" + marker, "/etc/" + marker, "/var/" + marker, "/tmp/" + marker,
                        host_home + "/" + marker, cwd + "/" + marker, input + "/" + marker,
                        test_tmp() + "/" + marker}) {
    EXPECT_FALSE(fs::exists(p)) << p;
  }
  std::ifstream in(input + "/PKGBUILD");
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "original");
  // ...and the build's own writes landed in its directory.
  EXPECT_TRUE(fs::exists(c.work_dir + "/build/out.txt"));
  EXPECT_TRUE(fs::exists(c.work_dir + "/tmp/scratch"));
  EXPECT_FALSE(fs::exists("/tmp/scratch-" + marker));
}

// Opens a TCP listener on `addr` (port chosen by the kernel); returns fd and port.
std::pair<int, int> listen_on(const std::string& addr) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = 0;
  ::inet_pton(AF_INET, addr.c_str(), &sa.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 8) != 0) {
    ::close(fd);
    return {-1, 0};
  }
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  return {fd, ntohs(sa.sin_port)};
}

std::vector<std::string> host_ipv4_addresses() {
  std::vector<std::string> out = {"127.0.0.1"};
  ifaddrs* ifs = nullptr;
  if (::getifaddrs(&ifs) != 0) return out;
  for (auto* i = ifs; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    char buf[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
    if (std::string(buf) != "127.0.0.1") out.push_back(buf);
  }
  ::freeifaddrs(ifs);
  return out;
}

TEST_F(Sandbox, HasNoNetwork) {
  for (const auto& addr : host_ipv4_addresses()) {
    auto [fd, port] = listen_on(addr);
    ASSERT_GE(fd, 0) << addr;
    const std::string connect = "exec 3<>/dev/tcp/" + addr + "/" + std::to_string(port) + " && echo CONNECTED";
    // Control: the same command reaches the listener from the host.
    auto host = run_subprocess({"/bin/bash", "-c", connect});
    ASSERT_TRUE(host);
    EXPECT_EQ(host->out, "CONNECTED\n") << addr;
    auto c = config_in("net");
    auto r = run_ok(c, connect + "; exit 0");
    EXPECT_EQ(r.process.out.find("CONNECTED"), std::string::npos) << addr << ": " << r.process.out;
    ::close(fd);
  }
  // Only loopback exists inside, and no name resolves to a remote address.
  auto c = config_in("net2");
  auto r = run_ok(c, "ls /sys/class/net 2>/dev/null || cat /proc/net/dev | tail -n +3 | cut -d: -f1; "
                     "getent hosts deb.debian.org && echo RESOLVED; exit 0");
  EXPECT_EQ(r.process.out.find("RESOLVED"), std::string::npos) << r.process.out;
  EXPECT_EQ(r.process.out.find("eth"), std::string::npos) << r.process.out;
  EXPECT_NE(r.process.out.find("lo"), std::string::npos) << r.process.out;
}

// Host pids whose cmdline contains `marker`.
std::vector<int> pids_with(const std::string& marker) {
  std::vector<int> pids;
  DIR* d = ::opendir("/proc");
  if (!d) return pids;
  while (dirent* e = ::readdir(d)) {
    const int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream f(std::string("/proc/") + e->d_name + "/cmdline", std::ios::binary);
    std::string cmd((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (cmd.find(marker) != std::string::npos && cmd.find("bash") == std::string::npos) pids.push_back(pid);
  }
  ::closedir(d);
  return pids;
}

TEST_F(Sandbox, WallTimeoutKillsEverything) {
  auto c = config_in("timeout");
  c.wall_time = 1500ms;
  const std::string marker = "kmr-timeout-" + std::to_string(::getpid());
  // Three sleepers: one in the group, one in the background, one that left
  // the process group and session with setsid (the pid namespace still holds it).
  const std::string script = "(exec -a " + marker + " sleep 300) & setsid bash -c 'exec -a " + marker +
                             " sleep 300' & exec -a " + marker + " sleep 300";
  std::atomic<std::size_t> seen_running{0};
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done) {
      seen_running = std::max(seen_running.load(), pids_with(marker).size());
      std::this_thread::sleep_for(50ms);
    }
  });
  auto r = run_in_sandbox(c, {"/bin/bash", "-c", script});
  done = true;
  watcher.join();
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->process.timed_out);
  EXPECT_FALSE(r->success());
  EXPECT_EQ(seen_running.load(), 3u) << "the watcher must see the sleepers while they run";
  // Give the kernel a moment to tear the namespace down, then nothing is left.
  std::vector<int> left;
  for (int i = 0; i < 40; ++i) {
    left = pids_with(marker);
    if (left.empty()) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(left.empty()) << left.size() << " processes survived, first pid " << (left.empty() ? 0 : left[0]);
}

TEST_F(Sandbox, ResourceLimitsApply) {
  auto c = config_in("limits");
  c.file_size_bytes = 1 << 20;
  c.cpu_seconds = 7;
  c.memory_bytes = 1ull << 30;
  auto r = run_ok(c, "ulimit -f; ulimit -t; ulimit -v; (head -c 2000000 /dev/zero > big) 2>/dev/null; "
                     "stat -c %s big");
  // bash reports -f and -v in KiB; the write stops at the 1 MiB file limit.
  EXPECT_EQ(r.process.out.substr(0, 15), "1024\n7\n1048576\n") << r.process.out;
  EXPECT_EQ(r.process.out.substr(r.process.out.size() - 8), "1048576\n") << r.process.out;
}

TEST_F(Sandbox, DiskLimitIsReported) {
  auto c = config_in("disk");
  c.disk_bytes = 1 << 20;
  auto r = run_ok(c, "head -c 3000000 /dev/urandom > blob");
  EXPECT_TRUE(r.process.success());
  EXPECT_TRUE(r.disk_exceeded);
  EXPECT_FALSE(r.success());
  EXPECT_NE(r.describe().find("disk limit exceeded"), std::string::npos);
}

TEST_F(Sandbox, LogKeepsHeadAndTail) {
  auto c = config_in("log");
  c.log_cap = 4096;
  auto r = run_ok(c, "echo FIRSTLINE; head -c 100000 /dev/zero | tr '\\0' x; echo; echo LASTLINE");
  auto log = read_text_file(r.log_path, 1 << 20);
  ASSERT_TRUE(log);
  EXPECT_LT(log->size(), 4096u + 300u);
  EXPECT_EQ(log->rfind("FIRSTLINE", 0), 0u);
  EXPECT_NE(log->find("LASTLINE"), std::string::npos);
  EXPECT_NE(log->find("bytes truncated"), std::string::npos);
}

TEST_F(Sandbox, RejectsRelativeWorkDir) {
  SandboxConfig c;
  c.work_dir = "relative";
  auto r = run_in_sandbox(c, {"/bin/true"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "sandbox work_dir must be an absolute path: 'relative'");
}

}  // namespace
}  // namespace kmr::build

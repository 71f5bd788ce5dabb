#include "rebuilder/buildenv/sandbox.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
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
#include "rebuilder/base/require.h"
#include "rebuilder/buildenv/seccomp.h"

namespace kmr::build {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string test_tmp() {
  const char* t = std::getenv("TEST_TMPDIR");
  return t ? t : "/tmp";
}

// Inputs bound into a sandbox from outside its work directory must be
// reachable by the unprivileged build user; Bazel's TEST_TMPDIR (under /root)
// is not. Work directories stay under TEST_TMPDIR: run_in_sandbox moves them.
std::string reachable_tmp() {
  static const std::string dir = [] {
    const std::string d = "/var/tmp/kmr-sandbox-test." + std::to_string(::getpid());
    fs::create_directories(d);
    fs::permissions(d, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec |
                           fs::perms::group_read | fs::perms::others_read);
    return d;
  }();
  return dir;
}
struct RemoveReachableTmp {
  ~RemoveReachableTmp() {
    std::error_code ec;
    fs::remove_all("/var/tmp/kmr-sandbox-test." + std::to_string(::getpid()), ec);
  }
} remove_reachable_tmp;

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
  const std::string input = reachable_tmp() + "/writes-input";
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
  EXPECT_NE(r.describe().find("disk limit"), std::string::npos) << r.describe();
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

// Every regular file under `dir` (no symlink followed), concatenated.
std::string tree_text(const std::string& dir) {
  std::string all;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_symlink(ec) || !it->is_regular_file(ec)) continue;
    auto t = read_text_file(it->path().string(), 64 << 20);
    if (t) all += *t;
  }
  return all;
}

std::string random_tag() {
  std::ifstream in("/dev/urandom", std::ios::binary);
  unsigned char b[8];
  in.read(reinterpret_cast<char*>(b), sizeof b);
  std::string out;
  for (unsigned char c : b) out += "0123456789abcdef"[c >> 4], out += "0123456789abcdef"[c & 15];
  return out;
}

// Root-only files on the host, removed again at the end of the test.
class PlantedSecrets {
 public:
  PlantedSecrets() : tag_(random_tag()) {}
  ~PlantedSecrets() {
    std::error_code ec;
    for (auto it = paths_.rbegin(); it != paths_.rend(); ++it) fs::remove_all(*it, ec);
  }
  // Writes `path` (mode) holding a unique marker; returns the marker.
  std::string plant(const std::string& path, mode_t mode) {
    std::error_code ec;
    const std::string dir = fs::path(path).parent_path().string();
    if (!fs::exists(dir, ec)) {
      fs::create_directories(dir, ec);
      ::chmod(dir.c_str(), 0700);
      paths_.push_back(dir);
    }
    const std::string marker = "KMRSECRET" + tag_ + std::to_string(paths_.size());
    std::ofstream(path) << marker << "\n";
    ::chmod(path.c_str(), mode);
    paths_.push_back(path);
    return marker;
  }
  const std::string& tag() const { return tag_; }

 private:
  std::string tag_;
  std::vector<std::string> paths_;
};

TEST_F(Sandbox, HostSecretsAppearNowhere) {
  if (::geteuid() != 0) KMR_SKIP_OR_FAIL("planting root-only files under /etc needs root");
  PlantedSecrets p;
  const std::string t = p.tag();
  std::vector<std::pair<std::string, std::string>> planted;  // path, marker
  for (const auto& [path, mode] : std::vector<std::pair<std::string, mode_t>>{
           {"/etc/kmr-secret-" + t + "/secret", 0600},
           {"/etc/kmr-secret-" + t + ".conf", 0600},
           {"/etc/kmr-worker/kmr-secret-" + t + "-key.pem", 0600},  // beside the worker's key
           {"/var/lib/kmr-secret-" + t + "/state", 0600},
           {"/srv/kmr-secret-" + t + "/token", 0600},
           {"/opt/kmr-secret-" + t + "/admin-token", 0600},
           // World-readable too: /etc and /var are not bound whole, whatever the mode.
           {"/etc/kmr-secret-" + t + "-public", 0644},
           {"/var/lib/kmr-secret-" + t + "-public", 0644}}) {
    planted.push_back({path, p.plant(path, mode)});
  }
  std::string script = "id; cat /proc/self/uid_map; cat /etc/shadow /etc/kmr-worker/key.pem; ";
  for (const auto& [path, marker] : planted) script += "cat " + path + "; cp " + path + " /build/ 2>/dev/null; ";
  script += "find / -xdev -name '*kmr-secret*' 2>/dev/null; grep -rs KMRSECRET /etc /var /srv /opt /root /home /run "
            "> /build/grep.out; tar -cf /build/etc.tar /etc /var 2>/dev/null; exit 0";
  auto c = config_in("secrets");
  auto r = run_ok(c, script);
  ASSERT_TRUE(r.success()) << r.process.out;
  auto log = read_text_file(r.log_path, 16 << 20);
  ASSERT_TRUE(log);
  const std::string tree = tree_text(c.work_dir);
  for (const auto& [path, marker] : planted) {
    // Control: the host can read what was planted.
    auto host = read_text_file(path, 1024);
    ASSERT_TRUE(host) << path;
    ASSERT_EQ(*host, marker + "\n");
    EXPECT_EQ(r.process.out.find(marker), std::string::npos) << path << " leaked into the output:\n" << r.process.out;
    EXPECT_EQ(log->find(marker), std::string::npos) << path << " leaked into the log";
    EXPECT_EQ(tree.find(marker), std::string::npos) << path << " leaked into the work directory";
  }
  EXPECT_EQ(r.process.out.find("root:"), std::string::npos) << "/etc/shadow was readable:\n" << r.process.out;
  EXPECT_NE(r.process.out.find("/etc/shadow: No such file or directory"), std::string::npos) << r.process.out;
  // Inside uid 1000 is the unprivileged build user on the host: what the
  // build wrote is owned by it, not by root.
  EXPECT_NE(r.host_uid, 0u);
  struct stat st;
  ASSERT_EQ(::stat((c.work_dir + "/build/grep.out").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, r.host_uid);
  EXPECT_NE(st.st_uid, 0u);
}

// What builds use from /etc works (alternatives links such as awk, the
// dynamic linker cache, OpenSSL's config for `openssl req` as kernel builds
// run it, perl, python3); certificates and private keys are not there.
TEST_F(Sandbox, ToolchainConfigurationWorksWithoutTheRestOfEtc) {
  auto c = config_in("toolchain");
  auto r = run_ok(c, "set -e; echo a | awk '{print \"awk-ok\"}'; "
                     "openssl req -new -nodes -x509 -newkey rsa:2048 -days 1 -batch -subj /CN=kmr "
                     "-keyout k.pem -out c.pem 2>/dev/null && echo openssl-ok; "
                     "perl -e 'print \"perl-ok\\n\"'; python3 -c 'print(\"python-ok\")'; "
                     "ls /etc/ssl; ls /etc/ssl/certs /etc/ssl/private 2>&1 | sed 's/.*cannot access/absent/'");
  EXPECT_TRUE(r.success()) << r.process.out;
  EXPECT_EQ(r.process.out,
            "awk-ok\nopenssl-ok\nperl-ok\npython-ok\nopenssl.cnf\n"
            "absent '/etc/ssl/certs': No such file or directory\nabsent '/etc/ssl/private': No such file or directory\n");
}

TEST_F(Sandbox, BuildUserCannotReadRootOnlyInputs) {
  if (::geteuid() != 0) KMR_SKIP_OR_FAIL("dropping to the build user needs root");
  PlantedSecrets p;
  const std::string dir = reachable_tmp() + "/rootonly-" + p.tag();
  fs::create_directories(dir);
  std::ofstream(dir + "/key.pem") << "PRIVATE\n";
  ::chmod((dir + "/key.pem").c_str(), 0600);
  for (bool as_root_inside : {false, true}) {
    auto c = config_in("rootonly");
    if (as_root_inside) c.uid = c.gid = 0, c.user = "root";
    c.mounts.push_back({dir, "/secret", false});
    auto r = run_ok(c, "cat /secret/key.pem; grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status; exit 0");
    EXPECT_EQ(r.process.out.find("PRIVATE"), std::string::npos) << r.process.out;
    EXPECT_NE(r.process.out.find("Permission denied"), std::string::npos) << r.process.out;
    // No capabilities, even as uid 0 inside.
    EXPECT_NE(r.process.out.find("CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000"),
              std::string::npos)
        << r.process.out;
  }
  fs::remove_all(dir);
}

// A minimal build root (bash, cat, ls and their libraries) stands in for a
// distro's chroot tree: the build sees it, not the host's /usr.
TEST_F(Sandbox, BuildRootReplacesTheHostToolchain) {
  const std::string root = reachable_tmp() + "/buildroot-tree";
  fs::remove_all(root);
  auto mk = run_subprocess({"/bin/bash", "-c",
                            "set -e; R=" + root + "; mkdir -p $R/usr/bin $R/etc; ln -s usr/bin $R/bin; "
                            "ln -s usr/lib $R/lib; ln -s usr/lib64 $R/lib64; "
                            "for b in bash cat ls; do cp /usr/bin/$b $R/usr/bin/; "
                            "  for l in $(ldd /usr/bin/$b | grep -o '/[^ ]*'); do d=$R/usr${l#/usr}; "
                            "    mkdir -p $(dirname $d); cp -L $l $d; done; done; "
                            "cp /usr/bin/bash $R/usr/bin/sh; mkdir -p $R/usr/lib/locale; cp -r /usr/lib/locale/C.utf8 $R/usr/lib/locale/; "
                            "echo ID=kmr-test-root > $R/etc/os-release; "
                            "chmod -R a+rX $R"});
  ASSERT_TRUE(mk && mk->success()) << (mk ? mk->out + mk->err : mk.error().to_string());
  auto c = config_in("buildroot");
  c.root_dir = root;
  auto r = run_ok(c, "ls /usr/bin; cat /etc/os-release; ls /etc");
  ASSERT_TRUE(r.success()) << r.process.out;
  EXPECT_EQ(r.process.out, "bash\ncat\nls\nsh\nID=kmr-test-root\ngroup\nhostname\nhosts\nos-release\npasswd\n");
}

// cp -a, install -o root and chown root:root under fakeroot, as makepkg's
// package() and dpkg's binary targets use them; the archive records root.
TEST_F(Sandbox, FakerootOwnershipIdioms) {
  if (!have_program("fakeroot")) KMR_SKIP_OR_FAIL("fakeroot not installed");
  for (bool as_root_inside : {false, true}) {
    auto c = config_in("fakeroot");
    if (as_root_inside) c.uid = c.gid = 0, c.user = "root";
    auto r = run_ok(c,
                    "set -e; mkdir -p src/out/lib/modules/6.8/kernel pkg/usr/lib; echo mod > src/out/lib/modules/6.8/kernel/a.ko; "
                    "ln -s kernel/a.ko src/out/lib/modules/6.8/link; echo cfg > config; "
                    "fakeroot -- sh -c 'set -e; cp -a src/out/lib/modules pkg/usr/lib/; "
                    "install -o root -g root -m 0644 config pkg/usr/lib/config; "
                    "install -d -o root -g root pkg/etc; chown root:root pkg/usr/lib/config; chown -R root:root pkg; "
                    "tar --numeric-owner -cf pkg.tar pkg'; echo done");
    ASSERT_TRUE(r.success()) << r.process.out;
    EXPECT_EQ(r.process.out, "done\n");
    // An independent reader (Python's tarfile) sees root for every member.
    auto list = run_subprocess({"python3", "-c",
                                "import sys,tarfile\nfor m in sorted(tarfile.open(sys.argv[1]), key=lambda m: m.name): print(m.uid, m.gid, m.name)",
                                c.work_dir + "/build/pkg.tar"});
    ASSERT_TRUE(list && list->success()) << (list ? list->err : list.error().to_string());
    EXPECT_EQ(list->out,
              "0 0 pkg\n0 0 pkg/etc\n0 0 pkg/usr\n0 0 pkg/usr/lib\n0 0 pkg/usr/lib/config\n0 0 pkg/usr/lib/modules\n"
              "0 0 pkg/usr/lib/modules/6.8\n0 0 pkg/usr/lib/modules/6.8/kernel\n0 0 pkg/usr/lib/modules/6.8/kernel/a.ko\n"
              "0 0 pkg/usr/lib/modules/6.8/link\n")
        << (as_root_inside ? "uid 0 inside" : "uid 1000 inside");
  }
}

TEST_F(Sandbox, OnlyStandardDescriptorsInside) {
  const int leaked = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC: would be inherited
  ASSERT_GE(leaked, 0);
  auto c = config_in("fds");
  auto r = run_in_sandbox(c, {"ls", "/proc/self/fd"});
  ::close(leaked);
  ASSERT_TRUE(r) << r.error().to_string();
  // 0-2 and the directory ls opens to read /proc/self/fd.
  EXPECT_EQ(r->process.out, "0\n1\n2\n3\n");
}

// Host latency of starting a process while `busy` runs, in ms (max seen).
template <typename F>
long long max_host_latency_during(F busy) {
  std::atomic<bool> done{false};
  std::atomic<long long> worst{0};
  std::thread probe([&] {
    while (!done) {
      const auto t0 = std::chrono::steady_clock::now();
      (void)run_subprocess({"/bin/true"});
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
      worst = std::max(worst.load(), static_cast<long long>(ms));
      std::this_thread::sleep_for(100ms);
    }
  });
  busy();
  done = true;
  probe.join();
  return worst;
}

TEST_F(Sandbox, ForkBombEndsAtTheProcessLimit) {
  auto c = config_in("forkbomb");
  c.tasks_max = 64;
  SandboxResult r;
  const auto latency = max_host_latency_during([&] { r = run_ok(c, "b() { b | b & }; b; wait"); });
  EXPECT_FALSE(r.success());
  EXPECT_FALSE(r.process.timed_out);
  EXPECT_NE(r.describe().find("process limit (64 processes) reached"), std::string::npos) << r.describe();
  EXPECT_LT(r.process.elapsed, 30s);
  EXPECT_LT(latency, 3000) << "the host stalled while the bomb ran";
}

TEST_F(Sandbox, MemoryHogEndsAtTheMemoryLimit) {
  auto c = config_in("memhog");
  c.memory_bytes = 256ull << 20;
  c.disk_poll = 200ms;
  SandboxResult r;
  // Three processes of 120 MiB each: every one stays under the per-process
  // RLIMIT_AS; together they cross the whole build's limit.
  const auto latency = max_host_latency_during([&] {
    r = run_ok(c, "for i in 1 2 3; do python3 -c 'import time; b = b\"x\" * (120 << 20); time.sleep(20)' & done; wait");
  });
  EXPECT_FALSE(r.success());
  EXPECT_NE(r.describe().find("memory limit (268435456 bytes) reached"), std::string::npos) << r.describe() << "\n"
                                                                                           << r.process.out;
  EXPECT_LT(r.process.elapsed, 15s);
  EXPECT_LT(latency, 3000);
}

TEST_F(Sandbox, TenGigabyteWriterEndsAtTheDiskLimit) {
  auto c = config_in("diskhog");
  c.disk_bytes = 64ull << 20;
  c.file_size_bytes = 16ull << 30;
  c.disk_poll = 200ms;
  SandboxResult r;
  const auto latency = max_host_latency_during([&] { r = run_ok(c, "head -c 10G /dev/zero > /build/big; echo finished"); });
  EXPECT_FALSE(r.success());
  EXPECT_EQ(r.process.out.find("finished"), std::string::npos);
  EXPECT_NE(r.describe().find("disk limit (67108864 bytes) exceeded"), std::string::npos) << r.describe();
  std::error_code ec;
  EXPECT_LT(fs::file_size(c.work_dir + "/build/big", ec), 4ull << 30);
  EXPECT_LT(latency, 3000);
  fs::remove_all(c.work_dir);
}

#if defined(__x86_64__)
TEST_F(Sandbox, SeccompAndNoNestedUserNamespaces) {
  auto c = config_in("seccomp");
  // Raw syscalls through Python's ctypes: keyctl 250, ptrace 101, bpf 321,
  // perf_event_open 298, mount 165, unshare(CLONE_NEWUSER) 272, personality 135.
  const std::string py =
      "import ctypes\n"
      "libc = ctypes.CDLL(None, use_errno=True)\n"
      "for name, nr, args in [('keyctl', 250, (0, 0)), ('ptrace', 101, (0, 1)), ('bpf', 321, (0, 0, 0)),\n"
      "                       ('perf_event_open', 298, (0, 0, -1, -1, 0)), ('mount', 165, (0, 0, 0, 0, 0)),\n"
      "                       ('unshare_newuser', 272, (0x10000000,)), ('personality_norandom', 135, (0x0040000,)),\n"
      "                       ('getpid', 39, ())]:\n"
      "    r = libc.syscall(nr, *args)\n"
      "    print(name, 'ok' if r >= 0 else 'errno=%d' % ctypes.get_errno())\n";
  c.env["PY"] = py;
  auto r = run_ok(c, "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; python3 -c \"$PY\"; "
                "unshare --user true 2>/dev/null && echo NESTED-USERNS; exit 0");
  EXPECT_EQ(r.process.out,
            "NoNewPrivs:\t1\nSeccomp:\t2\nkeyctl errno=1\nptrace errno=1\nbpf errno=1\nperf_event_open errno=1\n"
            "mount errno=1\nunshare_newuser errno=1\npersonality_norandom errno=1\ngetpid ok\n");
}
#endif

// A Nix job's own store at /nix: the build realises a derivation as root of
// the user namespace with Nix's sandbox off. Nix's sandbox cannot be set up
// inside (sandbox-fallback = false makes that an error instead of a silent
// unsandboxed build).
TEST_F(Sandbox, NixBuildsInItsOwnStoreAndNixSandboxCannotNest) {
  if (!have_program("nix-instantiate") || !have_program("nix")) KMR_SKIP_OR_FAIL("nix not installed");
  const std::string dir = reachable_tmp() + "/nixjob";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string tag = random_tag();
  std::ofstream(dir + "/t.nix") << "derivation { name = \"kmr-sandbox-test-" << tag
                                << "\"; system = \"x86_64-linux\"; builder = \"/bin/sh\"; "
                                   "args = [ \"-c\" \"echo built > $out\" ]; PATH = \"/usr/bin:/bin\"; }\n";
  SubprocessOptions o;
  o.env = std::vector<std::string>{"PATH=/usr/bin:/bin", "HOME=" + dir,
                                   "NIX_CONFIG=build-users-group =\nexperimental-features = nix-command\nsandbox = false"};
  auto inst = run_subprocess({"nix-instantiate", dir + "/t.nix"}, o);
  ASSERT_TRUE(inst && inst->success()) << (inst ? inst->err : inst.error().to_string());
  const std::string drv = inst->out.substr(0, inst->out.find('\n'));
  for (const std::string mode : {"false", "true"}) {
    auto c = config_in("nixjob-" + mode);
    const std::string store = reachable_tmp() + "/nixjob-" + mode + "-store";
    fs::remove_all(store);
    auto cp = run_subprocess({"nix", "copy", "--derivation", "--no-check-sigs", "--to", "local?root=" + store, drv}, o);
    ASSERT_TRUE(cp && cp->success()) << (cp ? cp->err : cp.error().to_string());
    c.uid = c.gid = 0;
    c.user = "root";
    c.mounts.push_back({store + "/nix", "/nix", true});
    c.env["NIX_CONFIG"] = "build-users-group =\nsandbox = " + mode + "\nsandbox-fallback = false\nsubstituters =";
    c.env["NIX_REMOTE"] = "";
    // The build user owns the job's store (run_in_sandbox hands it work_dir only).
    ASSERT_TRUE(run_subprocess({"chown", "-R", "kmrbuild:kmrbuild", store}));
    auto r = run_ok(c, "out=$(nix-store --realise " + drv + " 2>/build/err) && cat $out; tail -3 /build/err; ls /nix/store | grep -c -v kmr-sandbox-test; true");
    if (mode == "false") {
      EXPECT_TRUE(r.success()) << r.process.out;
      EXPECT_EQ(r.process.out.rfind("built\n", 0), 0u) << r.process.out;
      // Only the job's own paths are in its store: none of the host's.
      EXPECT_EQ(r.process.out.substr(r.process.out.size() - 2), "0\n") << r.process.out;
    } else {
      // Nix's sandbox setup fails at setgroups (bwrap's user namespace has
      // setgroups denied, and no nested user namespace may be made).
      EXPECT_EQ(r.process.out.find("built"), std::string::npos) << r.process.out;
      EXPECT_NE(r.process.out.find("setgroups failed"), std::string::npos) << r.process.out;
    }
    fs::remove_all(store);
  }
  (void)run_subprocess({"nix-store", "--delete", drv}, o);  // the test's .drv in the host store
}

TEST(SandboxSeccomp, ProgramIsWellFormed) {
  const auto prog = sandbox_seccomp_program();
  ASSERT_GT(prog.size(), 10u);
  ASSERT_LT(prog.size(), 4096u);  // BPF_MAXINSNS
  // Every jump lands inside the program, and it ends in a return.
  for (std::size_t i = 0; i < prog.size(); ++i) {
    if (BPF_CLASS(prog[i].code) == BPF_JMP) {
      EXPECT_LT(i + 1 + prog[i].jt, prog.size()) << i;
      EXPECT_LT(i + 1 + prog[i].jf, prog.size()) << i;
    }
  }
  EXPECT_EQ(BPF_CLASS(prog.back().code), BPF_RET);
  const auto names = sandbox_denied_syscalls();
  for (const char* n : {"keyctl", "add_key", "ptrace", "kexec_load", "bpf", "perf_event_open", "mount", "setns"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  }
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

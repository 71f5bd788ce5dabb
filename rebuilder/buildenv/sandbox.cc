#include "rebuilder/buildenv/sandbox.h"

#include <ftw.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <system_error>

#include "rebuilder/base/file.h"
#include "rebuilder/buildenv/cgroup.h"
#include "rebuilder/buildenv/seccomp.h"

namespace kmr::build {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPath = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

// Top-level symlinks recreated inside (merged-/usr layouts).
constexpr const char* kHostLinks[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};

// The toolchain's source tree: the build root, else the host.
std::string source_root(const SandboxConfig& c) {
  if (c.root_dir.empty()) return "";
  return c.root_dir.back() == '/' ? c.root_dir.substr(0, c.root_dir.size() - 1) : c.root_dir;
}

// Read-only binds of the toolchain paths that exist under the source root.
void add_toolchain(const SandboxConfig& c, std::vector<std::string>& a) {
  const std::string root = source_root(c);
  std::error_code ec;
  if (fs::is_directory(root + "/usr", ec)) a.insert(a.end(), {"--ro-bind", root + "/usr", "/usr"});
  for (const char* l : kHostLinks) {
    const std::string host = root + l;
    if (fs::is_symlink(host, ec)) {
      a.insert(a.end(), {"--symlink", fs::read_symlink(host, ec).string(), l});
    } else if (fs::is_directory(host, ec)) {
      a.insert(a.end(), {"--ro-bind", host, l});
    }
  }
  for (const auto& e : sandbox_etc_allowlist()) {
    if (fs::exists(root + "/etc/" + e, ec)) a.insert(a.end(), {"--ro-bind", root + "/etc/" + e, "/etc/" + e});
  }
  for (const auto& v : sandbox_var_allowlist()) {
    if (fs::exists(root + "/var/" + v, ec)) a.insert(a.end(), {"--ro-bind", root + "/var/" + v, "/var/" + v});
  }
}

// Whether this process may switch to another uid/gid (root or CAP_SETUID +
// CAP_SETGID in its effective set).
bool can_change_uid() {
  if (::geteuid() == 0) return true;
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) == 0) {
      const unsigned long long eff = std::strtoull(line.c_str() + 7, nullptr, 16);
      return (eff >> 6 & 1) && (eff >> 7 & 1);  // CAP_SETGID = 6, CAP_SETUID = 7
    }
  }
  return false;
}

// The host identity the build runs as; nullopt: the caller's own.
Result<std::optional<SubprocessOptions::Credentials>> build_identity(const SandboxConfig& c) {
  if (!can_change_uid()) return std::optional<SubprocessOptions::Credentials>{};
  if (c.host_uid >= 0) {
    const auto gid = c.host_gid >= 0 ? c.host_gid : c.host_uid;
    if (c.host_uid == 0 || gid == 0) return internal_error("the build user must not be root");
    return std::optional(SubprocessOptions::Credentials{static_cast<std::uint32_t>(c.host_uid), static_cast<std::uint32_t>(gid)});
  }
  passwd* pw = ::getpwnam(c.host_user.c_str());
  // Root creates the user on first use; concurrent creators (parallel
  // tests, several workers) see "exists" (9) or a busy lock (10): retry.
  std::string why;
  for (int attempt = 0; !pw && ::geteuid() == 0 && attempt < 20; ++attempt) {
    SubprocessOptions o;
    o.timeout = std::chrono::seconds(30);
    o.merge_stderr = true;
    auto r = run_subprocess({"useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                             "--shell", "/usr/sbin/nologin", "--comment", "kmr sandboxed builds", c.host_user},
                            o);
    why = r ? r->out : r.error().to_string();
    if (!r) break;
    pw = ::getpwnam(c.host_user.c_str());
    if (!pw && !r->success()) ::usleep(250000);
  }
  if (!pw && !why.empty()) return io_error("cannot create the build user " + c.host_user + ": " + why);
  if (!pw) return not_found("build user '" + c.host_user + "' does not exist (create it: useradd --system " + c.host_user + ")");
  if (pw->pw_uid == 0 || pw->pw_gid == 0) return internal_error("the build user " + c.host_user + " must not be root");
  return std::optional(SubprocessOptions::Credentials{pw->pw_uid, pw->pw_gid});
}

// Hands the work directory to the build user (no symlink is followed).
thread_local std::uint32_t chown_uid, chown_gid;
Result<void> chown_tree(const std::string& dir, std::uint32_t uid, std::uint32_t gid) {
  chown_uid = uid;
  chown_gid = gid;
  const int r = ::nftw(
      dir.c_str(),
      [](const char* path, const struct stat*, int, FTW*) { return ::lchown(path, chown_uid, chown_gid) == 0 ? 0 : 1; },
      64, FTW_PHYS);
  if (r != 0) return io_error("cannot hand " + dir + " to the build user: " + std::strerror(errno));
  return ok();
}

Result<void> make_dir(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return io_error("cannot create " + path + ": " + ec.message());
  return ok();
}

std::uint64_t tree_bytes(const std::string& dir) {
  std::uint64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
       !ec && it != end; it.increment(ec)) {
    struct stat st;
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      total += static_cast<std::uint64_t>(st.st_blocks) * 512u;
    }
  }
  return total;
}

}  // namespace

const std::vector<std::string>& sandbox_etc_allowlist() {
  // Toolchain configuration only: dynamic linker, alternatives links, distro
  // build tool settings (makepkg, pacman, dpkg, rpm, nix), interpreters'
  // site config, OpenSSL's config file, name-service and MIME tables. No
  // keys, certificates, credentials, accounts (passwd/group are generated),
  // or service config.
  static const std::vector<std::string> kEtc = {
      "alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "nsswitch.conf", "localtime", "timezone",
      "debian_version", "os-release", "lsb-release", "makepkg.conf", "makepkg.conf.d", "pacman.conf", "dpkg",
      "rpm", "nix", "perl", "python3", "python3.11", "protocols", "services", "mime.types", "magic",
      "magic.mime", "xattr.conf", "shells", "xml", "sgml", "fonts", "manpath.config", "environment.d",
      // OpenSSL's configuration only (kernel builds run `openssl req` for
      // the module signing key): not /etc/ssl/certs, not /etc/ssl/private.
      "ssl/openssl.cnf",
  };
  return kEtc;
}

const std::vector<std::string>& sandbox_var_allowlist() {
  static const std::vector<std::string> kVar = {"lib/dpkg", "lib/pacman", "lib/rpm"};
  return kVar;
}

std::string disk_limit_reason(std::uint64_t limit, std::uint64_t used) {
  return "disk limit (" + std::to_string(limit) + " bytes) exceeded: " + std::to_string(used) +
         " bytes under the work directory";
}

std::string SandboxResult::describe() const {
  if (process.killed_reason.empty() && disk_exceeded) return disk_limit_reason(disk_limit, disk_used);
  return process.describe();
}

std::string sandbox_build_dir(const SandboxConfig& config) { return config.work_dir + "/build"; }

std::map<std::string, std::string> sandbox_env(const SandboxConfig& config) {
  std::map<std::string, std::string> env = {
      {"PATH", kPath},
      {"HOME", config.build_path},
      {"USER", config.user},
      {"LOGNAME", config.user},
      {"TZ", "UTC"},
      {"LANG", "C.UTF-8"},
      {"LC_ALL", "C.UTF-8"},
      {"TMPDIR", "/tmp"},
      {"SHELL", "/bin/sh"},
      {"HOSTNAME", config.hostname},
      // Only one uid is mapped in the user namespace, so the kernel answers
      // chown to any other id with EINVAL, which fakeroot (it forgives only
      // EPERM) passes on: `cp -a`, `install -o root`, `chown root:root` fail.
      // fakeroot then only records the ownership, as packaging needs.
      {"FAKEROOTDONTTRYCHOWN", "1"},
  };
  for (const auto& [k, v] : config.env) env[k] = v;
  return env;
}

std::vector<std::string> sandbox_argv(const SandboxConfig& config, const std::vector<std::string>& argv,
                                      int seccomp_fd) {
  std::vector<std::string> a = {"/usr/bin/prlimit", "--core=0"};
  if (config.memory_bytes) a.push_back("--as=" + std::to_string(config.memory_bytes));
  if (config.cpu_seconds) a.push_back("--cpu=" + std::to_string(config.cpu_seconds));
  if (config.file_size_bytes) a.push_back("--fsize=" + std::to_string(config.file_size_bytes));
  a.insert(a.end(), {
      "--", "/usr/bin/bwrap",
      "--unshare-user", "--uid", std::to_string(config.uid), "--gid", std::to_string(config.gid),
      "--disable-userns", "--cap-drop", "ALL",
      "--unshare-net", "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try",
      "--hostname", config.hostname,
      "--die-with-parent", "--new-session",
      "--tmpfs", "/",
  });
  if (seccomp_fd >= 0) a.insert(a.end(), {"--seccomp", std::to_string(seccomp_fd)});
  add_toolchain(config, a);
  // The host's Nix store only when asked for (a job normally has its own,
  // as a mount at /nix).
  if (config.bind_nix_writable && ::access("/nix", F_OK) == 0) a.insert(a.end(), {"--bind", "/nix", "/nix"});
  const std::string etc = config.work_dir + "/etc";
  a.insert(a.end(), {
      "--dev", "/dev", "--proc", "/proc",
      "--ro-bind", etc + "/passwd", "/etc/passwd",
      "--ro-bind", etc + "/group", "/etc/group",
      "--ro-bind", etc + "/hosts", "/etc/hosts",
      "--ro-bind", etc + "/hostname", "/etc/hostname",
      "--bind", config.work_dir + "/tmp", "/tmp",
      "--bind", config.work_dir + "/tmp", "/var/tmp",
      "--dir", config.build_path,
      "--bind", sandbox_build_dir(config), config.build_path,
  });
  for (const auto& m : config.mounts) {
    a.insert(a.end(), {m.writable ? "--bind" : "--ro-bind", m.host, m.inside});
  }
  a.insert(a.end(), {"--remount-ro", "/", "--chdir", config.build_path, "--clearenv"});
  for (const auto& [k, v] : sandbox_env(config)) a.insert(a.end(), {"--setenv", k, v});
  // bwrap has no umask option: a one-line shim sets it and execs the build.
  a.insert(a.end(), {"--", "/bin/sh", "-c", "umask 022 && exec \"$@\"", "kmr-sandbox"});
  a.insert(a.end(), argv.begin(), argv.end());
  return a;
}

Result<void> sandbox_available() {
  if (!have_program("/usr/bin/bwrap")) return not_found("bubblewrap (/usr/bin/bwrap) is not installed");
  if (!have_program("/usr/bin/prlimit")) return not_found("prlimit (/usr/bin/prlimit) is not installed");
  SubprocessOptions o;
  o.timeout = std::chrono::seconds(20);
  o.merge_stderr = true;
  KMR_ASSIGN_OR_RETURN(auto r, run_subprocess({"/usr/bin/bwrap", "--unshare-user", "--unshare-net", "--unshare-pid",
                                               "--ro-bind", "/", "/", "--proc", "/proc", "--", "/bin/true"},
                                              o));
  if (!r.success()) return Error(ErrorCode::kPermissionDenied, "bubblewrap cannot create namespaces: " + r.out);
  const std::string cg = cgroup_unavailable_reason();
  if (!cg.empty()) return Error(ErrorCode::kPermissionDenied, "no cgroup for the build limits: " + cg);
  return ok();
}

namespace {

Error sys_error(const std::string& what) { return io_error(what + ": " + std::strerror(errno)); }

// True when `uid`/`gid` may search every directory above `path` (the path
// itself is handed to the build user).
bool ancestors_searchable(const std::string& path, std::uint32_t uid, std::uint32_t gid) {
  for (fs::path p = fs::path(path).parent_path(); !p.empty(); p = p.parent_path()) {
    struct stat st;
    if (::stat(p.c_str(), &st) != 0) return false;
    const mode_t need = st.st_uid == uid ? S_IXUSR : st.st_gid == gid ? S_IXGRP : S_IXOTH;
    if ((st.st_mode & need) == 0) return false;
    if (p == p.root_path()) break;
  }
  return true;
}

// Where a work directory the build user cannot reach is moved for the run:
// a fresh directory below /var/tmp/kmr-sandbox (root-owned, mode 0711).
Result<std::string> make_staging_dir() {
  const std::string base = "/var/tmp/kmr-sandbox";
  if (::mkdir(base.c_str(), 0711) != 0 && errno != EEXIST) return sys_error("mkdir " + base);
  struct stat st;
  if (::lstat(base.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0) {
    return internal_error(base + " must be a root-owned directory");
  }
  if ((st.st_mode & 07777) != 0711 && ::chmod(base.c_str(), 0711) != 0) return sys_error("chmod " + base);
  std::string templ = base + "/XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return sys_error("mkdtemp " + templ);
  if (::chmod(templ.c_str(), 0711) != 0) return sys_error("chmod " + templ);
  return templ;
}

Result<SandboxResult> run_in_place(const SandboxConfig& config, const std::vector<std::string>& argv);

}  // namespace

// A work directory below a folder the unprivileged build user may not enter
// (Bazel's TEST_TMPDIR under /root, rebuilderd's private temp folder) is
// moved, for the run only, into a reachable staging folder and moved back.
Result<SandboxResult> run_in_sandbox(const SandboxConfig& config, const std::vector<std::string>& argv) {
  if (config.work_dir.empty() || config.work_dir[0] != '/') {
    return internal_error("sandbox work_dir must be an absolute path: '" + config.work_dir + "'");
  }
  if (argv.empty()) return internal_error("sandbox: empty command");
  KMR_ASSIGN_OR_RETURN(auto identity, build_identity(config));
  if (!identity || ancestors_searchable(config.work_dir, identity->uid, identity->gid)) return run_in_place(config, argv);
  KMR_TRY(make_dir(config.work_dir));
  KMR_ASSIGN_OR_RETURN(const std::string staging, make_staging_dir());
  const std::string moved = staging + "/w";
  if (::rename(config.work_dir.c_str(), moved.c_str()) != 0) {
    const int e = errno;
    ::rmdir(staging.c_str());
    errno = e;
    return sys_error("the build user cannot reach " + config.work_dir + ", and moving it to " + staging +
                     " failed (use a work directory below /var/tmp)");
  }
  SandboxConfig c = config;
  c.work_dir = moved;
  for (auto& m : c.mounts) {
    if (m.host == config.work_dir || m.host.rfind(config.work_dir + "/", 0) == 0) {
      m.host = moved + m.host.substr(config.work_dir.size());
    }
  }
  auto result = run_in_place(c, argv);
  if (::rename(moved.c_str(), config.work_dir.c_str()) != 0) {
    return sys_error("cannot move the work directory back from " + moved + " to " + config.work_dir);
  }
  ::rmdir(staging.c_str());
  if (result) result->log_path = config.work_dir + "/build.log";
  return result;
}

namespace {

Result<SandboxResult> run_in_place(const SandboxConfig& config, const std::vector<std::string>& argv) {
  KMR_TRY(make_dir(sandbox_build_dir(config)));
  KMR_TRY(make_dir(config.work_dir + "/tmp"));
  KMR_TRY(make_dir(config.work_dir + "/etc"));
  const std::string etc = config.work_dir + "/etc/";
  const std::string uid = std::to_string(config.uid), gid = std::to_string(config.gid);
  std::string passwd = "root:x:0:0:root:/root:/bin/sh\n";
  std::string group = "root:x:0:\n";
  if (config.uid != 0) passwd += config.user + ":x:" + uid + ":" + gid + ":kmr builder:" + config.build_path + ":/bin/sh\n";
  if (config.gid != 0) group += config.user + ":x:" + gid + ":\n";
  passwd += "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
  group += "nogroup:x:65534:\n";
  const std::string hosts = "127.0.0.1 localhost " + config.hostname + "\n::1 localhost\n";
  KMR_TRY(write_file_atomic(etc + "passwd", as_bytes(passwd)));
  KMR_TRY(write_file_atomic(etc + "group", as_bytes(group)));
  KMR_TRY(write_file_atomic(etc + "hosts", as_bytes(hosts)));
  KMR_TRY(write_file_atomic(etc + "hostname", as_bytes(config.hostname + "\n")));

  KMR_ASSIGN_OR_RETURN(auto identity, build_identity(config));
  if (identity) KMR_TRY(chown_tree(config.work_dir, identity->uid, identity->gid));

  static std::atomic<unsigned> serial{0};
  const std::string cg_name = "kmr-build-" + std::to_string(::getpid()) + "-" + std::to_string(serial++);
  KMR_ASSIGN_OR_RETURN(auto cgroup, BuildCgroup::create(cg_name, {config.memory_bytes, config.tasks_max},
                                                        config.cgroup_parent));
  KMR_ASSIGN_OR_RETURN(const int seccomp_fd, sandbox_seccomp_fd());
  struct CloseFd {
    int fd;
    ~CloseFd() { ::close(fd); }
  } close_seccomp{seccomp_fd};

  SubprocessOptions o;
  o.timeout = config.wall_time;
  o.output_cap = config.log_cap;
  o.merge_stderr = true;
  o.env = std::vector<std::string>{std::string("PATH=") + kPath};
  o.pass_fds = {seccomp_fd};  // becomes 3 in the child
  o.join_cgroup_procs = cgroup->procs_files();
  o.run_as = identity;
  o.watchdog_interval = config.disk_poll;
  o.watchdog = [&]() -> std::string {
    std::string hit = cgroup->limit_hit();
    if (!hit.empty()) return hit;
    if (config.disk_bytes == 0) return "";
    const std::uint64_t used = tree_bytes(config.work_dir);
    return used <= config.disk_bytes ? "" : disk_limit_reason(config.disk_bytes, used);
  };
  o.on_kill = [&] { cgroup->kill_all(); };
  KMR_ASSIGN_OR_RETURN(auto proc, run_subprocess(sandbox_argv(config, argv, 3), o));
  cgroup->kill_all();  // nothing of the build outlives it
  // A limit the kernel enforced between two watchdog polls fails the build
  // too (a build that lost a fork or a process to it is not a clean build).
  if (proc.killed_reason.empty()) proc.killed_reason = cgroup->limit_hit();
  const std::uint64_t peak = cgroup->memory_peak();
  cgroup.reset();

  SandboxResult result;
  result.process = std::move(proc);
  result.log_path = config.work_dir + "/build.log";
  std::string log = result.process.out;
  if (result.process.out_truncated) log += "\n[kmr: log truncated to " + std::to_string(config.log_cap) + " bytes]\n";
  log += "\n[kmr: " + result.process.describe() + " in " + std::to_string(result.process.elapsed.count()) + " ms]\n";
  KMR_TRY(write_file_atomic(result.log_path, as_bytes(log)));
  result.disk_used = tree_bytes(config.work_dir);
  result.disk_limit = config.disk_bytes;
  result.disk_exceeded = config.disk_bytes != 0 && result.disk_used > config.disk_bytes;
  result.memory_peak = peak;
  result.host_uid = identity ? identity->uid : ::geteuid();
  return result;
}

}  // namespace

}  // namespace kmr::build

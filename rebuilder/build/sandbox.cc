#include "rebuilder/build/sandbox.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "rebuilder/base/file.h"

namespace kmr::build {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPath = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

// Host top-level directories visible (read-only) inside the sandbox.
constexpr const char* kHostDirs[] = {"/usr", "/etc", "/opt", "/var", "/srv"};
// Top-level symlinks recreated inside (merged-/usr layouts).
constexpr const char* kHostLinks[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};

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

std::string SandboxResult::describe() const {
  if (disk_exceeded) return "disk limit exceeded (" + std::to_string(disk_used) + " bytes)";
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
  };
  for (const auto& [k, v] : config.env) env[k] = v;
  return env;
}

std::vector<std::string> sandbox_argv(const SandboxConfig& config, const std::vector<std::string>& argv) {
  std::vector<std::string> a = {"/usr/bin/prlimit", "--core=0"};
  if (config.memory_bytes) a.push_back("--as=" + std::to_string(config.memory_bytes));
  if (config.cpu_seconds) a.push_back("--cpu=" + std::to_string(config.cpu_seconds));
  if (config.file_size_bytes) a.push_back("--fsize=" + std::to_string(config.file_size_bytes));
  a.insert(a.end(), {
      "--", "/usr/bin/bwrap",
      "--unshare-user", "--uid", std::to_string(config.uid), "--gid", std::to_string(config.gid),
      "--unshare-net", "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try",
      "--hostname", config.hostname,
      "--die-with-parent", "--new-session",
      "--tmpfs", "/",
  });
  for (const char* d : kHostDirs) {
    if (::access(d, F_OK) == 0) a.insert(a.end(), {"--ro-bind", d, d});
  }
  std::error_code ec;
  for (const char* l : kHostLinks) {
    if (fs::is_symlink(l, ec)) {
      a.insert(a.end(), {"--symlink", fs::read_symlink(l, ec).string(), l});
    } else if (fs::is_directory(l, ec)) {
      a.insert(a.end(), {"--ro-bind", l, l});
    }
  }
  if (::access("/nix", F_OK) == 0) {
    a.insert(a.end(), {config.bind_nix_writable ? "--bind" : "--ro-bind", "/nix", "/nix"});
  }
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
  return ok();
}

Result<SandboxResult> run_in_sandbox(const SandboxConfig& config, const std::vector<std::string>& argv) {
  if (config.work_dir.empty() || config.work_dir[0] != '/') {
    return internal_error("sandbox work_dir must be an absolute path: '" + config.work_dir + "'");
  }
  if (argv.empty()) return internal_error("sandbox: empty command");
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

  SubprocessOptions o;
  o.timeout = config.wall_time;
  o.output_cap = config.log_cap;
  o.merge_stderr = true;
  o.env = std::vector<std::string>{std::string("PATH=") + kPath};
  KMR_ASSIGN_OR_RETURN(auto proc, run_subprocess(sandbox_argv(config, argv), o));

  SandboxResult result;
  result.process = std::move(proc);
  result.log_path = config.work_dir + "/build.log";
  std::string log = result.process.out;
  if (result.process.out_truncated) log += "\n[kmr: log truncated to " + std::to_string(config.log_cap) + " bytes]\n";
  log += "\n[kmr: " + result.process.describe() + " in " + std::to_string(result.process.elapsed.count()) + " ms]\n";
  KMR_TRY(write_file_atomic(result.log_path, as_bytes(log)));
  result.disk_used = tree_bytes(sandbox_build_dir(config)) + tree_bytes(config.work_dir + "/tmp");
  result.disk_exceeded = config.disk_bytes != 0 && result.disk_used > config.disk_bytes;
  return result;
}

}  // namespace kmr::build

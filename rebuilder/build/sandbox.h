#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "rebuilder/base/result.h"
#include "rebuilder/base/subprocess.h"

namespace kmr::build {

// One host path made visible inside the sandbox.
struct Mount {
  std::string host;
  std::string inside;
  bool writable = false;
};

// A bubblewrap sandbox for one build.
//
// Layout on the host: `work_dir` is the sandbox's directory; it holds
//   build/     bound read-write at `build_path` (pinned, default /build)
//   tmp/       bound read-write at /tmp and /var/tmp
//   etc/       generated passwd, group, hosts (bound read-only)
//   build.log  the build's merged stdout+stderr (head and tail kept)
// Nothing else is writable. The root is a read-only tmpfs holding read-only
// binds of the host's /usr, /etc, /opt, /var, /nix (when present) and the
// /bin, /lib... symlinks; /root, /home, /tmp, /run, /work and every other
// host directory are absent. Network: a fresh namespace with only loopback.
struct SandboxConfig {
  std::string work_dir;                 // host directory, created if missing
  std::string build_path = "/build";    // pinned path inside
  std::string user = "builder";
  std::uint32_t uid = 1000;
  std::uint32_t gid = 1000;
  std::string hostname = "kmr-build";
  // Extra environment on top of the pinned one (TZ, LANG, LC_ALL, PATH,
  // HOME, USER, LOGNAME, TMPDIR, SOURCE_DATE_EPOCH when set below).
  std::map<std::string, std::string> env;
  std::vector<Mount> mounts;            // extra inputs (read-only unless writable)
  bool bind_nix_writable = false;       // nix needs its store and db (see README)
  // Limits (0 = none): RLIMIT_AS, RLIMIT_CPU (per process), RLIMIT_FSIZE
  // (per file) applied with prlimit to every process in the sandbox; the wall
  // time kills the whole sandbox (process group + pid namespace).
  std::uint64_t memory_bytes = 8ull << 30;
  std::uint64_t cpu_seconds = 4 * 3600;
  std::uint64_t file_size_bytes = 8ull << 30;
  // Total bytes the build may leave under work_dir; checked after the run.
  std::uint64_t disk_bytes = 64ull << 30;
  std::chrono::milliseconds wall_time{std::chrono::hours(4)};
  std::size_t log_cap = 8 << 20;
};

struct SandboxResult {
  SubprocessResult process;   // out = the merged log (capped)
  std::string log_path;       // work_dir/build.log
  std::uint64_t disk_used = 0;
  bool disk_exceeded = false;
  bool success() const { return process.success() && !disk_exceeded; }
  std::string describe() const;
};

// Host directory bound at build_path.
std::string sandbox_build_dir(const SandboxConfig& config);

// The full command line (prlimit + bwrap + umask shim + argv). Exposed for
// tests and for `--keep` logs.
std::vector<std::string> sandbox_argv(const SandboxConfig& config, const std::vector<std::string>& argv);

// The pinned environment inside the sandbox.
std::map<std::string, std::string> sandbox_env(const SandboxConfig& config);

// Prepares work_dir (build/, tmp/, etc/) and runs argv inside the sandbox.
// Errors only when the sandbox cannot be set up or bwrap cannot start; a
// failing or timed-out build is a result.
Result<SandboxResult> run_in_sandbox(const SandboxConfig& config, const std::vector<std::string>& argv);

// True when bubblewrap is installed and can create the namespaces here.
Result<void> sandbox_available();

}  // namespace kmr::build

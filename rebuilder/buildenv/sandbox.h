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
//   etc/       generated passwd, group, hosts, hostname (bound read-only)
//   build.log  the build's merged stdout+stderr (head and tail kept)
// Nothing else is writable. The root is a read-only tmpfs holding only the
// toolchain: read-only binds of `/usr` (+ the /bin, /lib... links), the /etc
// entries in sandbox_etc_allowlist() and the package databases in
// sandbox_var_allowlist(), all taken from `root_dir` when it is set (a
// per-distro build root: a chroot tree made by mmdebstrap, pacstrap...) else
// from the host. The host's /etc, /var, /srv, /opt, /root, /home, /run, /tmp
// are never bound whole. Network: a fresh namespace with only loopback.
//
// Identity: inside, `uid`/`gid` (1000 `builder`, or 0 for backends that
// build as root) map to one unprivileged host uid. When the caller may change
// uid (root, or CAP_SETUID+CAP_SETGID), bwrap runs as the build user
// (`host_uid`/`host_gid`, else the system user `host_user`, created on first
// use), with no supplementary groups, no capabilities and no_new_privs; the
// work directory is handed to it. Otherwise bwrap runs as the caller.
//
// Containment: bwrap --cap-drop ALL --disable-userns and a seccomp filter
// (seccomp.h); every descriptor but 0-2 is closed; one cgroup holds the
// whole build with `memory_bytes` and `tasks_max`; a watchdog polls the bytes
// under work_dir every `disk_poll` and kills the build past `disk_bytes`.
struct SandboxConfig {
  std::string work_dir;                 // host directory, created if missing
  std::string build_path = "/build";    // pinned path inside
  std::string user = "builder";
  std::uint32_t uid = 1000;
  std::uint32_t gid = 1000;
  std::string hostname = "kmr-build";
  // Extra environment on top of the pinned one (TZ, LANG, LC_ALL, PATH,
  // HOME, USER, LOGNAME, TMPDIR, SHELL, HOSTNAME, FAKEROOTDONTTRYCHOWN).
  std::map<std::string, std::string> env;
  std::vector<Mount> mounts;            // extra inputs (read-only unless writable)
  // The host's /nix, writable (not used by the backends: a Nix job binds its
  // own store at /nix through `mounts`). The host /nix is absent otherwise.
  bool bind_nix_writable = false;
  // Where the toolchain comes from ("" = the host). See above.
  std::string root_dir;
  // The unprivileged host identity of the build (see above).
  std::string host_user = "kmrbuild";
  std::int64_t host_uid = -1;
  std::int64_t host_gid = -1;
  // Limits (0 = none). Whole build (cgroup): memory_bytes, tasks_max.
  // Per process (prlimit): RLIMIT_AS = memory_bytes, RLIMIT_CPU, RLIMIT_FSIZE.
  // The wall time kills the whole sandbox (process group + pid namespace +
  // cgroup).
  std::uint64_t memory_bytes = 8ull << 30;
  std::uint64_t tasks_max = 4096;
  std::uint64_t cpu_seconds = 4 * 3600;
  std::uint64_t file_size_bytes = 8ull << 30;
  // Total bytes the build may leave under work_dir: polled while it runs
  // (the build is killed past it) and checked after.
  std::uint64_t disk_bytes = 64ull << 30;
  std::chrono::milliseconds disk_poll{std::chrono::seconds(2)};
  std::chrono::milliseconds wall_time{std::chrono::hours(4)};
  std::size_t log_cap = 8 << 20;
  // Parent of the build's cgroup ("" = the caller's own; see cgroup.h).
  std::string cgroup_parent;
};

// /etc entries a build may see (relative to /etc), bound read-only when present.
const std::vector<std::string>& sandbox_etc_allowlist();
// /var entries a build may see (package databases), bound read-only when present.
const std::vector<std::string>& sandbox_var_allowlist();

struct SandboxResult {
  SubprocessResult process;   // out = the merged log (capped); killed_reason names a crossed limit
  std::string log_path;       // work_dir/build.log
  std::uint64_t disk_used = 0;
  std::uint64_t disk_limit = 0;
  bool disk_exceeded = false;
  std::uint64_t memory_peak = 0;  // bytes, when the cgroup reports it
  std::uint32_t host_uid = 0;     // the host uid the build ran as
  bool success() const { return process.success() && !disk_exceeded; }
  std::string describe() const;
};

// "disk limit (N bytes) exceeded: M bytes under the work directory".
std::string disk_limit_reason(std::uint64_t limit, std::uint64_t used);

// Host directory bound at build_path.
std::string sandbox_build_dir(const SandboxConfig& config);

// The full command line (prlimit + bwrap + umask shim + argv). Exposed for
// tests and for `--keep` logs. `seccomp_fd` is the descriptor number bwrap
// reads the filter from (-1: none).
std::vector<std::string> sandbox_argv(const SandboxConfig& config, const std::vector<std::string>& argv,
                                      int seccomp_fd = 3);

// The pinned environment inside the sandbox.
std::map<std::string, std::string> sandbox_env(const SandboxConfig& config);

// Prepares work_dir (build/, tmp/, etc/) and runs argv inside the sandbox.
// Errors only when the sandbox cannot be set up or bwrap cannot start; a
// failing or timed-out build is a result.
Result<SandboxResult> run_in_sandbox(const SandboxConfig& config, const std::vector<std::string>& argv);

// True when bubblewrap is installed and can create the namespaces here, and
// a cgroup for the build's limits can be made.
Result<void> sandbox_available();

}  // namespace kmr::build

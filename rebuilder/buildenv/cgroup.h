#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rebuilder/base/result.h"

namespace kmr::build {

// Memory and process-count limits for a whole build (every process in it
// together), as one kernel control group.
//
// cgroup v2 (unified hierarchy with the memory and pids controllers, as on a
// systemd host): a child of the caller's own cgroup, or of `parent` when
// given (a delegated subtree, e.g. systemd's Delegate=yes). When the parent
// still holds processes, the caller moves itself into a `kmr-supervisor` leaf
// first so the controllers can be enabled (the no-internal-process rule).
// cgroup v1 (hybrid hosts): one child in the memory and one in the pids
// hierarchy, each under the caller's own group there.
struct CgroupLimits {
  std::uint64_t memory_bytes = 0;  // memory.max / memory.limit_in_bytes; 0 = none
  std::uint64_t tasks_max = 0;     // pids.max; 0 = none
};

class BuildCgroup {
 public:
  ~BuildCgroup();
  BuildCgroup(const BuildCgroup&) = delete;
  BuildCgroup& operator=(const BuildCgroup&) = delete;

  // Creates `name` with the limits. Errors when no writable hierarchy with
  // both controllers exists.
  static Result<std::unique_ptr<BuildCgroup>> create(const std::string& name, const CgroupLimits& limits,
                                                      const std::string& parent = "");

  // The cgroup.procs files a process writes itself into to join.
  std::vector<std::string> procs_files() const;
  // "memory limit (... bytes) reached: the kernel killed N process(es)",
  // "process limit (N) reached", or "" while no limit was hit.
  std::string limit_hit() const;
  // SIGKILLs every process in the group and waits (up to ~2 s) until it is empty.
  void kill_all();
  // Peak memory in bytes when the kernel reports it (0 otherwise).
  std::uint64_t memory_peak() const;
  // "v2" or "v1".
  const std::string& version() const { return version_; }
  // The directories (one for v2, memory + pids for v1).
  const std::vector<std::string>& dirs() const { return dirs_; }

 private:
  BuildCgroup() = default;
  std::string version_;
  std::vector<std::string> dirs_;
  std::string memory_dir_, pids_dir_;
  CgroupLimits limits_;
};

// Why no build cgroup can be made here ("" when one can).
std::string cgroup_unavailable_reason();

}  // namespace kmr::build

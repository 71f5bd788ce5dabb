#include "rebuilder/buildenv/cgroup.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace kmr::build {
namespace {

struct MountPoint {
  std::string dir;
  std::string type;     // cgroup2 | cgroup
  std::string options;  // comma list (v1: names the controllers)
};

std::vector<MountPoint> cgroup_mounts() {
  std::vector<MountPoint> out;
  std::ifstream in("/proc/self/mounts");
  std::string dev, dir, type, opts;
  std::string rest;
  while (in >> dev >> dir >> type >> opts) {
    std::getline(in, rest);
    if (type == "cgroup2" || type == "cgroup") out.push_back({dir, type, "," + opts + ","});
  }
  return out;
}

// The caller's own cgroup path in the hierarchy whose /proc/self/cgroup
// controller field is `controllers` ("" for v2).
std::string own_path(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    const auto a = line.find(':');
    const auto b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string ctrls = "," + line.substr(a + 1, b - a - 1) + ",";
    const std::string path = line.substr(b + 1);
    if (controller.empty() ? ctrls == ",," : ctrls.find("," + controller + ",") != std::string::npos) {
      return path == "/" ? "" : path;
    }
  }
  return "";
}

std::string read_small(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<void> write_value(const std::string& path, const std::string& value) {
  std::ofstream out(path);
  if (!out) return io_error("cannot open " + path + ": " + std::strerror(errno));
  out << value;
  out.flush();
  if (!out) return io_error("cannot write '" + value + "' to " + path + ": " + std::strerror(errno));
  return ok();
}

// Value of `key` in a flat-keyed file such as memory.events ("oom_kill 3").
std::uint64_t keyed(const std::string& path, const std::string& key) {
  std::istringstream in(read_small(path));
  std::string k;
  std::uint64_t v = 0;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}

bool has_word(const std::string& text, const std::string& word) {
  std::istringstream in(text);
  std::string w;
  while (in >> w) {
    if (w == word) return true;
  }
  return false;
}

const MountPoint* find_v2(const std::vector<MountPoint>& mounts) {
  for (const auto& m : mounts) {
    if (m.type != "cgroup2") continue;
    const std::string controllers = read_small(m.dir + "/cgroup.controllers");
    if (has_word(controllers, "memory") && has_word(controllers, "pids")) return &m;
  }
  return nullptr;
}

const MountPoint* find_v1(const std::vector<MountPoint>& mounts, const std::string& controller) {
  for (const auto& m : mounts) {
    if (m.type == "cgroup" && m.options.find("," + controller + ",") != std::string::npos) return &m;
  }
  return nullptr;
}

Result<void> make_group_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return io_error("cannot create cgroup " + dir + ": " + std::strerror(errno));
  }
  return ok();
}

std::vector<int> group_pids(const std::string& dir) {
  std::vector<int> out;
  std::istringstream in(read_small(dir + "/cgroup.procs"));
  int pid;
  while (in >> pid) out.push_back(pid);
  return out;
}

// Enables memory and pids for the children of `base` (v2). When `base`
// still holds processes (a delegated service cgroup holding the worker and
// its `kmr rebuild`), they move into a `kmr-supervisor` leaf first.
Result<void> enable_v2_controllers(const std::string& base) {
  const std::string sub = read_small(base + "/cgroup.subtree_control");
  if (has_word(sub, "memory") && has_word(sub, "pids")) return ok();
  if (write_value(base + "/cgroup.subtree_control", "+memory +pids")) return ok();
  KMR_TRY(make_group_dir(base + "/kmr-supervisor"));
  for (int pid : group_pids(base)) (void)write_value(base + "/kmr-supervisor/cgroup.procs", std::to_string(pid));
  return write_value(base + "/cgroup.subtree_control", "+memory +pids");
}

}  // namespace

std::string cgroup_unavailable_reason() {
  const auto mounts = cgroup_mounts();
  if (find_v2(mounts)) return "";
  if (find_v1(mounts, "memory") && find_v1(mounts, "pids")) return "";
  return "no cgroup hierarchy with the memory and pids controllers is mounted";
}

Result<std::unique_ptr<BuildCgroup>> BuildCgroup::create(const std::string& name, const CgroupLimits& limits,
                                                         const std::string& parent) {
  if (name.empty() || name.find('/') != std::string::npos || name[0] == '.') {
    return internal_error("bad cgroup name '" + name + "'");
  }
  std::unique_ptr<BuildCgroup> g(new BuildCgroup());
  g->limits_ = limits;
  const auto mounts = cgroup_mounts();
  if (const MountPoint* v2 = find_v2(mounts)) {
    const std::string base = parent.empty() ? v2->dir + own_path("") : parent;
    KMR_TRY(enable_v2_controllers(base));
    const std::string dir = base + "/" + name;
    KMR_TRY(make_group_dir(dir));
    g->version_ = "v2";
    g->dirs_ = {dir};
    g->memory_dir_ = g->pids_dir_ = dir;
    if (limits.memory_bytes) {
      KMR_TRY(write_value(dir + "/memory.max", std::to_string(limits.memory_bytes)));
      if (::access((dir + "/memory.swap.max").c_str(), F_OK) == 0) KMR_TRY(write_value(dir + "/memory.swap.max", "0"));
      // Kill the whole build on OOM, not just one process.
      if (::access((dir + "/memory.oom.group").c_str(), F_OK) == 0) KMR_TRY(write_value(dir + "/memory.oom.group", "1"));
    }
    if (limits.tasks_max) KMR_TRY(write_value(dir + "/pids.max", std::to_string(limits.tasks_max)));
    return g;
  }
  const MountPoint* mem = find_v1(mounts, "memory");
  const MountPoint* pids = find_v1(mounts, "pids");
  if (!mem || !pids) return not_found(cgroup_unavailable_reason());
  g->version_ = "v1";
  g->memory_dir_ = (parent.empty() ? mem->dir + own_path("memory") : parent + "/memory") + "/" + name;
  g->pids_dir_ = (parent.empty() ? pids->dir + own_path("pids") : parent + "/pids") + "/" + name;
  KMR_TRY(make_group_dir(g->memory_dir_));
  g->dirs_.push_back(g->memory_dir_);
  KMR_TRY(make_group_dir(g->pids_dir_));
  g->dirs_.push_back(g->pids_dir_);
  if (limits.memory_bytes) {
    KMR_TRY(write_value(g->memory_dir_ + "/memory.limit_in_bytes", std::to_string(limits.memory_bytes)));
    const std::string memsw = g->memory_dir_ + "/memory.memsw.limit_in_bytes";
    if (::access(memsw.c_str(), F_OK) == 0) KMR_TRY(write_value(memsw, std::to_string(limits.memory_bytes)));
  }
  if (limits.tasks_max) KMR_TRY(write_value(g->pids_dir_ + "/pids.max", std::to_string(limits.tasks_max)));
  return g;
}

BuildCgroup::~BuildCgroup() {
  kill_all();
  for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
    for (int i = 0; i < 50 && ::rmdir(it->c_str()) != 0 && errno == EBUSY; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

std::vector<std::string> BuildCgroup::procs_files() const {
  std::vector<std::string> out;
  for (const auto& d : dirs_) out.push_back(d + "/cgroup.procs");
  return out;
}

std::string BuildCgroup::limit_hit() const {
  const std::uint64_t oom = version_ == "v2" ? keyed(memory_dir_ + "/memory.events", "oom_kill")
                                              : keyed(memory_dir_ + "/memory.oom_control", "oom_kill");
  if (oom > 0) {
    return "memory limit (" + std::to_string(limits_.memory_bytes) + " bytes) reached: the kernel killed " +
           std::to_string(oom) + " process(es)";
  }
  if (keyed(pids_dir_ + "/pids.events", "max") > 0) {
    return "process limit (" + std::to_string(limits_.tasks_max) + " processes) reached";
  }
  return "";
}

std::uint64_t BuildCgroup::memory_peak() const {
  const std::string f = version_ == "v2" ? "/memory.peak" : "/memory.max_usage_in_bytes";
  const std::string v = read_small(memory_dir_ + f);
  return v.empty() ? 0 : std::strtoull(v.c_str(), nullptr, 10);
}

void BuildCgroup::kill_all() {
  if (version_ == "v2" && ::access((pids_dir_ + "/cgroup.kill").c_str(), F_OK) == 0) {
    (void)write_value(pids_dir_ + "/cgroup.kill", "1");
  }
  // v1 (and v2 without cgroup.kill): SIGKILL what is listed until nothing is
  // left; a fork racing the loop is listed on the next round.
  for (int round = 0; round < 100; ++round) {
    bool any = false;
    for (const auto& d : dirs_) {
      for (int pid : group_pids(d)) {
        any = true;
        ::kill(pid, SIGKILL);
      }
    }
    if (!any) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace kmr::build

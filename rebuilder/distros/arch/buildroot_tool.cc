// Test and fixture helper for Arch build roots (rebuilder/distros/arch/buildroot.h).
//
//   buildroot_tool root ENTRY...
//     makes (or reuses) the root for these .BUILDINFO `installed` entries
//     with the options from the environment (KMR_ARCH_ARCHIVE,
//     KMR_ARCH_KEYRING, KMR_BUILDROOT_CACHE); prints "path P", "cached 0|1",
//     "ms N" (exit 0), or one "missing M" line each (exit 3); errors exit 2.
//   buildroot_tool run ROOT WORK BUILD_PATH [--bind HOST:INSIDE[:rw]]... [--env K=V]... -- COMMAND...
//     runs COMMAND in the build sandbox over ROOT (as uid 1000 `builder`),
//     WORK/build bound at BUILD_PATH; prints its output, exits 1 when it fails.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "rebuilder/buildenv/sandbox.h"
#include "rebuilder/distros/arch/buildroot.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: buildroot_tool root ENTRY...\n"
               "       buildroot_tool run ROOT WORK BUILD_PATH [--bind HOST:INSIDE[:rw]]... [--env K=V]... -- COMMAND...\n");
  return 2;
}

int root(int argc, char** argv) {
  kmr::build::BuildEnvironment env;
  for (int i = 2; i < argc; ++i) env.installed.emplace_back(argv[i]);
  auto r = kmr::arch::ensure_build_root(env, kmr::arch::root_options_from_env());
  if (!r) {
    std::fprintf(stderr, "buildroot_tool: %s\n", r.error().to_string().c_str());
    return 2;
  }
  for (const auto& m : r->missing) std::printf("missing %s\n", m.c_str());
  if (!r->missing.empty()) return 3;
  std::printf("path %s\ncached %d\nms %lld\n", r->path.c_str(), r->cached ? 1 : 0, static_cast<long long>(r->duration.count()));
  return 0;
}

int run(int argc, char** argv) {
  if (argc < 7) return usage();
  kmr::build::SandboxConfig c;
  c.root_dir = argv[2];
  c.work_dir = argv[3];
  c.build_path = argv[4];
  c.wall_time = std::chrono::minutes(20);
  int i = 5;
  for (; i < argc && std::strcmp(argv[i], "--") != 0; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return usage();
    const std::string v = argv[++i];
    if (flag == "--bind") {
      const auto a = v.find(':');
      if (a == std::string::npos) return usage();
      auto b = v.find(':', a + 1);
      const bool rw = b != std::string::npos && v.substr(b + 1) == "rw";
      c.mounts.push_back({v.substr(0, a), v.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1), rw});
    } else if (flag == "--env") {
      const auto eq = v.find('=');
      if (eq == std::string::npos) return usage();
      c.env[v.substr(0, eq)] = v.substr(eq + 1);
    } else {
      return usage();
    }
  }
  if (i + 1 >= argc) return usage();
  auto r = kmr::build::run_in_sandbox(c, std::vector<std::string>(argv + i + 1, argv + argc));
  if (!r) {
    std::fprintf(stderr, "sandbox: %s\n", r.error().to_string().c_str());
    return 2;
  }
  std::fputs(r->process.out.c_str(), stdout);
  return r->success() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "root") == 0) return root(argc, argv);
  if (argc >= 2 && std::strcmp(argv[1], "run") == 0) return run(argc, argv);
  return usage();
}

// Test helper: runs a command in the build sandbox with a given build root
// and prints its output.  sandbox_probe ROOT_DIR WORK_DIR COMMAND...
#include <cstdio>
#include <string>
#include <vector>

#include "rebuilder/buildenv/sandbox.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: sandbox_probe ROOT_DIR WORK_DIR COMMAND...\n");
    return 2;
  }
  kmr::build::SandboxConfig c;
  c.root_dir = argv[1];
  c.work_dir = argv[2];
  c.uid = 0;
  c.gid = 0;
  c.user = "root";
  c.wall_time = std::chrono::minutes(2);
  auto r = kmr::build::run_in_sandbox(c, std::vector<std::string>(argv + 3, argv + argc));
  if (!r) {
    std::fprintf(stderr, "sandbox: %s\n", r.error().to_string().c_str());
    return 2;
  }
  std::fputs(r->process.out.c_str(), stdout);
  return r->success() ? 0 : 1;
}

// Stand-alone `kmr rebuild` (same command library as the kmr binary) for the
// acceptance test and the benchmark, which should not depend on every other
// command linked into kmr.
#include <string>
#include <vector>

#include "rebuilder/base/command.h"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  for (const auto& c : kmr::cli::registered_commands()) {
    if (c.name == "rebuild") return c.run(args);
  }
  return kmr::cli::kExitError;
}

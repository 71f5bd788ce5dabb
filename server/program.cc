#include "server/program.h"

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "rebuilder/base/version.h"

namespace kmr::server {

std::optional<int> parse_program_flags(cli::FlagParser& p, int argc, char** argv) {
  bool version = false;
  p.boolean("--version", &version, "print the version and exit");
  if (auto code = p.parse_or_exit(std::vector<std::string>(argv + 1, argv + argc))) return code;
  if (version) {
    std::printf("%s %s\n", p.program().c_str(), kVersion);
    return 0;
  }
  return std::nullopt;
}

int run_program(const char* program, int (*impl)(int, char**), int argc, char** argv) {
  try {
    return impl(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: fatal: %s\n", program, e.what());
    return 2;
  }
}

}  // namespace kmr::server

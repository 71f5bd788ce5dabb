#pragma once

#include <optional>

#include "rebuilder/base/flags.h"

namespace kmr::server {

// The shared start of kmrd and kmr-worker: declares --version (last in the
// help), parses argv without the program name and prints "PROGRAM VERSION"
// for --version. nullopt: go on; else the exit code (help, version, usage
// error).
std::optional<int> parse_program_flags(cli::FlagParser& p, int argc, char** argv);

// Runs `impl`; an exception escaping it is printed as "PROGRAM: fatal: WHAT"
// on stderr and gives exit code 2.
int run_program(const char* program, int (*impl)(int, char**), int argc, char** argv);

}  // namespace kmr::server

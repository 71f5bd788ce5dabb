// kmr: the command line. Subcommands register themselves (command.h); this
// file only dispatches, prints help and maps stray exceptions to exit 2.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "rebuilder/base/version.h"
#include "rebuilder/base/command.h"
#include "rebuilder/base/flags.h"

namespace {

void print_help(std::FILE* out) {
  std::fprintf(out,
               "kmr %s - rebuild and verify Linux distro kernel packages\n\n"
               "Usage: kmr COMMAND [ARGS...]\n\nCommands:\n",
               kmr::kVersion);
  for (const auto& c : kmr::cli::registered_commands()) {
    std::fprintf(out, "  %-18s %s\n", c.name.c_str(), c.summary.c_str());
  }
  std::fprintf(out,
               "\nRun 'kmr COMMAND --help' for a command's options.\n"
               "Exit codes: 0 good, 1 not reproducible / not verified, 2 error.\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    print_help(stderr);
    return kmr::cli::kExitError;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_help(stdout);
    return kmr::cli::kExitOk;
  }
  if (args[0] == "--version" || args[0] == "version") {
    std::printf("kmr %s\n", kmr::kVersion);
    return kmr::cli::kExitOk;
  }
  // Longest match first: "vmlinux root" before "vmlinux".
  const kmr::cli::Command* best = nullptr;
  std::size_t best_words = 0;
  for (const auto& c : kmr::cli::registered_commands()) {
    std::vector<std::string> words;
    std::size_t start = 0;
    while (start <= c.name.size()) {
      auto end = c.name.find(' ', start);
      if (end == std::string::npos) end = c.name.size();
      words.push_back(c.name.substr(start, end - start));
      start = end + 1;
    }
    if (words.size() > args.size()) continue;
    bool match = true;
    for (std::size_t i = 0; i < words.size(); ++i) match = match && words[i] == args[i];
    if (match && words.size() > best_words) {
      best = &c;
      best_words = words.size();
    }
  }
  if (best == nullptr) {
    std::fprintf(stderr, "kmr: unknown command '%s'\n\n", kmr::cli::printable_arg(args[0]).c_str());
    print_help(stderr);
    return kmr::cli::kExitError;
  }
  try {
    return best->run(std::vector<std::string>(args.begin() + static_cast<long>(best_words), args.end()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kmr %s: internal error: %s\n", best->name.c_str(), e.what());
    return kmr::cli::kExitError;
  }
}

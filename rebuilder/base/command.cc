#include "rebuilder/base/command.h"

#include <algorithm>

namespace kmr::cli {
namespace {

std::vector<Command>& registry() {
  static std::vector<Command> commands;
  return commands;
}

}  // namespace

CommandRegistrar::CommandRegistrar(Command command) {
  auto& r = registry();
  r.push_back(std::move(command));
  std::sort(r.begin(), r.end(), [](const Command& a, const Command& b) { return a.name < b.name; });
}

const std::vector<Command>& registered_commands() { return registry(); }

}  // namespace kmr::cli

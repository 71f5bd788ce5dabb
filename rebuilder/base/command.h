#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kmr::cli {

// Exit codes follow diffoscope: 0 good, 1 not reproducible / not verified,
// 2 error.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitError = 2;

// A subcommand: `name` may contain a space for two-word commands
// ("vmlinux root"). `run` receives the arguments after the name.
struct Command {
  std::string name;
  std::string summary;
  int (*run)(const std::vector<std::string>& args);
};

// Registers a command at static-initialisation time; command libraries are
// linked with alwayslink so registration survives the linker.
struct CommandRegistrar {
  explicit CommandRegistrar(Command command);
};

const std::vector<Command>& registered_commands();

#define KMR_REGISTER_COMMAND(ident, name, summary, fn) \
  static const ::kmr::cli::CommandRegistrar kmr_cmd_##ident{::kmr::cli::Command{name, summary, fn}}

}  // namespace kmr::cli

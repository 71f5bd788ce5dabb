#pragma once

// One flag parser for kmr's commands, kmrd and kmr-worker. A command declares
// its flags and positional arguments once; parsing, the errors and the
// `--help` text all come from those declarations.
//
//   FlagParser p("kmr rebuild", "[options] PACKAGE...", "Rebuilds ...");
//   p.boolean("--json", &json, "machine-readable result");
//   p.string("--out", "DIR", &out, "copy the rebuilt files into DIR");
//   p.integer("--timeout", "S", &seconds, 1, 86400, "wall-time limit");
//   p.positionals("PACKAGE", &files, 1, kUnlimited);
//   if (auto code = p.parse_or_exit(args)) return *code;
//
// Grammar: `--name VALUE` or `--name=VALUE`; `-h`/`--help` prints the help and
// stops; `--` ends the options (everything after it is positional); a lone
// `-` is positional (stdin/stdout by convention). A value is taken as it is,
// even when it starts with '-', so `--json -` works. Every error has one form,
// "PROGRAM: MESSAGE (see 'PROGRAM --help')", and the usage exit code 2:
//   kmr rebuild: --out needs a value
//   kmr rebuild: unknown option '--outt'
//   kmr diff: --jobs: 'x' is not an integer from 1 to 64
//   kmr rebuild: --out given twice
//   kmr rebuild: --out needs a non-empty value     (`--out=`)
// Arguments longer than kMaxArgBytes, or more than kMaxArgs of them, are
// refused; echoed arguments are shortened and control bytes escaped.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/result.h"

namespace kmr::cli {

// The exit code of a usage error (kExitError in command.h).
inline constexpr int kExitUsage = 2;
inline constexpr std::size_t kUnlimited = std::numeric_limits<std::size_t>::max();
// Linux's own limit for one argument string (MAX_ARG_STRLEN).
inline constexpr std::size_t kMaxArgBytes = 128 * 1024;
inline constexpr std::size_t kMaxArgs = 65536;

enum class ParseOutcome { kRun, kHelp };

class FlagParser {
 public:
  // program: the name errors start with ("kmr rebuild", "kmrd");
  // synopsis: what follows it on the usage line; description: the paragraphs
  // between the usage line and the options.
  FlagParser(std::string program, std::string synopsis, std::string description = "");

  // Flags. `help` may span lines; `metavar` names the value in the help.
  FlagParser& boolean(std::string name, bool* out, std::string help);
  FlagParser& string(std::string name, std::string metavar, std::string* out, std::string help);
  // Repeatable: each occurrence appends.
  FlagParser& strings(std::string name, std::string metavar, std::vector<std::string>* out, std::string help);
  // A decimal integer in [min, max].
  FlagParser& integer(std::string name, std::string metavar, std::int64_t* out, std::int64_t min, std::int64_t max,
                      std::string help);
  // A decimal number (e.g. 0.5, 2) in [min, max].
  FlagParser& real(std::string name, std::string metavar, double* out, double min, double max, std::string help);
  // Repeatable, handled in argv order by `on_value` (an error stops parsing and
  // is reported as "PROGRAM: NAME: MESSAGE").
  FlagParser& each(std::string name, std::string metavar, std::function<Result<void>(const std::string&)> on_value,
                   std::string help);
  // Positional arguments: between `min` and `max` of them.
  FlagParser& positionals(std::string metavar, std::vector<std::string>* out, std::size_t min, std::size_t max);
  // Text after the options in the help (exit codes, examples).
  FlagParser& epilogue(std::string text);
  // Declared but not listed in the help (kept for compatibility).
  FlagParser& hidden();

  // Parses `args` (without the program/command name). kHelp when --help was
  // given (nothing else is checked then).
  Result<ParseOutcome> parse(const std::vector<std::string>& args);
  // parse(), then: help -> printed to `out`, returns kExitOk (0); error ->
  // "PROGRAM: MESSAGE (see 'PROGRAM --help')" on `err`, returns kExitUsage;
  // success -> nullopt (the command goes on).
  std::optional<int> parse_or_exit(const std::vector<std::string>& args, std::FILE* out = stdout,
                                   std::FILE* err = stderr);
  // Prints "PROGRAM: MESSAGE (see 'PROGRAM --help')"; returns kExitUsage. For
  // the checks a command makes after parsing (flags that go together, ...).
  int usage_error(const std::string& message, std::FILE* err = stderr) const;

  std::string help() const;
  std::string usage_line() const;
  const std::string& program() const { return program_; }
  // True when the flag was given on the command line (after parse()).
  bool given(std::string_view name) const;

 private:
  enum class Kind { kBool, kString, kStrings, kInteger, kReal, kEach };
  struct Flag {
    std::string name, metavar, help;
    Kind kind = Kind::kBool;
    void* out = nullptr;
    std::int64_t imin = 0, imax = 0;
    double dmin = 0, dmax = 0;
    std::function<Result<void>(const std::string&)> on_value;
    bool hidden = false;
    std::size_t seen = 0;
  };
  FlagParser& add(Flag f);
  Flag* find(std::string_view name);
  Result<void> apply(Flag& f, const std::string& value);
  Result<void> check_limits(const std::vector<std::string>& args) const;
  Result<void> take_option(const std::vector<std::string>& args, std::size_t& i);
  Result<void> check_positionals() const;

  std::string program_, synopsis_, description_, epilogue_;
  std::vector<Flag> flags_;
  std::string positional_metavar_;
  std::vector<std::string>* positional_out_ = nullptr;
  std::size_t positional_min_ = 0, positional_max_ = 0;
  std::vector<std::string> positional_seen_;
};

// An argument as it may be echoed in a message: at most 64 bytes, control
// bytes escaped.
std::string printable_arg(std::string_view arg);

}  // namespace kmr::cli

#pragma once

// Test support: parses an argv with glibc's getopt_long, an independent
// implementation of the same long-option grammar, so FlagParser's results can
// be checked against it (unit test and fuzz target).

#include <getopt.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kmr::cli::testing {

struct GetoptResult {
  std::map<std::string, std::vector<std::string>> values;  // "--name" -> values ("" for a flag)
  std::vector<std::string> positional;
};

// `options`: "--name" -> takes a value. nullopt when getopt_long reports an error.
inline std::optional<GetoptResult> getopt_parse(const std::vector<std::string>& args,
                                                const std::vector<std::pair<std::string, bool>>& options) {
  std::vector<std::string> storage = {"prog"};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::vector<std::string> names;
  for (const auto& [n, v] : options) names.push_back(n.substr(2));
  std::vector<option> longopts;
  for (std::size_t i = 0; i < options.size(); ++i)
    longopts.push_back(option{names[i].c_str(), options[i].second ? required_argument : no_argument, nullptr,
                              static_cast<int>(1000 + i)});
  longopts.push_back(option{nullptr, 0, nullptr, 0});
  GetoptResult out;
  optind = 0;  // full re-initialisation (glibc)
  opterr = 0;
  const int argc = static_cast<int>(storage.size());
  for (;;) {
    int idx = -1;
    const int c = getopt_long(argc, argv.data(), ":", longopts.data(), &idx);
    if (c == -1) break;
    if (c < 1000) return std::nullopt;
    const auto& [name, has_value] = options[static_cast<std::size_t>(c - 1000)];
    out.values[name].push_back(has_value ? std::string(optarg) : std::string());
  }
  for (int i = optind; i < argc; ++i) out.positional.emplace_back(argv[static_cast<std::size_t>(i)]);
  return out;
}

}  // namespace kmr::cli::testing

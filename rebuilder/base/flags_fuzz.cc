// Fuzz target: argv vectors (NUL-separated input) through FlagParser. Whatever
// it accepts, glibc's getopt_long must accept with the same values and
// positional arguments; errors must stay short and free of control bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "rebuilder/base/flags.h"
#include "rebuilder/base/flags_getopt.h"

namespace {

void check(bool cond) {
  if (!cond) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 1 << 16) return 0;
  std::vector<std::string> args;
  std::string cur;
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      args.push_back(cur);
      cur.clear();
    } else {
      cur += static_cast<char>(data[i]);
    }
  }
  if (!cur.empty()) args.push_back(cur);
  bool json = false, keep = false;
  std::string out;
  std::vector<std::string> keys, pos;
  std::int64_t jobs = 0;
  double f = 0;
  kmr::cli::FlagParser p("kmr fuzz", "[options] X...");
  p.boolean("--json", &json, "").boolean("--keep", &keep, "").string("--out", "D", &out, "");
  p.strings("--key", "K", &keys, "").integer("--jobs", "N", &jobs, -5, 100, "");
  p.real("--f", "F", &f, 0, 1, "").positionals("X", &pos, 0, kmr::cli::kUnlimited);
  auto r = p.parse(args);
  if (!r) {
    const std::string e = r.error().to_string();
    check(e.size() < 400);
    for (char c : e) check(static_cast<unsigned char>(c) >= 0x20);
    return 0;
  }
  if (*r == kmr::cli::ParseOutcome::kHelp) return 0;
  auto ref = kmr::cli::testing::getopt_parse(
      args, {{"--json", false}, {"--keep", false}, {"--out", true}, {"--key", true}, {"--jobs", true}, {"--f", true}});
  check(ref.has_value());
  check(ref->positional == pos);
  check((ref->values.count("--json") > 0) == json);
  check((ref->values.count("--out") ? ref->values["--out"].back() : std::string()) == out);
  check(ref->values["--key"] == keys);
  check(f >= 0 && f <= 1 && jobs >= -5 && jobs <= 100);
  return 0;
}

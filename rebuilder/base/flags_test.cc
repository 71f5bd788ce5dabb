#include "rebuilder/base/flags.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>

#include "rebuilder/base/flags_getopt.h"

namespace kmr::cli {
namespace {

struct Cmd {
  bool json = false, keep = false;
  std::string out;
  std::vector<std::string> keys, files;
  std::int64_t jobs = 2;
  double threshold = 0.5;
  FlagParser p{"kmr test", "[options] FILE...", "Tests the parser."};
  Cmd() {
    p.boolean("--json", &json, "machine-readable output")
        .boolean("--keep", &keep, "keep the work directory")
        .string("--out", "DIR", &out, "write into DIR\nsecond line")
        .strings("--key", "PEM", &keys, "trusted key (repeatable)")
        .integer("--jobs", "N", &jobs, 1, 64, "threads")
        .real("--threshold", "F", &threshold, 0, 1, "similarity")
        .positionals("FILE", &files, 1, kUnlimited)
        .epilogue("Exit: 0 good, 2 error.");
  }
  std::string error(const std::vector<std::string>& args) {
    auto r = p.parse(args);
    return r ? "" : r.error().to_string();
  }
};

TEST(Flags, ParsesEveryKind) {
  Cmd c;
  auto r = c.p.parse({"--json", "--out", "d", "--key=a", "--key", "b", "--jobs", "8", "--threshold=0.25", "x", "y"});
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(*r, ParseOutcome::kRun);
  EXPECT_TRUE(c.json);
  EXPECT_FALSE(c.keep);
  EXPECT_EQ(c.out, "d");
  EXPECT_EQ(c.keys, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.jobs, 8);
  EXPECT_DOUBLE_EQ(c.threshold, 0.25);
  EXPECT_EQ(c.files, (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(c.p.given("--out"));
  EXPECT_FALSE(c.p.given("--keep"));
}

TEST(Flags, DefaultsStayWhenAbsent) {
  Cmd c;
  ASSERT_TRUE(c.p.parse({"f"}));
  EXPECT_EQ(c.jobs, 2);
  EXPECT_DOUBLE_EQ(c.threshold, 0.5);
  EXPECT_EQ(c.out, "");
}

TEST(Flags, MissingValueIsOneMessage) {
  Cmd c;
  EXPECT_EQ(c.error({"f", "--out"}), "--out needs a value");
  EXPECT_EQ(c.error({"f", "--jobs"}), "--jobs needs a value");
  EXPECT_EQ(c.error({"f", "--key"}), "--key needs a value");
}

TEST(Flags, EmptyValueIsRefused) {
  Cmd c;
  EXPECT_EQ(c.error({"f", "--out="}), "--out needs a non-empty value");
  EXPECT_EQ(c.error({"f", "--out", ""}), "--out needs a non-empty value");
  EXPECT_EQ(c.error({"f", "--key="}), "--key needs a non-empty value");
}

TEST(Flags, UnknownOptionAndStrayValues) {
  Cmd c;
  EXPECT_EQ(c.error({"f", "--outt", "x"}), "unknown option '--outt'");
  EXPECT_EQ(c.error({"f", "-x"}), "unknown option '-x'");
  EXPECT_EQ(c.error({"f", "--js"}), "unknown option '--js'");  // no abbreviations
  EXPECT_EQ(c.error({"f", "--json=yes"}), "--json takes no value");
  EXPECT_EQ(c.error({"f", "--nope=1"}), "unknown option '--nope'");
}

TEST(Flags, BadIntegersAndNumbers) {
  Cmd c;
  EXPECT_EQ(c.error({"f", "--jobs", "x"}), "--jobs: 'x' is not an integer from 1 to 64");
  for (const char* bad : {"0", "65", "-1", "+3", "3x", " 3", "0x10", "99999999999999999999999", "1.5"})
    EXPECT_EQ(Cmd().error({"f", "--jobs", bad}), std::string("--jobs: '") + bad + "' is not an integer from 1 to 64")
        << bad;
  EXPECT_EQ(Cmd().error({"f", "--threshold", "1.5"}), "--threshold: '1.5' is not a number from 0 to 1");
  for (const char* bad : {"nan", "inf", "-0.1", "1e400", "0.5x", ""})
    EXPECT_FALSE(Cmd().error({"f", "--threshold", bad}).empty()) << bad;
}

TEST(Flags, RepeatedSingleValueIsRefused) {
  Cmd c;
  EXPECT_EQ(c.error({"f", "--out", "a", "--out=b"}), "--out given twice");
  Cmd d;
  EXPECT_EQ(d.error({"f", "--jobs", "1", "--jobs", "1"}), "--jobs given twice");
  Cmd e;  // a repeated boolean is harmless
  EXPECT_EQ(e.error({"f", "--json", "--json"}), "");
}

TEST(Flags, DoubleDashEndsOptions) {
  Cmd c;
  ASSERT_TRUE(c.p.parse({"--json", "--", "--out", "-", "--help"}));
  EXPECT_TRUE(c.json);
  EXPECT_EQ(c.out, "");
  EXPECT_EQ(c.files, (std::vector<std::string>{"--out", "-", "--help"}));
}

TEST(Flags, ValuesMayStartWithDash) {
  Cmd c;
  ASSERT_TRUE(c.p.parse({"--out", "-", "--key", "--json", "-"}));
  EXPECT_EQ(c.out, "-");
  EXPECT_EQ(c.keys, (std::vector<std::string>{"--json"}));
  EXPECT_FALSE(c.json);
  EXPECT_EQ(c.files, (std::vector<std::string>{"-"}));
}

TEST(Flags, PositionalCounts) {
  EXPECT_EQ(Cmd().error({"--json"}), "missing FILE");
  std::vector<std::string> two;
  FlagParser p("kmr diff", "A B");
  p.positionals("INPUT", &two, 2, 2);
  EXPECT_EQ(p.parse({"a"}).error().to_string(), "expected at least 2 INPUT arguments, got 1");
  EXPECT_EQ(p.parse({"a", "b", "c"}).error().to_string(), "expected at most 2 INPUT arguments, got 3");
  FlagParser none("kmrd", "");
  EXPECT_EQ(none.parse({"stray"}).error().to_string(), "unexpected argument 'stray'");
}

TEST(Flags, HelpWinsAndIsGenerated) {
  Cmd c;
  auto r = c.p.parse({"--outt", "-h"});
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, ParseOutcome::kHelp);
  const std::string h = c.p.help();
  EXPECT_EQ(h.rfind("Usage: kmr test [options] FILE...\n\nTests the parser.\n\nOptions:\n", 0), 0u) << h;
  EXPECT_NE(h.find("  --out DIR             write into DIR\n                        second line\n"),
            std::string::npos)
      << h;
  EXPECT_NE(h.find("  --jobs N              threads\n"), std::string::npos) << h;
  EXPECT_NE(h.find("  -h, --help            show this help and exit\n"), std::string::npos) << h;
  EXPECT_NE(h.find("\nExit: 0 good, 2 error.\n"), std::string::npos) << h;
}

TEST(Flags, HiddenFlagsAreAcceptedNotListed) {
  bool full = false;
  std::vector<std::string> f;
  FlagParser p("kmr inspect", "PACKAGE...");
  p.boolean("--full-image", &full, "compat").hidden().positionals("PACKAGE", &f, 0, kUnlimited);
  ASSERT_TRUE(p.parse({"--full-image"}));
  EXPECT_TRUE(full);
  EXPECT_EQ(p.help().find("--full-image"), std::string::npos);
}

TEST(Flags, EachRunsInOrderAndReportsErrors) {
  std::vector<std::string> seen;
  FlagParser p("kmr query", "");
  p.each("--rebuilder", "URL", [&](const std::string& v) -> Result<void> {
     seen.push_back("r:" + v);
     return ok();
   }, "")
      .each("--key", "PEM", [&](const std::string& v) -> Result<void> {
        if (seen.empty()) return malformed("must follow a --rebuilder");
        seen.push_back("k:" + v);
        return ok();
      }, "");
  EXPECT_EQ(p.parse({"--key", "a"}).error().to_string(), "--key: must follow a --rebuilder");
  seen.clear();
  ASSERT_TRUE(p.parse({"--rebuilder", "u1", "--key", "k1", "--rebuilder=u2", "--key", "k2"}));
  EXPECT_EQ(seen, (std::vector<std::string>{"r:u1", "k:k1", "r:u2", "k:k2"}));
}

TEST(Flags, HostileArgv) {
  // Very long values are kept whole up to Linux's per-argument limit, and echoed shortened.
  Cmd c;
  const std::string big(kMaxArgBytes, 'a');
  ASSERT_TRUE(c.p.parse({"--out", big, "f"}));
  EXPECT_EQ(c.out.size(), kMaxArgBytes);
  EXPECT_EQ(Cmd().error({"f", "--out", big + "a"}),
            "argument 3 is longer than " + std::to_string(kMaxArgBytes) + " bytes");
  const std::string e = Cmd().error({"f", "--" + std::string(1000, 'z')});
  EXPECT_LT(e.size(), 100u);
  EXPECT_EQ(e, "unknown option '--" + std::string(62, 'z') + "...'");
  // Control bytes never reach the terminal raw.
  EXPECT_EQ(Cmd().error({"f", "--\x1b[2J"}), "unknown option '--\\x1b[2J'");
  EXPECT_EQ(Cmd().error({"f", "--jobs", std::string("1\n", 2)}), "--jobs: '1\\x0a' is not an integer from 1 to 64");
  // Embedded NUL in a value: kept as given (std::string), never truncated silently.
  Cmd n;
  ASSERT_TRUE(n.p.parse({"--out", std::string("a\0b", 3), "f"}));
  EXPECT_EQ(n.out.size(), 3u);
  std::vector<std::string> many(kMaxArgs + 1, "f");
  EXPECT_EQ(Cmd().error(many), "more than " + std::to_string(kMaxArgs) + " arguments");
}

TEST(Flags, ParseOrExitPrintsUniformErrors) {
  char buf[4096] = {};
  std::FILE* err = fmemopen(buf, sizeof buf - 1, "w");
  ASSERT_NE(err, nullptr);
  Cmd c;
  auto code = c.p.parse_or_exit({"f", "--out"}, stdout, err);
  std::fclose(err);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, kExitUsage);
  EXPECT_EQ(std::string(buf),
            "kmr test: --out needs a value (see 'kmr test --help')\n");
  char hb[8192] = {};
  std::FILE* out = fmemopen(hb, sizeof hb - 1, "w");
  Cmd h;
  code = h.p.parse_or_exit({"--help"}, out, stderr);
  std::fclose(out);
  EXPECT_EQ(code, std::optional<int>(0));
  EXPECT_EQ(std::string(hb), h.p.help());
  Cmd ok;
  EXPECT_EQ(ok.p.parse_or_exit({"f"}), std::nullopt);
}

// Against glibc's getopt_long: whatever FlagParser accepts, getopt_long accepts
// with the same values and positional arguments.
TEST(Flags, AgreesWithGetoptLong) {
  const std::vector<std::pair<std::string, bool>> opts = {
      {"--json", false}, {"--keep", false}, {"--out", true}, {"--key", true}, {"--jobs", true}};
  const std::vector<std::string> tokens = {"--json", "--keep", "--out", "--key", "--jobs", "--out=x", "--key=",
                                           "--jobs=3", "--", "-", "a", "b", "7", "--js", "-x", "--json=1", ""};
  std::mt19937 rng(42);
  int accepted = 0;
  for (int round = 0; round < 20000; ++round) {
    std::vector<std::string> args;
    const int n = static_cast<int>(rng() % 7);
    for (int i = 0; i < n; ++i) args.push_back(tokens[rng() % tokens.size()]);
    Cmd c;
    std::vector<std::string> pos;
    std::int64_t jobs = 0;
    FlagParser p("t", "");
    p.boolean("--json", &c.json, "").boolean("--keep", &c.keep, "").string("--out", "D", &c.out, "");
    p.strings("--key", "K", &c.keys, "").integer("--jobs", "N", &jobs, 0, 100, "");
    p.positionals("X", &pos, 0, kUnlimited);
    auto ours = p.parse(args);
    if (!ours) continue;
    ++accepted;
    auto ref = testing::getopt_parse(args, opts);
    ASSERT_TRUE(ref.has_value()) << ::testing::PrintToString(args);
    EXPECT_EQ(ref->positional, pos) << ::testing::PrintToString(args);
    EXPECT_EQ(ref->values.count("--json") > 0, c.json);
    EXPECT_EQ(ref->values.count("--keep") > 0, c.keep);
    EXPECT_EQ(ref->values.count("--out") ? ref->values["--out"].back() : "", c.out);
    EXPECT_EQ(ref->values["--key"], c.keys);
    EXPECT_EQ(ref->values.count("--jobs") ? std::stoll(ref->values["--jobs"].back()) : 0, jobs);
  }
  EXPECT_GT(accepted, 2000);
}

}  // namespace
}  // namespace kmr::cli

// .drv files made by Nix itself (nix-instantiate into a private store) parse
// to what `nix show-derivation` reports; hostile forms are refused with the
// reason and position.
#include "rebuilder/distros/nixos/derivation.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "rebuilder/base/file.h"
#include "rebuilder/base/require.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/distros/nixos/test_nix.h"

namespace kmr::nixos {
namespace {

using testing::run;

TEST(Derivation, RealDrvMatchesNixShowDerivation) {
  for (const char* t : {"nix", "nix-instantiate"}) {
    if (!have_program(t)) KMR_SKIP_OR_FAIL(std::string(t) + " not installed");
  }
  const char* t = std::getenv("TEST_TMPDIR");
  const std::string tmp = std::string(t ? t : "/tmp") + "/drv";
  run({"rm", "-rf", tmp}, "/tmp");
  run({"mkdir", "-p", tmp + "/src"}, tmp);
  std::ofstream(tmp + "/src/builder.sh") << "echo hi > $out\n";
  std::ofstream(tmp + "/src/default.nix")
      << "let dep = derivation { name = \"dep\"; system = \"x86_64-linux\"; builder = \"/bin/sh\"; "
         "args = [ ./builder.sh ]; outputs = [ \"out\" \"dev\" ]; };\n"
         "in derivation { name = \"top-1.0\"; system = \"x86_64-linux\"; builder = \"/bin/sh\"; "
         "args = [ \"-c\" \"echo \\\"quoted\\\" \\\\ back\\nslash\\ttab > $out\" ]; inherit dep; "
         "devpath = \"${dep.dev}\"; outputs = [ \"out\" \"modules\" \"dev\" ]; "
         "SOURCE_DATE_EPOCH = \"1767225600\"; }\n";
  const std::string store = "local?root=" + tmp + "/root";
  const std::string drv = run({"nix-instantiate", "--store", store, tmp + "/src/default.nix"}, tmp);
  ASSERT_TRUE(is_store_path(drv)) << drv;
  const std::string json = run({"nix", "show-derivation", "--store", store, drv}, tmp);
  auto want = nlohmann::json::parse(json).at(drv);
  auto text = read_text_file(tmp + "/root" + drv, 1 << 20);
  ASSERT_TRUE(text);
  auto d = parse_derivation(*text, drv);
  ASSERT_TRUE(d) << d.error().to_string();
  ASSERT_EQ(d->outputs.size(), want.at("outputs").size());
  for (auto& [name, o] : want.at("outputs").items()) {
    ASSERT_TRUE(d->outputs.count(name)) << name;
    EXPECT_EQ(d->outputs.at(name).path, o.at("path").get<std::string>());
  }
  ASSERT_EQ(d->input_drvs.size(), 1u);
  for (auto& [p, outs] : want.at("inputDrvs").items()) {
    EXPECT_EQ(d->input_drvs.at(p), outs.get<std::vector<std::string>>());
  }
  EXPECT_EQ(d->input_srcs, want.at("inputSrcs").get<std::vector<std::string>>());
  EXPECT_EQ(d->system, "x86_64-linux");
  EXPECT_EQ(d->builder, "/bin/sh");
  EXPECT_EQ(d->args, want.at("args").get<std::vector<std::string>>());
  EXPECT_EQ(d->args.at(1), "echo \"quoted\" \\ back\nslash\ttab > $out");
  EXPECT_EQ(d->env, (want.at("env").get<std::map<std::string, std::string>>()));
  EXPECT_EQ(d->env.at("SOURCE_DATE_EPOCH"), "1767225600");
  EXPECT_EQ(d->output_paths().size(), 3u);
}

constexpr const char* kOut = "/nix/store/00000000000000000000000000000000-a";
constexpr const char* kDrv = "/nix/store/11111111111111111111111111111111-b.drv";

std::string drv(const std::string& outputs, const std::string& inputs = "[]", const std::string& srcs = "[]",
                const std::string& env = "[]") {
  return "Derive(" + outputs + "," + inputs + "," + srcs + ",\"x86_64-linux\",\"/bin/sh\",[]," + env + ")";
}

TEST(Derivation, HostileForms) {
  const std::string out1 = std::string("[(\"out\",\"") + kOut + "\",\"\",\"\")]";
  ASSERT_TRUE(parse_derivation(drv(out1), "d"));
  struct Case {
    std::string text, error;
  } cases[] = {
      {"", "d: expected 'Derive(' at byte 0"},
      {drv(out1) + " ", "d: trailing bytes at byte "},
      {drv("[]"), "d: no outputs"},
      {drv(std::string("[(\"out\",\"/tmp/x\",\"\",\"\")]")), "d: output out is not a store path"},
      {drv(std::string("[(\"out\",\"") + kOut + "\",\"\",\"\"),(\"dev\",\"" + kOut + "\",\"\",\"\")]"),
       "d: outputs not sorted or repeated"},
      {drv(out1, std::string("[(\"") + kOut + "\",[\"out\"])]"), "d: input derivation without .drv"},
      {drv(out1, std::string("[(\"") + kDrv + "\",[])]"), "d: input derivation with no outputs"},
      {drv(out1, std::string("[(\"") + kDrv + "\",[\"out\",\"dev\"])]"), "d: input outputs not sorted or repeated"},
      {drv(out1, "[]", "[\"/nix/store/short-x\"]"), "d: input source is not a store path"},
      {drv(out1, "[]", std::string("[\"") + kOut + "/../../etc\"]"), "d: input source is not a store path"},
      {drv(out1, "[]", "[]", "[(\"b\",\"1\"),(\"a\",\"2\")]"), "d: environment not sorted or repeated"},
      {drv(out1, "[]", "[]", "[(\"a\",\"\\q\")]"), "d: unknown escape \\q"},
      {"Derive([(\"out\",\"" + std::string(kOut) + "\",\"\",\"", "d: unterminated string"},
      {"Derive([(\"out\"", "d: expected ','"},
  };
  for (const auto& c : cases) {
    auto r = parse_derivation(c.text, "d");
    ASSERT_FALSE(r) << c.text;
    EXPECT_NE(r.error().message().find(c.error), std::string::npos) << c.text << " -> " << r.error().message();
  }
  DerivationLimits small;
  small.max_items = 3;
  std::string many = "[";
  for (int i = 0; i < 5; ++i) many += std::string(i ? "," : "") + "\"x\"";
  many += "]";
  auto r = parse_derivation("Derive(" + out1 + ",[],[],\"s\",\"b\"," + many + ",[])", "d", small);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("list longer than 3 items"), std::string::npos) << r.error().message();
  small = {};
  small.max_bytes = 10;
  EXPECT_FALSE(parse_derivation(drv(out1), "d", small));
}

TEST(Derivation, StorePaths) {
  EXPECT_TRUE(is_store_path(kOut));
  EXPECT_FALSE(is_store_path("/nix/store/0000000000000000000000000000000e-a"));  // 'e' is not nix32
  EXPECT_FALSE(is_store_path("/nix/store/00000000000000000000000000000000-.a"));
  EXPECT_FALSE(is_store_path("/nix/store/00000000000000000000000000000000-a/b"));
  EXPECT_FALSE(is_store_path("/nix/store/00000000000000000000000000000000-"));
  EXPECT_EQ(store_path_hash(kOut), "00000000000000000000000000000000");
  EXPECT_EQ(store_path_hash("00000000000000000000000000000000-a.narinfo"), "00000000000000000000000000000000");
  EXPECT_EQ(store_path_hash("/etc/passwd"), "");
}

}  // namespace
}  // namespace kmr::nixos

#include "rebuilder/verdict/rule.h"

#include <gtest/gtest.h>

namespace kmr::verdict {
namespace {

TEST(Rule, ReproducibleOnlyWithEveryAnswerGood) {
  EXPECT_TRUE(is_reproducible("identical", "match", "match"));
  EXPECT_TRUE(is_reproducible("content-identical", "absent", "match"));
  EXPECT_TRUE(is_reproducible("identical-modulo-signatures", "absent", "match"));
  EXPECT_TRUE(is_reproducible("identical", std::nullopt, std::nullopt));
  EXPECT_FALSE(is_reproducible("different", "match", "match"));
  EXPECT_FALSE(is_reproducible("identical", "mismatch", "match"));
  EXPECT_FALSE(is_reproducible("identical", "invalid", "match"));
  EXPECT_FALSE(is_reproducible("identical", "match", "mismatch"));
  EXPECT_FALSE(is_reproducible("build-failed", std::nullopt, std::nullopt));
  EXPECT_FALSE(is_reproducible("IDENTICAL", "match", "match"));
  EXPECT_FALSE(is_reproducible("identical", "", "match"));
}

TEST(Rule, VocabularyIsClosed) {
  for (auto v : kGoodFilesTiers) EXPECT_TRUE(is_files_tier(v));
  for (auto v : kGoodModuleRoots) EXPECT_TRUE(is_module_root(v));
  for (auto v : kGoodContentRoots) EXPECT_TRUE(is_content_root(v));
  EXPECT_FALSE(is_files_tier("identical "));
  EXPECT_FALSE(is_module_root("matched"));
}

// The generated module agrees with the C++ rule on every combination, run by
// Node.js (an independent evaluator of the generated text).
TEST(Rule, JavaScriptModuleAgreesWithTheRule) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = tmp ? tmp : "/tmp";
  const std::string mod = dir + "/verdicts.mjs", check = dir + "/check.mjs";
  FILE* f = std::fopen(mod.c_str(), "w");
  ASSERT_NE(f, nullptr);
  const std::string js = javascript_module();
  std::fwrite(js.data(), 1, js.size(), f);
  std::fclose(f);
  std::string expect = "[";
  auto q = [](std::optional<std::string_view> v) { return v ? "'" + std::string(*v) + "'" : std::string("null"); };
  std::string cases = "[";
  std::optional<std::string_view> roots[] = {std::nullopt, "match", "mismatch", "absent", "invalid"};
  for (auto files : kFilesTiers) {
    for (auto mr : roots) {
      for (auto cr : roots) {
        cases += "['" + std::string(files) + "'," + q(mr) + "," + q(cr) + "],";
        expect += is_reproducible(files, mr, cr) ? "true," : "false,";
      }
    }
  }
  cases.back() = ']';
  expect.back() = ']';
  f = std::fopen(check.c_str(), "w");
  ASSERT_NE(f, nullptr);
  const std::string prog = "import {isReproducible} from './verdicts.mjs';\nconst c = " + cases +
                           ";\nconsole.log(JSON.stringify(c.map(x => isReproducible(...x))).replaceAll(' ', ''));\n";
  std::fwrite(prog.data(), 1, prog.size(), f);
  std::fclose(f);
  FILE* p = ::popen(("node " + check).c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  ASSERT_EQ(::pclose(p), 0) << out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  EXPECT_EQ(out, expect);
}

}  // namespace
}  // namespace kmr::verdict

#include "rebuilder/base/result.h"

#include <gtest/gtest.h>

namespace kmr {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return malformed("not positive: " + std::to_string(v));
  return v;
}

Result<int> doubled(int v) {
  KMR_ASSIGN_OR_RETURN(int x, parse_positive(v));
  return 2 * x;
}

Result<void> check(int v) {
  KMR_TRY(parse_positive(v));
  return ok();
}

TEST(Result, PropagatesValuesAndErrors) {
  EXPECT_EQ(*doubled(4), 8);
  auto bad = doubled(-1);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "not positive: -1");
  EXPECT_TRUE(check(1));
  EXPECT_FALSE(check(0));
  EXPECT_EQ(bad.value_or(7), 7);
}

TEST(Error, ContextIsPrintedOutermostFirst) {
  Error e = malformed("bad magic");
  e.with_context("while reading a.ko").with_context("while verifying tree");
  EXPECT_EQ(e.to_string(), "while verifying tree: while reading a.ko: bad magic");
  EXPECT_EQ(error_code_name(e.code()), "malformed_input");
}

}  // namespace
}  // namespace kmr

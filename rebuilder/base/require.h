#pragma once

// Required mode for tests. With KMR_REQUIRE_ALL=1 (run-tests.sh and CI set
// it) a test that cannot do its real work fails, naming the missing tool or
// input; otherwise it is skipped. Every skip prints "SKIPPED: <reason>" so
// run-tests.sh can list them.
//
//   if (!have_program("cpio")) KMR_SKIP_OR_FAIL("cpio not installed");
//
// Shell tests use tests/lib/require.sh (`kmr_skip "reason"`).

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include <gtest/gtest.h>

namespace kmr::testing {

inline bool require_all() {
  const char* v = std::getenv("KMR_REQUIRE_ALL");
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

// The test's private temporary directory: $TEST_TMPDIR under Bazel, else /tmp.
inline std::string test_tmpdir() {
  const char* t = std::getenv("TEST_TMPDIR");
  return t ? t : "/tmp";
}

}  // namespace kmr::testing

#define KMR_SKIP_OR_FAIL(reason)                                                            \
  do {                                                                                      \
    if (::kmr::testing::require_all()) {                                                    \
      GTEST_FAIL() << "required (KMR_REQUIRE_ALL=1) but unavailable: " << (reason);         \
    }                                                                                       \
    std::cout << "SKIPPED: " << ::testing::UnitTest::GetInstance()->current_test_info()->name() \
              << ": " << (reason) << std::endl;                                             \
    GTEST_SKIP() << (reason);                                                               \
  } while (0)

#pragma once

// The fixture distro repositories for C++ tests: built once into the shared,
// content-hashed cache by tests/fixtures/repos/ensure-fixtures.sh, which
// waits while another test is building them. A failed build is an error
// carrying the tail of the build log; a cache that cannot be built here (not
// root) is reported as `unavailable` so the test can KMR_SKIP_OR_FAIL.

#include <string>

#include "rebuilder/base/require.h"
#include "rebuilder/base/subprocess.h"

namespace kmr::testing {

struct FixtureRepos {
  std::string dir;          // OUTDIR with a current manifest.json
  std::string error;        // the build failed: message + log tail
  std::string unavailable;  // cannot be built here (skip, or fail in required mode)
};

inline FixtureRepos ensure_fixture_repos() {
  FixtureRepos f;
  SubprocessOptions o;
  o.timeout = std::chrono::minutes(90);
  auto r = run_subprocess({"bash", "tests/fixtures/repos/ensure-fixtures.sh"}, o);
  if (!r) {
    f.error = "ensure-fixtures.sh: " + r.error().to_string();
  } else if (r->success()) {
    f.dir = r->out;
    while (!f.dir.empty() && (f.dir.back() == '\n' || f.dir.back() == '\r')) f.dir.pop_back();
  } else if (r->exit_code == 3) {
    f.unavailable = r->err;
  } else {
    f.error = "fixture repositories could not be built: " + r->describe() + "\n" + r->err;
  }
  return f;
}

// The repositories, ensured once per test binary.
inline const FixtureRepos& fixture_repos() {
  static const FixtureRepos f = ensure_fixture_repos();
  return f;
}

}  // namespace kmr::testing

// In a test body: fails when the build failed, skips (fails in required mode)
// when the repositories cannot be built here.
#define KMR_REQUIRE_FIXTURE_REPOS()                                                                     \
  do {                                                                                                  \
    ASSERT_TRUE(::kmr::testing::fixture_repos().error.empty()) << ::kmr::testing::fixture_repos().error; \
    if (!::kmr::testing::fixture_repos().unavailable.empty())                                           \
      KMR_SKIP_OR_FAIL(::kmr::testing::fixture_repos().unavailable);                                    \
  } while (0)

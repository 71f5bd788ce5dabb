#include "rebuilder/kmod/test_util.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>

#include "rebuilder/base/file.h"
#include "rebuilder/base/subprocess.h"

namespace kmr::kmod::testing {

std::string tmpdir() {
  const char* t = std::getenv("TEST_TMPDIR");
  return t != nullptr ? t : "/tmp";
}

std::string sh(const std::string& script) {
  auto r = run_subprocess({"sh", "-c", "set -e; cd '" + tmpdir() + "'; " + script});
  EXPECT_TRUE(r.has_value() && r->success()) << script << "\n" << (r ? r->err : "");
  return r ? r->out : "";
}

ByteVector read_tmp_file(const std::string& name) {
  auto r = read_file(tmpdir() + "/" + name, 256 << 20);
  EXPECT_TRUE(r) << name << ": " << (r ? "" : r.error().to_string());
  return r ? *r : ByteVector();
}

std::string python_merkle_script() {
  char cwd[4096];
  const std::string base = getcwd(cwd, sizeof cwd) != nullptr ? cwd : ".";
  return base + "/tests/fixtures/merkle/modules_merkle_tree.py";
}

}  // namespace kmr::kmod::testing

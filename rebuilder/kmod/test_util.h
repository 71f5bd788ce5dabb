#pragma once

// Helpers shared by the kmod tests: the test's temp dir and running shell
// snippets (real tools: gcc, objcopy, compressors, the Python Merkle script).

#include <string>

#include "rebuilder/base/bytes.h"

namespace kmr::kmod::testing {

// $TEST_TMPDIR (or /tmp).
std::string tmpdir();
// Runs `script` with sh -e in tmpdir(); records a test failure on a
// non-zero exit. Returns stdout.
std::string sh(const std::string& script);
// The bytes of tmpdir()/name (a test failure when unreadable).
ByteVector read_tmp_file(const std::string& name);
// Absolute path of the independent Python implementation in the runfiles.
std::string python_merkle_script();

}  // namespace kmr::kmod::testing

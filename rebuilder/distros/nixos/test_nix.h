#pragma once

// Test helper: commands (the host's nix tools, tar, python3) run with a
// private HOME and cache; nix with no build users, no sandbox and no
// substituters.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "rebuilder/base/subprocess.h"

namespace kmr::nixos::testing {

// Runs `argv` with HOME=`home`; a failure is a test failure. Returns stdout
// without its trailing newlines.
inline std::string run(const std::vector<std::string>& argv, const std::string& home) {
  SubprocessOptions o;
  o.env = std::vector<std::string>{"PATH=/usr/bin:/bin", "HOME=" + home, "XDG_CACHE_HOME=" + home + "/xdg",
                                   "NIX_CONFIG=experimental-features = nix-command\nbuild-users-group =\nsandbox = false\nsubstituters ="};
  auto r = run_subprocess(argv, o);
  EXPECT_TRUE(r && r->success()) << argv[0] << ": " << (r ? r->err : r.error().to_string());
  std::string out = r ? r->out : "";
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace kmr::nixos::testing

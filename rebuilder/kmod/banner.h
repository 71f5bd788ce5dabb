#pragma once

// The kernel's banner, "Linux version <release> (<user>@<host>) (<compiler>)
// #<version> <flags> <timestamp>", read from a (decompressed) image: the
// build identity a rebuild needs to reproduce it (KBUILD_BUILD_USER, _HOST,
// _VERSION, _TIMESTAMP) and the compiler that built it.

#include <optional>
#include <string>
#include <string_view>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"

namespace kmr::kmod {

struct BuildIdentity {
  std::string banner;     // the whole line, without the newline
  std::string release;    // UTS_RELEASE, e.g. 6.1.0-57-amd64
  std::string user;       // KBUILD_BUILD_USER
  std::string host;       // KBUILD_BUILD_HOST
  std::string compiler;   // e.g. "gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (...) 2.40"
  std::string version;    // KBUILD_BUILD_VERSION (the number after '#'), may be empty
  std::string flags;      // "SMP PREEMPT_DYNAMIC", may be empty
  std::string timestamp;  // KBUILD_BUILD_TIMESTAMP, e.g. "Debian 6.1.192-3 (2026-11-26)"
};

inline constexpr std::size_t kMaxBannerLength = 1024;

// Parses one banner line (no trailing newline). Rejects anything that does
// not have the kernel's shape: missing parts, unbalanced parentheses,
// control characters, empty release/user/host/compiler, over-long input.
Result<BuildIdentity> parse_banner(std::string_view line);

// The build identity in an image: of the banners in it (6.1 carries one
// without the build number in init/version.o and the final one), the first
// with a build number, else the first that parses; nullopt when none does.
std::optional<BuildIdentity> find_build_identity(Bytes image);

}  // namespace kmr::kmod

#pragma once

// Limits checked on untrusted JSON text before it is parsed or stored: a pre-scan
// that tracks strings and escapes and counts the nesting of [ and {, so a deeply
// nested document is refused in O(n) time and O(1) memory, before nlohmann builds
// (and later recursively dumps and destroys) a tree of it.

#include <cstddef>
#include <string_view>

namespace kmr::server {

inline constexpr int kMaxJsonDepth = 64;

// True when no array/object nesting in `text` exceeds max_depth. The text need not
// be valid JSON (the parser decides that); only the nesting is judged.
bool json_depth_ok(std::string_view text, int max_depth = kMaxJsonDepth);

}  // namespace kmr::server

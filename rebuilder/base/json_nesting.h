#pragma once

// A pre-scan of untrusted JSON text: tracks strings and escapes and counts the
// nesting of [ and {, so a deeply nested document is refused in O(n) time and
// O(1) memory before a recursive parser builds a tree of it.

#include <string_view>

namespace kmr {

// True when no array/object nesting in `text` exceeds `max_depth`. The text
// need not be valid JSON (the parser decides that); only the nesting is judged.
bool json_nesting_ok(std::string_view text, int max_depth);

}  // namespace kmr

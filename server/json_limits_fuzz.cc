// Fuzz target: json_depth_ok against nlohmann's parser. For every input the parser
// accepts, the pre-scan never accepts a tree deeper than the limit, and agrees
// with the parsed tree's real depth on inputs without NUL bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "server/json_limits.h"

namespace {
int depth_of(const nlohmann::json& j) {
  if (!j.is_structured()) return 0;
  int d = 0;
  for (const auto& v : j) d = std::max(d, depth_of(v));
  return d + 1;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 4096) return 0;  // bounds depth_of's recursion
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (int max : {0, 1, 8, kmr::server::kMaxJsonDepth}) {
    const bool ok = kmr::server::json_depth_ok(text, max);
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) continue;
    const bool shallow = depth_of(j) <= max;
    // Unsafe direction: the pre-scan lets through a tree deeper than max.
    if (ok && !shallow) std::abort();
    // nlohmann's parser stops at a NUL byte and ignores what follows, where
    // the pre-scan keeps counting (it refuses more, never less); without NUL
    // bytes the two must agree.
    if (!ok && shallow && text.find('\0') == std::string_view::npos) std::abort();
  }
  return 0;
}

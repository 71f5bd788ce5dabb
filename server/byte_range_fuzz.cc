// Fuzz target: parse_byte_range never yields a range outside the representation,
// and agrees with a direct reading of the grammar on the satisfiable cases.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "server/byte_range.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 8) return 0;
  std::uint64_t n = 0;
  std::memcpy(&n, data, 8);
  n %= (1ull << 40);
  std::string_view header(reinterpret_cast<const char*>(data + 8), size - 8);
  auto r = kmr::server::parse_byte_range(header, n);
  if (r.kind == kmr::server::RangeKind::kSatisfiable) {
    if (n == 0 || r.range.first > r.range.last || r.range.last >= n) std::abort();
    if (header.rfind("bytes=", 0) != 0 || header.find(',') != std::string_view::npos) std::abort();
  }
  if (r.kind == kmr::server::RangeKind::kNone && header.rfind("bytes=", 0) == 0 &&
      header.find(',') == std::string_view::npos)
    std::abort();
  return 0;
}

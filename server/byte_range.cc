#include "server/byte_range.h"

#include <algorithm>
#include <charconv>

namespace kmr::server {

namespace {

// Decimal digits only, at most 18 (no sign, no spaces).
std::optional<std::uint64_t> parse_pos(std::string_view s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

RangeRequest parse_byte_range(std::string_view header, std::uint64_t size) {
  constexpr std::string_view kUnit = "bytes=";
  if (header.rfind(kUnit, 0) != 0 || header.find(',') != std::string_view::npos) return {};
  std::string_view spec = header.substr(kUnit.size());
  const RangeRequest bad{RangeKind::kUnsatisfiable, {}};
  auto dash = spec.find('-');
  if (dash == std::string_view::npos || size == 0) return bad;
  auto a = spec.substr(0, dash), b = spec.substr(dash + 1);
  auto pa = parse_pos(a), pb = parse_pos(b);
  ByteRange r{0, size - 1};
  if (a.empty() && pb) {
    if (*pb == 0) return bad;
    r.first = *pb >= size ? 0 : size - *pb;
  } else if (pa && b.empty()) {
    r.first = *pa;
  } else if (pa && pb && *pb >= *pa) {
    r.first = *pa;
    r.last = std::min(*pb, size - 1);
  } else {
    return bad;
  }
  if (r.first >= size) return bad;
  return {RangeKind::kSatisfiable, r};
}

}  // namespace kmr::server

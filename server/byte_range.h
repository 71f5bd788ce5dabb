#pragma once

// One HTTP byte range ("Range: bytes=first-last", "bytes=first-", "bytes=-suffix")
// against a representation of `size` bytes (RFC 9110 14.1.2).

#include <cstdint>
#include <optional>
#include <string_view>

namespace kmr::server {

struct ByteRange {
  std::uint64_t first = 0, last = 0;  // inclusive, last < size
  std::uint64_t length() const { return last - first + 1; }
};

enum class RangeKind {
  kNone,           // no range, another unit, or several ranges: send the whole body
  kSatisfiable,    // 206 with `range`
  kUnsatisfiable,  // 416
};

struct RangeRequest {
  RangeKind kind = RangeKind::kNone;
  ByteRange range;
};

// `header`: the Range header's value as received (empty when absent).
RangeRequest parse_byte_range(std::string_view header, std::uint64_t size);

}  // namespace kmr::server

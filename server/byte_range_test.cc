#include "server/byte_range.h"

#include <gtest/gtest.h>

namespace kmr::server {
namespace {

void expect_range(std::string_view h, std::uint64_t size, std::uint64_t first, std::uint64_t last) {
  auto r = parse_byte_range(h, size);
  ASSERT_EQ(r.kind, RangeKind::kSatisfiable) << h;
  EXPECT_EQ(r.range.first, first) << h;
  EXPECT_EQ(r.range.last, last) << h;
}

TEST(ByteRange, ForwardSuffixAndOpenEnded) {
  expect_range("bytes=0-0", 10, 0, 0);
  expect_range("bytes=2-5", 10, 2, 5);
  expect_range("bytes=2-500", 10, 2, 9);  // clamped to the end
  expect_range("bytes=7-", 10, 7, 9);
  expect_range("bytes=-3", 10, 7, 9);
  expect_range("bytes=-30", 10, 0, 9);  // suffix longer than the body: all of it
}

TEST(ByteRange, Unsatisfiable) {
  for (std::string_view h : {"bytes=10-", "bytes=10-20", "bytes=5-2", "bytes=-0", "bytes=-", "bytes=", "bytes=a-b",
                             "bytes= 1-2", "bytes=+1-2", "bytes=1-2x", "bytes=1234567890123456789-"})
    EXPECT_EQ(parse_byte_range(h, 10).kind, RangeKind::kUnsatisfiable) << h;
  EXPECT_EQ(parse_byte_range("bytes=0-0", 0).kind, RangeKind::kUnsatisfiable);
}

TEST(ByteRange, WholeBodyCases) {
  // Absent, another unit, several ranges: the whole representation (RFC 9110 allows ignoring Range).
  for (std::string_view h : {"", "items=0-1", "bytes=0-1,3-4", "Bytes=0-1"})
    EXPECT_EQ(parse_byte_range(h, 10).kind, RangeKind::kNone) << h;
}

}  // namespace
}  // namespace kmr::server

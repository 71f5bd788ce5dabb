#include "rebuilder/base/byte_reader.h"

#include <gtest/gtest.h>

#include <limits>

#include "rebuilder/base/checked_math.h"

namespace kmr {
namespace {

TEST(ByteReader, ReadsBothEndiannesses) {
  const std::uint8_t data[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
  ByteReader le(data);
  EXPECT_EQ(le.u32le(), 0x04030201u);
  EXPECT_EQ(le.u32be(), 0x05060708u);
  EXPECT_TRUE(le.finish());
  ByteReader be(data);
  EXPECT_EQ(be.u64be(), 0x0102030405060708ull);
  ByteReader le64(data);
  EXPECT_EQ(le64.u64le(), 0x0807060504030201ull);
  ByteReader b16(data);
  EXPECT_EQ(b16.u16(true), 0x0201);
  EXPECT_EQ(b16.u16(false), 0x0304);
}

TEST(ByteReader, TruncatedReadIsStickyAndNamesOffset) {
  const std::uint8_t data[] = {1, 2, 3};
  ByteReader r(data, "trailer");
  EXPECT_EQ(r.u16le(), 0x0201);
  EXPECT_EQ(r.u32le(), 0u);  // only one byte left
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.u8(), 0);      // sticky: nothing more is read
  auto fin = r.finish();
  ASSERT_FALSE(fin);
  EXPECT_EQ(fin.error().code(), ErrorCode::kMalformedInput);
  EXPECT_EQ(fin.error().message(), "trailer: truncated: integer needs 4 bytes, 1 left at offset 2");
}

TEST(ByteReader, HugeLengthDoesNotOverflow) {
  const std::uint8_t data[] = {1, 2, 3, 4};
  ByteReader r(data);
  r.skip(1);
  auto b = r.bytes(std::numeric_limits<std::uint64_t>::max());
  EXPECT_TRUE(b.empty());
  EXPECT_FALSE(r.ok());
  auto sub = r.sub(2, std::numeric_limits<std::uint64_t>::max() - 1, "section");
  ASSERT_FALSE(sub);
  EXPECT_NE(sub.error().message().find("section out of bounds"), std::string::npos);
  EXPECT_FALSE(r.sub(std::numeric_limits<std::uint64_t>::max(), 2, "x"));
  EXPECT_TRUE(r.sub(4, 0, "empty tail"));
  EXPECT_FALSE(r.sub(5, 0, "past end"));
}

TEST(ByteReader, CStringLimits) {
  const std::uint8_t data[] = {'a', 'b', 'c', 0, 'd', 'e'};
  ByteReader r(data);
  EXPECT_EQ(r.cstr(8), "abc");
  EXPECT_EQ(r.cstr(8), "");
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.finish().error().message().find("unterminated"), std::string::npos);
  ByteReader r2(data);
  EXPECT_EQ(r2.cstr(2), "");
  EXPECT_NE(r2.finish().error().message().find("longer than 2"), std::string::npos);
}

TEST(ByteReader, AlignAndSeek) {
  std::uint8_t data[16] = {};
  data[8] = 0x2a;
  ByteReader r(data);
  r.skip(3);
  r.align(8);
  EXPECT_EQ(r.offset(), 8u);
  EXPECT_EQ(r.u8(), 0x2a);
  r.seek(16);
  EXPECT_TRUE(r.ok());
  r.seek(17);
  EXPECT_FALSE(r.ok());
}

TEST(CheckedMath, DetectsOverflow) {
  EXPECT_FALSE(checked_add<std::uint32_t>(0xffffffffu, 1u));
  EXPECT_EQ(*checked_add<std::uint32_t>(1u, 2u), 3u);
  EXPECT_FALSE(checked_mul<std::uint64_t>(1ull << 33, 1ull << 31));
  EXPECT_EQ(*checked_mul<std::uint64_t>(1ull << 31, 4), 1ull << 33);
  EXPECT_TRUE(range_fits(0, 10, 10));
  EXPECT_FALSE(range_fits(1, 10, 10));
  EXPECT_FALSE(range_fits(~0ull, 2, 10));
}

}  // namespace
}  // namespace kmr

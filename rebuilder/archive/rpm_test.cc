// Hostile RPM headers whose entries would decode far more than the header
// holds: every one is refused quickly, before the decoded data grows beyond
// the header's declared data size. Real rpmbuild output is in formats_test.
#include "rebuilder/archive/rpm.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace kmr::archive {
namespace {

struct Entry {
  std::uint32_t tag, type, offset, count;
};

void put32(ByteVector& v, std::uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<std::uint8_t>(x >> s));
}

// magic, reserved, nindex, hsize, the entries, then the store.
ByteVector header(const std::vector<Entry>& entries, const ByteVector& store) {
  ByteVector h = {0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0};
  put32(h, static_cast<std::uint32_t>(entries.size()));
  put32(h, static_cast<std::uint32_t>(store.size()));
  for (const Entry& e : entries) {
    put32(h, e.tag);
    put32(h, e.type);
    put32(h, e.offset);
    put32(h, e.count);
  }
  h.insert(h.end(), store.begin(), store.end());
  return h;
}

constexpr std::uint32_t kString = 6, kBin = 7, kStringArray = 8, kInt32 = 4;

// Parses `h` and returns the error, failing when it takes longer than 2 s.
std::string error_of(const ByteVector& h) {
  const auto start = std::chrono::steady_clock::now();
  auto r = parse_rpm_header(h, "h.rpm");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2.0);
  return r ? std::string("no error") : r.error().message();
}

TEST(RpmHeader, OneStringDecodedByEveryEntryIsRefused) {
  // 1 MiB string, 65535 entries all pointing at it: 64 GiB decoded before.
  ByteVector store(1 << 20, 'A');
  store.back() = 0;
  std::vector<Entry> entries;
  for (std::uint32_t i = 0; i < 0xffff; ++i) entries.push_back({1000 + i, kString, 0, 1});
  EXPECT_EQ(error_of(header(entries, store)),
            "h.rpm: index entry 1 (tag 1001): entries decode more than the header's 1048576 data bytes (overlapping entries)");
}

TEST(RpmHeader, OneBlobCopiedByEveryEntryIsRefused) {
  const ByteVector store(1 << 20, 7);
  std::vector<Entry> entries;
  for (std::uint32_t i = 0; i < 0xffff; ++i) entries.push_back({1000 + i, kBin, 0, 1 << 20});
  EXPECT_EQ(error_of(header(entries, store)),
            "h.rpm: index entry 1 (tag 1001): entries decode more than the header's 1048576 data bytes (overlapping entries)");
}

TEST(RpmHeader, HugeStringCountIsRefused) {
  // 64 MiB of NULs as one STRING_ARRAY: 64M empty strings (2 GiB of
  // std::string) before; each counts one byte, the string count is capped.
  const ByteVector store(64u << 20, 0);
  auto r = parse_rpm_header(header({{1116, kStringArray, 0, 64u << 20}}, store), "h.rpm");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kLimitExceeded);
  EXPECT_EQ(r.error().message(), "h.rpm: index entry 0 (tag 1116): more than 4194304 strings in one header");
}

TEST(RpmHeader, OverlappingIntegersAreRefused) {
  ByteVector store(64, 0);
  EXPECT_EQ(error_of(header({{1000, kInt32, 0, 16}, {1001, kInt32, 0, 16}, {1002, kInt32, 0, 16}}, store)),
            "h.rpm: index entry 1 (tag 1001): entries decode more than the header's 64 data bytes (overlapping entries)");
}

TEST(RpmHeader, DisjointEntriesParse) {
  // name\0 version\0 then two INT32s: exactly the store, nothing shared.
  ByteVector store = {'k', 0, '6', '.', '1', 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2};
  auto r = parse_rpm_header(header({{1000, kString, 0, 1}, {1001, kString, 2, 1}, {1006, kInt32, 8, 2}}, store), "h.rpm");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->str(1000), "k");
  EXPECT_EQ(r->str(1001), "6.1");
  EXPECT_EQ(r->find(1006)->ints, (std::vector<std::uint64_t>{1, 2}));
}

}  // namespace
}  // namespace kmr::archive

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <fstream>

#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"

namespace kmr {
namespace {

// FIPS 180-2 test vectors (independent of our code).
TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(as_bytes("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex(as_bytes("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(as_bytes("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, IncrementalEqualsOneShot) {
  Sha256 h;
  h.update(as_bytes("a"));
  h.update(as_bytes("bc"));
  EXPECT_EQ(to_hex(h.finish()), sha256_hex(as_bytes("abc")));
  // finish() resets.
  EXPECT_EQ(to_hex(h.finish()), sha256_hex(as_bytes("")));
}

TEST(Sha256, File) {
  auto dir = TempDir::create();
  ASSERT_TRUE(dir);
  const std::string p = dir->path() + "/f";
  std::ofstream(p) << "abc";
  auto d = sha256_file(p);
  ASSERT_TRUE(d);
  EXPECT_EQ(to_hex(*d), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_FALSE(sha256_file(dir->path() + "/missing"));
}

TEST(Hex, RoundTripAndRejects) {
  auto b = from_hex("00ffA5");
  ASSERT_TRUE(b);
  EXPECT_EQ(to_hex(*b), "00ffa5");
  EXPECT_FALSE(from_hex("abc"));
  EXPECT_FALSE(from_hex("zz"));
  EXPECT_TRUE(is_sha256_hex(std::string(64, 'a')));
  EXPECT_FALSE(is_sha256_hex(std::string(63, 'a')));
  EXPECT_FALSE(is_sha256_hex(std::string(63, 'a') + "g"));
}

TEST(File, ReadLimitAndAtomicWrite) {
  auto dir = TempDir::create();
  ASSERT_TRUE(dir);
  const std::string p = dir->path() + "/x";
  ASSERT_TRUE(write_file_atomic(p, as_bytes("hello")));
  auto got = read_text_file(p, 100);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, "hello");
  // A non-regular target is written in place, never renamed over.
  ASSERT_TRUE(write_file_atomic("/dev/null", as_bytes("discarded")));
  struct stat st;
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_FALSE(write_file_atomic(dir->path(), as_bytes("x")));
  auto big = read_file(p, 4);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code(), ErrorCode::kLimitExceeded);
}

}  // namespace
}  // namespace kmr

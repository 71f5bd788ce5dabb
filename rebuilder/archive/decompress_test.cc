#include "rebuilder/archive/decompress.h"

#include <gtest/gtest.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>

#include "rebuilder/base/file.h"
#include "rebuilder/base/subprocess.h"

namespace kmr::archive {
namespace {

std::string tmpdir() {
  const char* t = std::getenv("TEST_TMPDIR");
  return t != nullptr ? t : "/tmp";
}

ByteVector sample(std::size_t n) {
  ByteVector v(n);
  std::uint32_t x = 12345;
  for (std::size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    // Compressible but not trivial.
    v[i] = static_cast<std::uint8_t>((i % 97 < 60) ? 'a' + (i % 13) : (x >> 24));
  }
  return v;
}

// Compresses `data` with a real command line tool (the independent side).
ByteVector compress_with(const std::string& shell_cmd, const ByteVector& data, const std::string& tag) {
  const std::string in = tmpdir() + "/in-" + tag;
  const std::string out = tmpdir() + "/out-" + tag;
  EXPECT_TRUE(write_file_atomic(in, data).has_value());
  auto r = run_subprocess({"sh", "-c", shell_cmd + " < '" + in + "' > '" + out + "'"});
  EXPECT_TRUE(r.has_value());
  EXPECT_TRUE(r->success()) << shell_cmd << ": " << r->err;
  auto bytes = read_file(out, 1 << 30);
  EXPECT_TRUE(bytes.has_value());
  return *bytes;
}

Result<ByteVector> run_chunked(Bytes in, Codec codec, std::size_t chunk, DecompressOptions opts) {
  KMR_ASSIGN_OR_RETURN(auto dec, Decompressor::create(codec, opts));
  ByteVector out;
  auto sink = [&](Bytes b) -> Result<void> {
    out.insert(out.end(), b.begin(), b.end());
    return kmr::ok();
  };
  for (std::size_t off = 0; off < in.size(); off += chunk) {
    KMR_TRY(dec->update(in.subspan(off, std::min(chunk, in.size() - off)), sink));
  }
  KMR_TRY(dec->finish(sink));
  return out;
}

struct Tool {
  const char* cmd;
  Codec codec;
  const char* tag;
};

const Tool kTools[] = {
    {"gzip -9 -n -c", Codec::kGzip, "gz"},        {"bzip2 -9 -c", Codec::kBzip2, "bz2"},
    {"xz -6 -c --check=crc32", Codec::kXz, "xz"}, {"xz --format=lzma -c", Codec::kLzma, "lzma"},
    {"lz4 -q -c", Codec::kLz4, "lz4"},            {"lz4 -q -l -c", Codec::kLz4, "lz4legacy"},
    {"zstd -q -9 -c", Codec::kZstd, "zst"},
};

TEST(DecompressTest, RealToolsRoundTripAnyChunking) {
  const ByteVector data = sample(1 << 20);
  for (const Tool& t : kTools) {
    const ByteVector comp = compress_with(t.cmd, data, t.tag);
    EXPECT_EQ(detect_codec(comp), t.codec) << t.tag;
    for (std::size_t chunk : {std::size_t{1} << 30, std::size_t{4096}, std::size_t{7}}) {
      if (chunk == 7 && comp.size() > (1 << 20)) continue;
      auto out = run_chunked(comp, t.codec, chunk, {});
      ASSERT_TRUE(out.has_value()) << t.tag << " chunk " << chunk << ": " << out.error().to_string();
      EXPECT_TRUE(*out == data) << t.tag << " chunk " << chunk;
    }
    auto all = decompress_all(comp, 1 << 30);
    ASSERT_TRUE(all.has_value()) << t.tag;
    EXPECT_TRUE(*all == data) << t.tag;
  }
}

TEST(DecompressTest, BombHitsCapWithExactError) {
  const ByteVector zeros(4 << 20, 0);
  for (const Tool& t : kTools) {
    const ByteVector comp = compress_with(t.cmd, zeros, std::string("bomb-") + t.tag);
    DecompressOptions opts;
    opts.max_output = 1 << 20;
    auto r = run_chunked(comp, t.codec, 1 << 30, opts);
    ASSERT_FALSE(r.has_value()) << t.tag;
    EXPECT_EQ(r.error().code(), ErrorCode::kLimitExceeded) << t.tag;
    EXPECT_EQ(r.error().message(), "decompressed size exceeds 1048576 bytes") << t.tag;
  }
}

// A real bomb from the real tools: 1 GiB of zeros through zstd (33 KB) and
// 256 MiB through xz (~40 KB). decompress_all with a generous size cap stops
// on the ratio, quickly and without inflating the whole thing in memory.
TEST(DecompressTest, BombStopsOnRatioQuicklyWithSmallMemory) {
  struct Bomb {
    const char* cmd;
    const char* tag;
  };
  for (const Bomb& b : {Bomb{"head -c 1G /dev/zero | zstd -q -19 -c", "zst"}, Bomb{"head -c 256M /dev/zero | xz -0 -c", "xz"}}) {
    const std::string path = tmpdir() + "/ratio-bomb." + b.tag;
    auto made = run_subprocess({"sh", "-c", std::string(b.cmd) + " > '" + path + "'"});
    ASSERT_TRUE(made && made->success()) << b.cmd;
    auto comp = read_file(path, 16 << 20);
    ASSERT_TRUE(comp.has_value());
    ASSERT_LT(comp->size(), 1u << 20) << b.tag;
    struct rusage before {};
    ::getrusage(RUSAGE_SELF, &before);
    const auto start = std::chrono::steady_clock::now();
    auto r = decompress_all(*comp, 8ull << 30);
    const auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    struct rusage after {};
    ::getrusage(RUSAGE_SELF, &after);
    ASSERT_FALSE(r.has_value()) << b.tag;
    EXPECT_EQ(r.error().code(), ErrorCode::kLimitExceeded) << b.tag;
    EXPECT_EQ(r.error().message().rfind("compression ratio exceeds 1000:1 (" + std::to_string(comp->size()) +
                                            " compressed bytes expand beyond ",
                                        0),
              0u)
        << r.error().message();
    EXPECT_LT(secs, 10.0) << b.tag;
    // Peak RSS grew by less than the allowance (size * 1000 + slack) and a
    // small margin, far below what the bomb would inflate to.
    const std::uint64_t allowance = comp->size() * 1000ull + kRatioSlack;
    const auto grew = static_cast<std::uint64_t>(std::max<long>(0, after.ru_maxrss - before.ru_maxrss)) * 1024;
    EXPECT_LT(grew, 2 * allowance + (32ull << 20)) << b.tag << " peak RSS grew by " << grew;
    EXPECT_LT(grew, 200ull << 20) << b.tag;
    // The same input passes when the caller lifts the ratio limit and the
    // cap allows it (the bound is the ratio, not the codec).
    auto small = decompress_all(*comp, 1 << 20, 0);
    ASSERT_FALSE(small.has_value());
    EXPECT_EQ(small.error().message(), "decompressed size exceeds 1048576 bytes");
  }
  // Ordinary data well within the ratio decompresses.
  const ByteVector data = sample(1 << 20);
  auto ok = decompress_all(compress_with("zstd -q -19 -c", data, "ratio-ok"), 1 << 30);
  ASSERT_TRUE(ok.has_value()) << ok.error().to_string();
  EXPECT_TRUE(*ok == data);
}

TEST(DecompressTest, TruncatedStreamsAreErrors) {
  const ByteVector data = sample(200000);
  for (const Tool& t : kTools) {
    if (std::string(t.tag) == "lz4legacy") continue;  // no end marker in the legacy format
    ByteVector comp = compress_with(t.cmd, data, std::string("trunc-") + t.tag);
    comp.resize(comp.size() - 9);
    auto r = run_chunked(comp, t.codec, 1 << 30, {});
    ASSERT_FALSE(r.has_value()) << t.tag;
    EXPECT_EQ(r.error().code(), ErrorCode::kMalformedInput) << t.tag << ": " << r.error().to_string();
  }
}

TEST(DecompressTest, TrailingDataRejectedOrIgnored) {
  const ByteVector data = sample(50000);
  for (const Tool& t : kTools) {
    if (std::string(t.tag) == "lz4legacy") continue;
    ByteVector comp = compress_with(t.cmd, data, std::string("trail-") + t.tag);
    const ByteVector trailer = {0x40, 0x42, 0x0f, 0x00, 0x99, 0x98, 0x97, 0x96, 0x95, 0x94, 0x93, 0x92, 0x91};
    comp.insert(comp.end(), trailer.begin(), trailer.end());
    auto r = run_chunked(comp, t.codec, 1 << 30, {});
    ASSERT_FALSE(r.has_value()) << t.tag;
    EXPECT_EQ(r.error().message(), std::string(codec_name(t.codec)) + ": trailing data after end of stream");
    DecompressOptions lax;
    lax.allow_trailing_data = true;
    auto ok = run_chunked(comp, t.codec, 1000, lax);
    ASSERT_TRUE(ok.has_value()) << t.tag << ": " << ok.error().to_string();
    EXPECT_TRUE(*ok == data) << t.tag;
  }
}

TEST(DecompressTest, Lz4LegacyWithKernelSizeTrailer) {
  const ByteVector data = sample(100000);
  ByteVector comp = compress_with("lz4 -q -l -c", data, "legacy-size");
  // The kernel appends the uncompressed size (u32 LE).
  for (int i = 0; i < 4; ++i) comp.push_back(static_cast<std::uint8_t>(data.size() >> (8 * i)));
  DecompressOptions lax;
  lax.allow_trailing_data = true;
  auto ok = run_chunked(comp, Codec::kLz4, 1 << 30, lax);
  ASSERT_TRUE(ok.has_value()) << ok.error().to_string();
  EXPECT_TRUE(*ok == data);
}

TEST(DecompressTest, ConcatenatedStreams) {
  const ByteVector a = sample(30000);
  for (const Tool& t : kTools) {
    if (t.codec == Codec::kLzma || std::string(t.tag) == "lz4legacy") continue;
    ByteVector comp = compress_with(t.cmd, a, std::string("cat-") + t.tag);
    ByteVector twice = comp;
    twice.insert(twice.end(), comp.begin(), comp.end());
    auto r = run_chunked(twice, t.codec, 3, {});
    ASSERT_TRUE(r.has_value()) << t.tag << ": " << r.error().to_string();
    EXPECT_EQ(r->size(), 2 * a.size()) << t.tag;
  }
}

TEST(DecompressTest, GarbageAndEmpty) {
  const ByteVector garbage = {0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0x11, 0x22, 0x33};
  auto r = decompress_all(garbage, 1 << 20);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kMalformedInput);
  auto e = run_chunked(Bytes(), Codec::kZstd, 10, {});
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().message(), "zstd: empty input");
  auto none = decompress_all(as_bytes("plain text"), 100);
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(as_string_view(*none), "plain text");
  auto capped = decompress_all(as_bytes("plain text"), 3);
  ASSERT_FALSE(capped.has_value());
  EXPECT_EQ(capped.error().message(), "decompressed size exceeds 3 bytes");
}

TEST(DecompressTest, LzmaDictionaryMemoryLimit) {
  // .lzma header claiming a 4 GiB dictionary (found by the fuzzer: OOM).
  ByteVector hdr = {0x5d, 0xff, 0xff, 0xff, 0xff};
  hdr.resize(64, 0xff);
  auto r = run_chunked(hdr, Codec::kLzma, 1 << 30, {});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kLimitExceeded);
  EXPECT_EQ(r.error().message(), "lzma: stream needs more than 256 MiB of decoder memory");
}

TEST(DecompressTest, NamesAndSuffixes) {
  for (auto name : {"gzip", "bzip2", "xz", "lzma", "lz4", "zstd", "none"}) {
    auto c = codec_from_name(name);
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(codec_name(*c), name);
  }
  EXPECT_FALSE(codec_from_name("lzo").has_value());
  EXPECT_EQ(codec_from_suffix("a.ko.zst"), Codec::kZstd);
  EXPECT_EQ(codec_from_suffix("a.ko.xz"), Codec::kXz);
  EXPECT_EQ(codec_from_suffix("a.ko.gz"), Codec::kGzip);
  EXPECT_EQ(codec_from_suffix("a.ko"), Codec::kNone);
}

}  // namespace
}  // namespace kmr::archive

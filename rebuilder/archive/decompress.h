#pragma once

// Streaming decompression of the single-stream codecs kernel packages use
// (gzip, bzip2, xz, lzma, lz4, zstd) with a hard cap on the output size.
// Each codec runs through its own library directly (zlib, libbz2, liblzma,
// liblz4, libzstd): faster than going through libarchive and it lets us
// stop cleanly at the end of a stream followed by trailing bytes (an x86
// bzImage payload carries its size after the stream).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/limits.h"
#include "rebuilder/base/result.h"

namespace kmr::archive {

enum class Codec { kNone, kGzip, kBzip2, kXz, kLzma, kLz4, kZstd };

// "none", "gzip", "bzip2", "xz", "lzma", "lz4", "zstd".
std::string_view codec_name(Codec codec);
std::optional<Codec> codec_from_name(std::string_view name);

// Codec from the first bytes of a stream (magic numbers); kNone when no
// known magic matches. lz4 covers the frame format and the legacy format
// the kernel uses for bzImage payloads. "lzma" (the .lzma "alone" format)
// has no real magic; it is recognised by its usual header (properties byte
// 0x5d, dictionary size power of two, size unknown or plausible).
Codec detect_codec(Bytes head);

// Codec from a file name suffix (".gz", ".zst", ...); kNone otherwise.
Codec codec_from_suffix(std::string_view path);

// Receives decompressed output in chunks; an error stops decompression and
// is returned as is.
using ChunkSink = std::function<Result<void>(Bytes chunk)>;

struct DecompressOptions {
  // Hard cap on the total output; beyond it: kLimitExceeded
  // "decompressed size exceeds N bytes".
  std::uint64_t max_output = 4ull << 30;
  // Stop at the end of the first complete stream and ignore what follows
  // (otherwise concatenated streams are decoded and any other trailing
  // bytes are an error).
  bool allow_trailing_data = false;
};

// Incremental decoder: feed compressed bytes with update() in any chunking,
// then call finish() to check the stream was complete.
class Decompressor {
 public:
  virtual ~Decompressor() = default;
  static Result<std::unique_ptr<Decompressor>> create(Codec codec, const DecompressOptions& options);

  virtual Result<void> update(Bytes in, const ChunkSink& sink) = 0;
  virtual Result<void> finish(const ChunkSink& sink) = 0;
  virtual std::uint64_t total_out() const = 0;
  // True once the stream's end marker was seen (and, with
  // allow_trailing_data, further input is ignored).
  virtual bool stream_ended() const = 0;
};

// Whole input in memory, output through `sink`.
Result<void> decompress(Bytes in, Codec codec, const ChunkSink& sink, const DecompressOptions& options);
// Reads `fd` to EOF in chunks.
Result<void> decompress_fd(int fd, Codec codec, const ChunkSink& sink, const DecompressOptions& options);
// Output allowed beyond `in.size() * max_ratio` (small inputs may expand more).
inline constexpr std::uint64_t kRatioSlack = 16ull << 20;

// Detects the codec ("none" copies) and returns all output: at most `cap`
// bytes (kLimitExceeded "decompressed size exceeds N bytes") and at most
// `in.size() * max_ratio + kRatioSlack` bytes (kLimitExceeded "compression
// ratio exceeds R:1 ..."), so a bomb stops after a bounded amount of memory
// whatever cap the caller chose. max_ratio 0 = no ratio limit.
Result<ByteVector> decompress_all(Bytes in, std::uint64_t cap, std::uint64_t max_ratio = Limits{}.max_compression_ratio);

}  // namespace kmr::archive

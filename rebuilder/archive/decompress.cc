#include "rebuilder/archive/decompress.h"

#include <bzlib.h>
#include <cerrno>
#include <cstring>
#include <lz4.h>
#include <lz4frame.h>
#include <lzma.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <cstdint>

#include "rebuilder/base/checked_math.h"

namespace kmr::archive {

std::string_view codec_name(Codec codec) {
  switch (codec) {
    case Codec::kNone: return "none";
    case Codec::kGzip: return "gzip";
    case Codec::kBzip2: return "bzip2";
    case Codec::kXz: return "xz";
    case Codec::kLzma: return "lzma";
    case Codec::kLz4: return "lz4";
    case Codec::kZstd: return "zstd";
  }
  return "none";
}

std::optional<Codec> codec_from_name(std::string_view name) {
  for (Codec c : {Codec::kNone, Codec::kGzip, Codec::kBzip2, Codec::kXz, Codec::kLzma, Codec::kLz4, Codec::kZstd}) {
    if (codec_name(c) == name) return c;
  }
  return std::nullopt;
}

namespace {

bool starts_with(Bytes data, std::initializer_list<std::uint8_t> magic) {
  if (data.size() < magic.size()) return false;
  return std::equal(magic.begin(), magic.end(), data.begin());
}

bool is_zstd_magic(Bytes d) {
  if (starts_with(d, {0x28, 0xb5, 0x2f, 0xfd})) return true;
  // Skippable frames: 0x184D2A50..0x184D2A5F little endian.
  return d.size() >= 4 && (d[0] & 0xf0) == 0x50 && d[1] == 0x2a && d[2] == 0x4d && d[3] == 0x18;
}

bool is_lzma_alone(Bytes d) {
  if (d.size() < 13 || d[0] != 0x5d) return false;
  const std::uint32_t dict = static_cast<std::uint32_t>(d[1]) | (static_cast<std::uint32_t>(d[2]) << 8) |
                             (static_cast<std::uint32_t>(d[3]) << 16) | (static_cast<std::uint32_t>(d[4]) << 24);
  if (dict < 4096) return false;
  // Size field: unknown (all 0xff) or a plausible size (< 2^40).
  bool all_ff = true;
  for (int i = 5; i < 13; ++i) all_ff = all_ff && d[static_cast<std::size_t>(i)] == 0xff;
  if (all_ff) return true;
  return d[10] == 0 && d[11] == 0 && d[12] == 0;
}

constexpr std::array<std::uint8_t, 4> kLz4LegacyMagic = {0x02, 0x21, 0x4c, 0x18};
constexpr std::uint32_t kLz4LegacyMagicValue = 0x184c2102;
constexpr std::size_t kLz4LegacyBlock = 8 << 20;
constexpr std::size_t kOutChunk = 256 << 10;
// Decoder memory (dictionary) limit: the kernel's xz uses 32 MiB, lzma -9 64 MiB.
constexpr std::uint64_t kLzmaMemLimit = 256ull << 20;

}  // namespace

Codec detect_codec(Bytes d) {
  if (starts_with(d, {0x1f, 0x8b})) return Codec::kGzip;
  if (d.size() >= 4 && d[0] == 'B' && d[1] == 'Z' && d[2] == 'h' && d[3] >= '1' && d[3] <= '9') return Codec::kBzip2;
  if (starts_with(d, {0xfd, '7', 'z', 'X', 'Z', 0x00})) return Codec::kXz;
  if (is_zstd_magic(d)) return Codec::kZstd;
  if (starts_with(d, {0x04, 0x22, 0x4d, 0x18})) return Codec::kLz4;
  if (starts_with(d, {0x02, 0x21, 0x4c, 0x18})) return Codec::kLz4;
  if (is_lzma_alone(d)) return Codec::kLzma;
  return Codec::kNone;
}

Codec codec_from_suffix(std::string_view path) {
  auto ends = [&](std::string_view s) { return path.size() >= s.size() && path.substr(path.size() - s.size()) == s; };
  if (ends(".gz")) return Codec::kGzip;
  if (ends(".bz2")) return Codec::kBzip2;
  if (ends(".xz")) return Codec::kXz;
  if (ends(".lzma")) return Codec::kLzma;
  if (ends(".lz4")) return Codec::kLz4;
  if (ends(".zst")) return Codec::kZstd;
  return Codec::kNone;
}

namespace {

// Shared driver: output cap, carry-over of a partial magic between chunks,
// concatenated streams and trailing data.
class Base : public Decompressor {
 public:
  explicit Base(const DecompressOptions& o) : opts_(o), out_(kOutChunk) {}

  Result<void> update(Bytes in, const ChunkSink& sink) override {
    if (ignoring_) return kmr::ok();
    ByteVector joined;
    if (!carry_.empty()) {
      joined = carry_;
      joined.insert(joined.end(), in.begin(), in.end());
      carry_.clear();
      in = joined;
    }
    while (!in.empty()) {
      if (at_end_) {
        if (opts_.allow_trailing_data) {
          ignoring_ = true;
          return kmr::ok();
        }
        if (in.size() < magic_len()) {
          carry_.assign(in.begin(), in.end());
          return kmr::ok();
        }
        if (!restart_magic(in)) return malformed(std::string(name()) + ": trailing data after end of stream");
        KMR_TRY(reset());
        at_end_ = false;
      }
      KMR_ASSIGN_OR_RETURN(std::size_t used, step(in, sink));
      in = in.subspan(used);
    }
    return kmr::ok();
  }

  Result<void> finish(const ChunkSink& sink) override {
    KMR_TRY(drain(sink));
    if (ignoring_) return kmr::ok();
    if (!carry_.empty()) return malformed(std::string(name()) + ": trailing data after end of stream");
    if (!at_end_) {
      if (total_in_ == 0) return malformed(std::string(name()) + ": empty input");
      return malformed(std::string(name()) + ": truncated stream (unexpected end of input)");
    }
    return kmr::ok();
  }

  std::uint64_t total_out() const override { return total_out_; }
  bool stream_ended() const override { return at_end_ || ignoring_; }

 protected:
  virtual std::string_view name() const = 0;
  virtual std::size_t magic_len() const { return 4; }
  virtual bool restart_magic(Bytes) const { return false; }
  virtual Result<void> reset() = 0;
  // Consumes a prefix of `in`, emitting output; sets at_end_ at the end of
  // a stream (and then consumes nothing more).
  virtual Result<std::size_t> step(Bytes in, const ChunkSink& sink) = 0;
  virtual Result<void> drain(const ChunkSink&) { return kmr::ok(); }

  Result<void> emit(std::size_t n, const ChunkSink& sink) { return emit(Bytes(out_.data(), n), sink); }
  Result<void> emit(Bytes b, const ChunkSink& sink) {
    if (b.empty()) return kmr::ok();
    if (b.size() > opts_.max_output - total_out_ || total_out_ > opts_.max_output) {
      return limit_exceeded("decompressed size exceeds " + std::to_string(opts_.max_output) + " bytes");
    }
    total_out_ += b.size();
    return sink(b);
  }

  DecompressOptions opts_;
  ByteVector out_;
  std::uint64_t total_out_ = 0;
  std::uint64_t total_in_ = 0;
  bool at_end_ = false;
  bool ignoring_ = false;
  ByteVector carry_;
};

class NoneDecoder final : public Base {
 public:
  using Base::Base;
  Result<void> finish(const ChunkSink&) override { return kmr::ok(); }

 protected:
  std::string_view name() const override { return "none"; }
  Result<void> reset() override { return kmr::ok(); }
  Result<std::size_t> step(Bytes in, const ChunkSink& sink) override {
    total_in_ += in.size();
    KMR_TRY(emit(in, sink));
    return in.size();
  }
};

class GzipDecoder final : public Base {
 public:
  explicit GzipDecoder(const DecompressOptions& o) : Base(o) {
    KMR_CHECK(inflateInit2(&z_, 16 + MAX_WBITS) == Z_OK);
  }
  ~GzipDecoder() override { inflateEnd(&z_); }

 protected:
  std::string_view name() const override { return "gzip"; }
  std::size_t magic_len() const override { return 2; }
  bool restart_magic(Bytes in) const override { return starts_with(in, {0x1f, 0x8b}); }
  Result<void> reset() override {
    if (inflateReset(&z_) != Z_OK) return internal_error("gzip: inflateReset failed");
    return kmr::ok();
  }
  Result<std::size_t> step(Bytes in, const ChunkSink& sink) override {
    total_in_ += in.size();
    z_.next_in = const_cast<Bytef*>(in.data());
    z_.avail_in = static_cast<uInt>(std::min<std::size_t>(in.size(), 1u << 30));
    const uInt given = z_.avail_in;
    for (;;) {
      z_.next_out = out_.data();
      z_.avail_out = static_cast<uInt>(out_.size());
      const int r = inflate(&z_, Z_NO_FLUSH);
      const std::size_t produced = out_.size() - z_.avail_out;
      if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR) {
        return malformed(std::string("gzip: corrupt data: ") + (z_.msg != nullptr ? z_.msg : "inflate error"));
      }
      KMR_TRY(emit(produced, sink));
      if (r == Z_STREAM_END) {
        at_end_ = true;
        break;
      }
      if (z_.avail_in == 0 && z_.avail_out != 0) break;
      if (r == Z_BUF_ERROR && produced == 0) break;
    }
    const std::size_t used = given - z_.avail_in;
    total_in_ -= in.size() - used;
    return used;
  }

 private:
  z_stream z_{};
};

class Bzip2Decoder final : public Base {
 public:
  explicit Bzip2Decoder(const DecompressOptions& o) : Base(o) { KMR_CHECK(BZ2_bzDecompressInit(&s_, 0, 0) == BZ_OK); }
  ~Bzip2Decoder() override { BZ2_bzDecompressEnd(&s_); }

 protected:
  std::string_view name() const override { return "bzip2"; }
  std::size_t magic_len() const override { return 3; }
  bool restart_magic(Bytes in) const override { return starts_with(in, {'B', 'Z', 'h'}); }
  Result<void> reset() override {
    BZ2_bzDecompressEnd(&s_);
    s_ = bz_stream{};
    if (BZ2_bzDecompressInit(&s_, 0, 0) != BZ_OK) return internal_error("bzip2: init failed");
    return kmr::ok();
  }
  Result<std::size_t> step(Bytes in, const ChunkSink& sink) override {
    total_in_ += in.size();
    s_.next_in = reinterpret_cast<char*>(const_cast<std::uint8_t*>(in.data()));
    s_.avail_in = static_cast<unsigned>(std::min<std::size_t>(in.size(), 1u << 30));
    const unsigned given = s_.avail_in;
    for (;;) {
      s_.next_out = reinterpret_cast<char*>(out_.data());
      s_.avail_out = static_cast<unsigned>(out_.size());
      const int r = BZ2_bzDecompress(&s_);
      if (r != BZ_OK && r != BZ_STREAM_END) return malformed("bzip2: corrupt data (error " + std::to_string(r) + ")");
      KMR_TRY(emit(out_.size() - s_.avail_out, sink));
      if (r == BZ_STREAM_END) {
        at_end_ = true;
        break;
      }
      if (s_.avail_in == 0 && s_.avail_out != 0) break;
    }
    const std::size_t used = given - s_.avail_in;
    total_in_ -= in.size() - used;
    return used;
  }

 private:
  bz_stream s_{};
};

class LzmaDecoder final : public Base {
 public:
  LzmaDecoder(const DecompressOptions& o, bool xz) : Base(o), xz_(xz) { KMR_CHECK(init()); }
  ~LzmaDecoder() override { lzma_end(&s_); }

 protected:
  std::string_view name() const override { return xz_ ? "xz" : "lzma"; }
  std::size_t magic_len() const override { return xz_ ? 6 : 13; }
  bool restart_magic(Bytes in) const override {
    return xz_ ? starts_with(in, {0xfd, '7', 'z', 'X', 'Z', 0x00}) : is_lzma_alone(in);
  }
  Result<void> reset() override {
    lzma_end(&s_);
    s_ = LZMA_STREAM_INIT;
    if (!init()) return internal_error(std::string(name()) + ": decoder init failed");
    return kmr::ok();
  }
  Result<std::size_t> step(Bytes in, const ChunkSink& sink) override {
    total_in_ += in.size();
    s_.next_in = in.data();
    s_.avail_in = in.size();
    for (;;) {
      s_.next_out = out_.data();
      s_.avail_out = out_.size();
      const lzma_ret r = lzma_code(&s_, LZMA_RUN);
      if (r == LZMA_MEMLIMIT_ERROR) {
        return limit_exceeded(std::string(name()) + ": stream needs more than " + std::to_string(kLzmaMemLimit >> 20) +
                              " MiB of decoder memory");
      }
      if (r != LZMA_OK && r != LZMA_STREAM_END && r != LZMA_BUF_ERROR) {
        return malformed(std::string(name()) + ": corrupt data (liblzma error " + std::to_string(static_cast<int>(r)) + ")");
      }
      KMR_TRY(emit(out_.size() - s_.avail_out, sink));
      if (r == LZMA_STREAM_END) {
        at_end_ = true;
        break;
      }
      if (s_.avail_in == 0 && s_.avail_out != 0) break;
      if (r == LZMA_BUF_ERROR) break;
    }
    const std::size_t used = in.size() - s_.avail_in;
    total_in_ -= in.size() - used;
    return used;
  }

 private:
  bool init() {
    const lzma_ret r = xz_ ? lzma_stream_decoder(&s_, kLzmaMemLimit, 0) : lzma_alone_decoder(&s_, kLzmaMemLimit);
    return r == LZMA_OK;
  }
  bool xz_;
  lzma_stream s_ = LZMA_STREAM_INIT;
};

// One spare decoder context per thread: creating a context and its window
// buffers per small file (thousands of modules) costs more than decoding.
struct ZstdCache {
  ZSTD_DStream* spare = nullptr;
  ~ZstdCache() { ZSTD_freeDStream(spare); }
};
thread_local ZstdCache tl_zstd_cache;

class ZstdDecoder final : public Base {
 public:
  explicit ZstdDecoder(const DecompressOptions& o) : Base(o) {
    if (tl_zstd_cache.spare != nullptr) {
      ds_ = tl_zstd_cache.spare;
      tl_zstd_cache.spare = nullptr;
      ZSTD_DCtx_reset(ds_, ZSTD_reset_session_and_parameters);
    } else {
      ds_ = ZSTD_createDStream();
    }
    KMR_CHECK(ds_ != nullptr);
    // Frames may need a window of up to 2^31; the cap protects the output,
    // the window limit protects memory.
    ZSTD_DCtx_setParameter(ds_, ZSTD_d_windowLogMax, 27);
  }
  ~ZstdDecoder() override {
    if (tl_zstd_cache.spare == nullptr) {
      tl_zstd_cache.spare = ds_;
    } else {
      ZSTD_freeDStream(ds_);
    }
  }

 protected:
  std::string_view name() const override { return "zstd"; }
  bool restart_magic(Bytes in) const override { return is_zstd_magic(in); }
  Result<void> reset() override {
    ZSTD_DCtx_reset(ds_, ZSTD_reset_session_only);
    return kmr::ok();
  }
  Result<std::size_t> step(Bytes in, const ChunkSink& sink) override {
    total_in_ += in.size();
    ZSTD_inBuffer ib{in.data(), in.size(), 0};
    for (;;) {
      ZSTD_outBuffer ob{out_.data(), out_.size(), 0};
      const std::size_t r = ZSTD_decompressStream(ds_, &ob, &ib);
      if (ZSTD_isError(r)) return malformed(std::string("zstd: corrupt data: ") + ZSTD_getErrorName(r));
      KMR_TRY(emit(ob.pos, sink));
      if (r == 0) {
        at_end_ = true;
        break;
      }
      if (ib.pos == ib.size && ob.pos < ob.size) break;
    }
    total_in_ -= in.size() - ib.pos;
    return ib.pos;
  }

 private:
  ZSTD_DStream* ds_ = nullptr;
};

// lz4: the frame format (lz4 CLI default) and the legacy format
// (lz4 -l, the kernel's bzImage payloads), told apart by the first magic.
class Lz4Decoder final : public Base {
 public:
  explicit Lz4Decoder(const DecompressOptions& o) : Base(o) {
    KMR_CHECK(!LZ4F_isError(LZ4F_createDecompressionContext(&ctx_, LZ4F_VERSION)));
  }
  ~Lz4Decoder() override { LZ4F_freeDecompressionContext(ctx_); }

  Result<void> finish(const ChunkSink& sink) override {
    if (mode_ == Mode::kLegacy && !ignoring_) {
      if (!pending_.empty()) {
        // The kernel appends the uncompressed size after the stream.
        if (opts_.allow_trailing_data && blocks_ > 0) return kmr::ok();
        return malformed("lz4: truncated legacy block");
      }
      if (blocks_ == 0) return malformed("lz4: empty legacy stream");
      return kmr::ok();
    }
    return Base::finish(sink);
  }

 protected:
  std::string_view name() const override { return "lz4"; }
  bool restart_magic(Bytes in) const override { return starts_with(in, {0x04, 0x22, 0x4d, 0x18}); }
  Result<void> reset() override {
    LZ4F_resetDecompressionContext(ctx_);
    return kmr::ok();
  }
  Result<std::size_t> step(Bytes in, const ChunkSink& sink) override {
    total_in_ += in.size();
    if (mode_ == Mode::kUnknown) {
      const std::size_t took = std::min<std::size_t>(in.size(), 4 - pending_.size());
      pending_.insert(pending_.end(), in.begin(), in.begin() + static_cast<long>(took));
      if (pending_.size() < 4) return took;
      if (std::equal(kLz4LegacyMagic.begin(), kLz4LegacyMagic.end(), pending_.begin())) {
        mode_ = Mode::kLegacy;
        pending_.clear();
        return took;
      }
      mode_ = Mode::kFrame;
      // Replay the 4 buffered bytes through the frame decoder.
      ByteVector head = pending_;
      pending_.clear();
      KMR_TRY(frame_step(head, sink));
      return took;
    }
    if (mode_ == Mode::kLegacy) return legacy_step(in, sink);
    return frame_step(in, sink);
  }

 private:
  enum class Mode { kUnknown, kFrame, kLegacy };

  Result<std::size_t> frame_step(Bytes in, const ChunkSink& sink) {
    std::size_t pos = 0;
    for (;;) {
      std::size_t dst = out_.size();
      std::size_t src = in.size() - pos;
      const std::size_t r = LZ4F_decompress(ctx_, out_.data(), &dst, in.data() + pos, &src, nullptr);
      if (LZ4F_isError(r)) return malformed(std::string("lz4: corrupt data: ") + LZ4F_getErrorName(r));
      pos += src;
      KMR_TRY(emit(dst, sink));
      if (r == 0) {
        at_end_ = true;
        break;
      }
      if (pos == in.size() && dst < out_.size()) break;
    }
    return pos;
  }

  Result<std::size_t> legacy_step(Bytes in, const ChunkSink& sink) {
    pending_.insert(pending_.end(), in.begin(), in.end());
    std::size_t off = 0;
    for (;;) {
      if (pending_.size() - off < 4) break;
      const std::uint32_t bsize = static_cast<std::uint32_t>(pending_[off]) | (static_cast<std::uint32_t>(pending_[off + 1]) << 8) |
                                  (static_cast<std::uint32_t>(pending_[off + 2]) << 16) |
                                  (static_cast<std::uint32_t>(pending_[off + 3]) << 24);
      if (bsize == kLz4LegacyMagicValue) {
        off += 4;
        continue;
      }
      if (bsize == 0 || bsize > static_cast<std::uint32_t>(LZ4_compressBound(kLz4LegacyBlock))) {
        if (opts_.allow_trailing_data && blocks_ > 0) {
          ignoring_ = true;
          pending_.clear();
          return in.size();
        }
        return malformed("lz4: bad legacy block size " + std::to_string(bsize));
      }
      if (pending_.size() - off - 4 < bsize) break;
      if (block_.size() < kLz4LegacyBlock) block_.resize(kLz4LegacyBlock);
      const int n = LZ4_decompress_safe(reinterpret_cast<const char*>(pending_.data() + off + 4),
                                        reinterpret_cast<char*>(block_.data()), static_cast<int>(bsize),
                                        static_cast<int>(block_.size()));
      if (n < 0) return malformed("lz4: corrupt legacy block");
      KMR_TRY(emit(Bytes(block_.data(), static_cast<std::size_t>(n)), sink));
      ++blocks_;
      off += 4 + bsize;
    }
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<long>(off));
    return in.size();
  }

  LZ4F_dctx* ctx_ = nullptr;
  Mode mode_ = Mode::kUnknown;
  ByteVector pending_;
  ByteVector block_;
  std::uint64_t blocks_ = 0;
};

}  // namespace

Result<std::unique_ptr<Decompressor>> Decompressor::create(Codec codec, const DecompressOptions& options) {
  switch (codec) {
    case Codec::kNone: return std::unique_ptr<Decompressor>(new NoneDecoder(options));
    case Codec::kGzip: return std::unique_ptr<Decompressor>(new GzipDecoder(options));
    case Codec::kBzip2: return std::unique_ptr<Decompressor>(new Bzip2Decoder(options));
    case Codec::kXz: return std::unique_ptr<Decompressor>(new LzmaDecoder(options, true));
    case Codec::kLzma: return std::unique_ptr<Decompressor>(new LzmaDecoder(options, false));
    case Codec::kLz4: return std::unique_ptr<Decompressor>(new Lz4Decoder(options));
    case Codec::kZstd: return std::unique_ptr<Decompressor>(new ZstdDecoder(options));
  }
  return unsupported("unknown codec");
}

Result<void> decompress(Bytes in, Codec codec, const ChunkSink& sink, const DecompressOptions& options) {
  KMR_ASSIGN_OR_RETURN(auto dec, Decompressor::create(codec, options));
  KMR_TRY(dec->update(in, sink));
  return dec->finish(sink);
}

Result<void> decompress_fd(int fd, Codec codec, const ChunkSink& sink, const DecompressOptions& options) {
  KMR_ASSIGN_OR_RETURN(auto dec, Decompressor::create(codec, options));
  ByteVector buf(256 << 10);
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(std::string("read error: ") + std::strerror(errno));
    }
    if (n == 0) break;
    KMR_TRY(dec->update(Bytes(buf.data(), static_cast<std::size_t>(n)), sink));
  }
  return dec->finish(sink);
}

Result<ByteVector> decompress_all(Bytes in, std::uint64_t cap, std::uint64_t max_ratio) {
  const Codec codec = detect_codec(in);
  ByteVector out;
  out.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(cap, std::min<std::uint64_t>(in.size() * 4ull, 256ull << 20))));
  DecompressOptions opts;
  opts.max_output = cap;
  const auto by_ratio = checked_mul<std::uint64_t>(in.size(), max_ratio);
  const std::uint64_t ratio_cap =
      max_ratio == 0 || !by_ratio ? UINT64_MAX : checked_add<std::uint64_t>(*by_ratio, kRatioSlack).value_or(UINT64_MAX);
  KMR_TRY(decompress(in, codec, [&](Bytes b) -> Result<void> {
    if (out.size() + b.size() > ratio_cap) {
      return limit_exceeded("compression ratio exceeds " + std::to_string(max_ratio) + ":1 (" + std::to_string(in.size()) +
                            " compressed bytes expand beyond " + std::to_string(ratio_cap) +
                            "; possible decompression bomb)");
    }
    out.insert(out.end(), b.begin(), b.end());
    return kmr::ok();
  }, opts));
  return out;
}

}  // namespace kmr::archive

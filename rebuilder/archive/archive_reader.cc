#include "rebuilder/archive/archive_reader.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <lzma.h>
#include <thread>
#include <unordered_set>

#include "rebuilder/archive/decompress.h"
#include "rebuilder/base/checked_math.h"

namespace kmr::archive {

Result<Bytes> MemoryStream::next() {
  if (pos_ >= data_.size()) return Bytes();
  const std::size_t n = std::min(chunk_, data_.size() - pos_);
  Bytes out = data_.subspan(pos_, n);
  pos_ += n;
  return out;
}

Result<std::unique_ptr<FileStream>> FileStream::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error(path + ": cannot open: " + std::strerror(errno));
  return std::unique_ptr<FileStream>(new FileStream(fd, path));
}

FileStream::~FileStream() {
  if (fd_ >= 0) ::close(fd_);
}

Result<Bytes> FileStream::next() {
  for (;;) {
    const ssize_t n = ::read(fd_, buf_.data(), buf_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(path_ + ": read failed: " + std::strerror(errno));
    }
    return Bytes(buf_.data(), static_cast<std::size_t>(n));
  }
}

std::string_view entry_type_name(EntryType type) {
  switch (type) {
    case EntryType::kFile: return "file";
    case EntryType::kDirectory: return "dir";
    case EntryType::kSymlink: return "symlink";
    case EntryType::kHardlink: return "hardlink";
  }
  return "?";
}

Result<ByteVector> MemberStream::read_all(std::uint64_t max_bytes) {
  ByteVector out;
  out.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(size_hint(), max_bytes)));
  for (;;) {
    KMR_ASSIGN_OR_RETURN(Bytes b, next());
    if (b.empty()) break;
    if (out.size() + b.size() > max_bytes) {
      return limit_exceeded("member larger than " + std::to_string(max_bytes) + " bytes");
    }
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}

Result<std::string> normalise_member_path(std::string_view raw) {
  if (raw.find('\0') != std::string_view::npos) return malformed("NUL in path");
  if (raw.empty()) return malformed("empty path");
  if (raw.front() == '/') return malformed("absolute path '" + std::string(raw) + "'");
  std::string out;
  std::size_t i = 0;
  while (i <= raw.size()) {
    std::size_t j = raw.find('/', i);
    if (j == std::string_view::npos) j = raw.size();
    const std::string_view comp = raw.substr(i, j - i);
    if (comp == "..") return malformed("'..' component in path '" + std::string(raw) + "'");
    if (!comp.empty() && comp != ".") {
      if (!out.empty()) out += '/';
      out += comp;
    }
    i = j + 1;
  }
  return out;
}

bool symlink_stays_inside(std::string_view link_path, std::string_view target) {
  if (!target.empty() && target.front() == '/') return false;
  // Depth of the link's directory.
  std::int64_t depth = 0;
  {
    std::size_t i = 0;
    std::int64_t comps = 0;
    while (i < link_path.size()) {
      std::size_t j = link_path.find('/', i);
      if (j == std::string_view::npos) j = link_path.size();
      if (j > i) ++comps;
      i = j + 1;
    }
    depth = comps - 1;  // the link itself is not a directory
    if (depth < 0) depth = 0;
  }
  std::size_t i = 0;
  while (i <= target.size()) {
    std::size_t j = target.find('/', i);
    if (j == std::string_view::npos) j = target.size();
    const std::string_view comp = target.substr(i, j - i);
    if (comp == "..") {
      if (--depth < 0) return false;
    } else if (!comp.empty() && comp != ".") {
      ++depth;
    }
    i = j + 1;
  }
  return true;
}

namespace {

struct ClientData {
  InputStream* in = nullptr;
  std::optional<Error> error;
  std::uint64_t bytes = 0;
};

la_ssize_t read_callback(struct archive* a, void* cd, const void** buffer) {
  auto* client = static_cast<ClientData*>(cd);
  auto r = client->in->next();
  if (!r) {
    archive_set_error(a, EIO, "%s", r.error().to_string().c_str());
    client->error = std::move(r).error();
    return -1;
  }
  *buffer = r->data();
  client->bytes += r->size();
  return static_cast<la_ssize_t>(r->size());
}

struct ArchiveDeleter {
  void operator()(struct archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<struct archive, ArchiveDeleter>;

void enable_filters(struct archive* a) {
  archive_read_support_filter_none(a);
  archive_read_support_filter_gzip(a);
  archive_read_support_filter_bzip2(a);
  archive_read_support_filter_xz(a);
  archive_read_support_filter_lzma(a);
  archive_read_support_filter_zstd(a);
  archive_read_support_filter_lz4(a);
}

// Multi-threaded xz decoding (liblzma >= 5.4) in front of libarchive: xz
// files written by threaded compressors (dpkg-deb, makepkg, zstd-less
// tools) have many blocks that decode in parallel. Enforces the same total
// and ratio caps as the reader.
class XzMtStream : public InputStream {
 public:
  XzMtStream(InputStream& in, Bytes first, const ReaderOptions& o) : in_(in), pending_(first), o_(o), out_(1 << 20) {}
  ~XzMtStream() override { lzma_end(&s_); }

  Result<void> init() {
    lzma_mt mt{};
    mt.flags = LZMA_CONCATENATED;
    mt.threads = std::max(1u, std::min(4u, std::thread::hardware_concurrency()));
    mt.timeout = 0;
    mt.memlimit_threading = 512ull << 20;  // beyond it: single-threaded
    mt.memlimit_stop = 1ull << 30;         // beyond it: error (hostile dictionary sizes)
    if (lzma_stream_decoder_mt(&s_, &mt) != LZMA_OK) return internal_error(o_.name + ": lzma_stream_decoder_mt failed");
    return ok();
  }

  Result<Bytes> next() override {
    if (done_) return Bytes();
    for (;;) {
      if (s_.avail_in == 0 && !eof_) {
        if (!pending_.empty()) {
          cur_ = pending_;
          pending_ = Bytes();
        } else {
          KMR_ASSIGN_OR_RETURN(cur_, in_.next());
        }
        compressed_ += cur_.size();
        if (cur_.empty()) eof_ = true;
        s_.next_in = cur_.data();
        s_.avail_in = cur_.size();
      }
      s_.next_out = out_.data();
      s_.avail_out = out_.size();
      const lzma_ret r = lzma_code(&s_, eof_ ? LZMA_FINISH : LZMA_RUN);
      const std::size_t n = out_.size() - s_.avail_out;
      if (r == LZMA_STREAM_END) done_ = true;
      else if (r != LZMA_OK) return malformed(o_.name + ": xz: " + describe(r));
      if (n > 0 || done_) {
        produced_ += n;
        if (produced_ > o_.limits.max_total_bytes) {
          return limit_exceeded(o_.name + ": decompressed size exceeds " + std::to_string(o_.limits.max_total_bytes) +
                                " bytes");
        }
        const auto allowed = checked_mul<std::uint64_t>(std::max<std::uint64_t>(compressed_, 1),
                                                        o_.limits.max_compression_ratio);
        if (allowed && produced_ > *allowed + o_.ratio_slack) {
          return limit_exceeded(o_.name + ": compression ratio exceeds " +
                                std::to_string(o_.limits.max_compression_ratio) + " (" + std::to_string(produced_) +
                                " bytes from " + std::to_string(compressed_) + ")");
        }
        if (n > 0) return Bytes(out_.data(), n);
        return Bytes();
      }
      if (eof_ && s_.avail_in == 0 && r == LZMA_OK && n == 0) {
        // lzma_code made no progress at the end of input.
        if (++stalls_ > 1000000) return malformed(o_.name + ": xz: truncated stream");
      }
    }
  }

  std::uint64_t compressed() const { return compressed_; }

 private:
  static std::string describe(lzma_ret r) {
    switch (r) {
      case LZMA_BUF_ERROR: return "truncated stream";
      case LZMA_DATA_ERROR: return "corrupt data";
      case LZMA_FORMAT_ERROR: return "not an xz stream";
      case LZMA_OPTIONS_ERROR: return "unsupported options";
      case LZMA_MEM_ERROR:
      case LZMA_MEMLIMIT_ERROR: return "out of memory";
      default: return "error " + std::to_string(static_cast<int>(r));
    }
  }
  InputStream& in_;
  Bytes pending_;
  Bytes cur_;
  const ReaderOptions& o_;
  lzma_stream s_ = LZMA_STREAM_INIT;
  ByteVector out_;
  std::uint64_t compressed_ = 0;
  std::uint64_t produced_ = 0;
  std::uint64_t stalls_ = 0;
  bool eof_ = false;
  bool done_ = false;
};

// gzip, bzip2, zstd and lz4 through the codec libraries (decompress.h) in
// front of libarchive, so the whole compressed stream is decoded and checked
// to its end; same caps as the reader.
class CodecStream : public InputStream {
 public:
  CodecStream(InputStream& in, Bytes first, const ReaderOptions& o) : in_(in), pending_(first), o_(o) {}

  Result<void> init(Codec codec) {
    DecompressOptions d;
    d.max_output = o_.limits.max_total_bytes;
    auto r = Decompressor::create(codec, d);
    if (!r) return Error(r.error().code(), o_.name + ": " + r.error().message());
    dec_ = std::move(*r);
    return ok();
  }

  // Feeds the decoder 64 KiB of input at a time and returns as soon as there
  // is output, so one call buffers at most what 64 KiB expand to within the
  // ratio cap (checked as output arrives), whatever the source's chunk size.
  Result<Bytes> next() override {
    out_.clear();
    auto sink = [this](Bytes b) -> Result<void> {
      produced_ += b.size();
      const auto allowed = checked_mul<std::uint64_t>(std::max<std::uint64_t>(compressed_, 1),
                                                      o_.limits.max_compression_ratio);
      if (allowed && produced_ > *allowed + o_.ratio_slack) {
        ratio_error_ = limit_exceeded(o_.name + ": compression ratio exceeds " +
                                      std::to_string(o_.limits.max_compression_ratio) + " (" +
                                      std::to_string(produced_) + " bytes from " + std::to_string(compressed_) + ")");
        return *ratio_error_;
      }
      out_.insert(out_.end(), b.begin(), b.end());
      return ok();
    };
    while (out_.empty() && !done_) {
      if (pending_.empty()) {
        KMR_ASSIGN_OR_RETURN(pending_, in_.next());
        if (pending_.empty()) {
          auto f = dec_->finish(sink);
          if (!f) return failed(std::move(f).error());
          done_ = true;
          break;
        }
      }
      const Bytes slice = pending_.first(std::min<std::size_t>(64 << 10, pending_.size()));
      pending_ = pending_.subspan(slice.size());
      compressed_ += slice.size();
      auto u = dec_->update(slice, sink);
      if (!u) return failed(std::move(u).error());
    }
    return Bytes(out_.data(), out_.size());
  }
  std::uint64_t compressed() const { return compressed_; }

 private:
  // The decoder's error named by the archive, or the ratio cap the sink hit.
  Error failed(const Error& e) const {
    if (ratio_error_) return *ratio_error_;
    return Error(e.code(), o_.name + ": " + e.message());
  }

  InputStream& in_;
  Bytes pending_;
  const ReaderOptions& o_;
  std::optional<Error> ratio_error_;
  std::unique_ptr<Decompressor> dec_;
  ByteVector out_;
  std::uint64_t compressed_ = 0;
  std::uint64_t produced_ = 0;
  bool done_ = false;
};

// Replays one already-read chunk, then the rest of the source.
class PeekedStream : public InputStream {
 public:
  PeekedStream(InputStream& in, Bytes first) : in_(in), first_(first) {}
  Result<Bytes> next() override {
    if (!first_.empty()) {
      Bytes b = first_;
      first_ = Bytes();
      return b;
    }
    return in_.next();
  }

 private:
  InputStream& in_;
  Bytes first_;
};

class Session {
 public:
  Session(InputStream& in, const ReaderOptions& options) : options_(options) { client_.in = &in; }

  Result<void> open(bool raw) {
    a_.reset(archive_read_new());
    if (!a_) return internal_error(options_.name + ": archive_read_new failed");
    enable_filters(a_.get());
    if (options_.mode == Mode::kLenient) {
      // Built into libarchive (no external programs): RPM payloads for kmr diff.
      archive_read_support_filter_rpm(a_.get());
      archive_read_support_filter_compress(a_.get());
      archive_read_support_filter_lzip(a_.get());
      archive_read_support_filter_uu(a_.get());
    }
    if (raw) {
      archive_read_support_format_raw(a_.get());
    } else {
      const Format f = options_.format;
      if (f == Format::kAny || f == Format::kTar) {
        archive_read_support_format_tar(a_.get());
        archive_read_support_format_gnutar(a_.get());
      }
      if (f == Format::kAny || f == Format::kCpio) archive_read_support_format_cpio(a_.get());
      if (f == Format::kAny || f == Format::kAr) archive_read_support_format_ar(a_.get());
    }
    if (archive_read_open(a_.get(), &client_, nullptr, read_callback, nullptr) != ARCHIVE_OK) {
      return fail("not a readable archive");
    }
    return ok();
  }

  // An error from the archive (or from the source stream), naming the file.
  Error fail(std::string_view what) {
    if (client_.error) {
      Error e = *client_.error;
      return Error(e.code(), options_.name + ": " + std::string(what) + ": " + e.to_string());
    }
    const char* msg = archive_error_string(a_.get());
    std::string text = options_.name + ": " + std::string(what);
    if (msg && *msg) text += ": " + std::string(msg);
    return malformed(text);
  }

  // Why the archive or the source stream failed, without the file's name.
  std::string reason() {
    if (client_.error) return client_.error->to_string();
    const char* msg = archive_error_string(a_.get());
    return msg && *msg ? msg : "unknown libarchive error";
  }
  bool source_limit_hit() const { return client_.error && client_.error->code() == ErrorCode::kLimitExceeded; }

  // Ratio and total caps on decompressed output so far: what was exceeded, or
  // nullopt.
  std::optional<std::string> expansion_problem(std::uint64_t produced) const {
    const Limits& lim = options_.limits;
    if (produced > lim.max_total_bytes) return "decompressed size exceeds " + std::to_string(lim.max_total_bytes) + " bytes";
    const std::uint64_t in = std::max<std::uint64_t>(client_.bytes, 1);
    const auto allowed = checked_mul(in, lim.max_compression_ratio);
    if (allowed && produced > *allowed + options_.ratio_slack) {
      return "compression ratio exceeds " + std::to_string(lim.max_compression_ratio) + " (" +
             std::to_string(produced) + " bytes from " + std::to_string(client_.bytes) + ")";
    }
    return std::nullopt;
  }
  Result<void> check_expansion(std::uint64_t produced) const {
    if (auto problem = expansion_problem(produced)) return limit_exceeded(options_.name + ": " + *problem);
    return ok();
  }

  struct archive* get() { return a_.get(); }
  std::uint64_t source_bytes() const { return client_.bytes; }
  const ReaderOptions& options() const { return options_; }
  bool lenient() const { return options_.mode == Mode::kLenient; }

 private:
  const ReaderOptions& options_;
  ClientData client_;
  ArchivePtr a_;
};

// Blocks of zeros for the holes of a sparse member (lenient mode).
constexpr std::size_t kZeroBlock = 64 << 10;
const std::uint8_t kZeros[kZeroBlock] = {};

class LaMemberStream : public MemberStream {
 public:
  LaMemberStream(Session& s, ArchiveStats& stats, std::string path, std::uint64_t declared)
      : s_(s), stats_(stats), path_(std::move(path)), declared_(declared) {}
  std::uint64_t size_hint() const override { return declared_; }

  Result<Bytes> next() override {
    if (done_) return Bytes();
    Bytes out;
    if (hole_ > 0) {
      out = Bytes(kZeros, static_cast<std::size_t>(std::min<std::uint64_t>(hole_, kZeroBlock)));
      hole_ -= out.size();
    } else if (!held_.empty()) {
      out = held_;
      held_ = Bytes();
    } else {
      KMR_ASSIGN_OR_RETURN(std::optional<Bytes> block, read_block());
      if (!block) return Bytes();
      out = *block;
    }
    read_ += out.size();
    stats_.content_bytes += out.size();
    const Limits& lim = s_.options().limits;
    if (read_ > lim.max_member_bytes) {
      done_ = true;
      stop("decompression of " + path_ + " stopped at the member size limit (possible decompression bomb)");
      return limit_exceeded(s_.options().name + ": " + path_ + ": member larger than " +
                            std::to_string(lim.max_member_bytes) + " bytes");
    }
    if (auto problem = s_.expansion_problem(stats_.content_bytes)) {
      done_ = true;
      stop("decompression stopped in " + path_ + ": " + *problem + " (possible decompression bomb)");
      return limit_exceeded(s_.options().name + ": " + *problem);
    }
    return out;
  }

  // Reads whatever the visitor left.
  Result<void> drain() {
    while (!done_) {
      KMR_ASSIGN_OR_RETURN(Bytes b, next());
      if (b.empty()) break;
    }
    return ok();
  }

  // Lenient mode: the archive cannot be read further (the note says why).
  bool stopped() const { return stopped_; }

 private:
  // The next block from libarchive; nullopt at the end of the member. A hole
  // before the block (lenient) is served as zeros first.
  Result<std::optional<Bytes>> read_block() {
    const void* buf = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    const int r = archive_read_data_block(s_.get(), &buf, &size, &offset);
    if (r == ARCHIVE_EOF) {
      done_ = true;
      if (read_ < declared_) {
        if (!s_.lenient()) return malformed(s_.options().name + ": " + path_ + ": truncated member");
        stats_.notes.push_back(path_ + ": truncated member (" + std::to_string(read_) + " of " +
                               std::to_string(declared_) + " bytes)");
      }
      return std::optional<Bytes>();
    }
    if (r == ARCHIVE_WARN) {
      const char* m = archive_error_string(s_.get());
      stats_.warnings.push_back(path_ + ": " + (m ? m : "warning"));
    } else if (r != ARCHIVE_OK) {
      done_ = true;
      if (s_.lenient() && r == ARCHIVE_FATAL) {
        stop(s_.source_limit_hit() ? "decompression stopped in " + path_ + ": " + s_.reason() + " (possible decompression bomb)"
                                   : "archive corrupt or truncated at member " + path_ + ": " + s_.reason());
      }
      return s_.fail(path_ + ": cannot read content");
    }
    const Bytes block(static_cast<const std::uint8_t*>(buf), size);
    if (offset >= 0 && static_cast<std::uint64_t>(offset) == read_) return std::optional<Bytes>(block);
    if (!s_.lenient() || offset < 0 || static_cast<std::uint64_t>(offset) < read_) {
      done_ = true;
      return malformed(s_.options().name + ": " + path_ + ": sparse member not supported");
    }
    hole_ = static_cast<std::uint64_t>(offset) - read_;
    if (hole_ > s_.options().limits.max_member_bytes) {
      done_ = true;
      stop("decompression of " + path_ + " stopped at the member size limit (possible decompression bomb)");
      return limit_exceeded(s_.options().name + ": " + path_ + ": sparse hole beyond the member size limit");
    }
    held_ = block;
    const Bytes zeros(kZeros, static_cast<std::size_t>(std::min<std::uint64_t>(hole_, kZeroBlock)));
    hole_ -= zeros.size();
    return std::optional<Bytes>(zeros);
  }

  void stop(std::string note) {
    if (!s_.lenient() || stopped_) return;
    stopped_ = true;
    stats_.notes.push_back(std::move(note));
  }

  Session& s_;
  ArchiveStats& stats_;
  std::string path_;
  std::uint64_t declared_;
  std::uint64_t read_ = 0;
  std::uint64_t hole_ = 0;  // zeros still to serve before held_
  Bytes held_;
  bool done_ = false;
  bool stopped_ = false;
};

constexpr std::size_t kMaxShownPath = 4096;

// Checks one header: in strict mode the first anomaly is the error, in
// lenient mode each one is a note and the entry is still filled in.
class EntryChecker {
 public:
  EntryChecker(const ReaderOptions& opt, ArchiveStats& stats) : opt_(opt), stats_(stats) {}

  Result<void> check(struct archive_entry* ae, Entry& e) {
    KMR_TRY(check_path(ae, e));
    e.size = archive_entry_size_is_set(ae) ? static_cast<std::uint64_t>(std::max<la_int64_t>(archive_entry_size(ae), 0)) : 0;
    e.mode = static_cast<std::uint32_t>(archive_entry_perm(ae));
    e.mtime = archive_entry_mtime(ae);
    KMR_TRY(check_type(ae, e));
    if (e.path.empty()) return ok();  // archive root
    if (!seen_.insert(e.path).second) {
      if (!(e.type == EntryType::kDirectory && opt_.allow_duplicate_directories)) {
        KMR_TRY(flag(ErrorCode::kMalformedInput, "duplicate entry '" + e.path + "'"));
      }
    }
    if (e.size > opt_.limits.max_member_bytes) {
      KMR_TRY(flag(ErrorCode::kLimitExceeded, e.path + ": member larger than " +
                                                  std::to_string(opt_.limits.max_member_bytes) + " bytes"));
    }
    return ok();
  }

 private:
  // Strict: the error (named by the archive). Lenient: a note, and go on.
  Result<void> flag(ErrorCode code, std::string what) {
    if (opt_.mode == Mode::kStrict) return Error(code, opt_.name + ": " + what);
    stats_.notes.push_back(std::move(what));
    return ok();
  }

  Result<void> check_path(struct archive_entry* ae, Entry& e) {
    const char* raw_path = archive_entry_pathname(ae);
    e.stored_path = raw_path ? raw_path : "<unnamed " + std::to_string(stats_.members - 1) + ">";
    if (e.stored_path.size() > kMaxShownPath) e.stored_path = e.stored_path.substr(0, kMaxShownPath) + "...";
    if (!raw_path) {
      KMR_TRY(flag(ErrorCode::kMalformedInput, "member without a path"));
      e.path = e.stored_path;
      return ok();
    }
    auto norm = normalise_member_path(raw_path);
    if (!norm) {
      KMR_TRY(flag(ErrorCode::kMalformedInput, norm.error().message()));
      e.path = e.stored_path;
    } else {
      e.path = std::move(*norm);
    }
    for (std::size_t i = 0, j; i < e.path.size(); i = j + 1) {
      j = e.path.find('/', i);
      if (j == std::string::npos) j = e.path.size();
      if (j - i > opt_.limits.max_name_len) {
        return flag(ErrorCode::kLimitExceeded, "path component longer than " + std::to_string(opt_.limits.max_name_len) +
                                                   " bytes in '" + e.path.substr(0, 64) + "...'");
      }
    }
    return ok();
  }

  Result<void> check_type(struct archive_entry* ae, Entry& e) {
    const char* hardlink = archive_entry_hardlink(ae);
    const auto ft = archive_entry_filetype(ae);
    if (hardlink) {
      e.type = EntryType::kHardlink;
      e.stored_link = hardlink;
      auto target = normalise_member_path(hardlink);
      if (!target) {
        e.link_target = e.stored_link;
        return flag(ErrorCode::kMalformedInput, e.path + ": hard link target: " + target.error().message());
      }
      e.link_target = std::move(*target);
      if (!seen_.count(e.link_target)) {
        return flag(ErrorCode::kMalformedInput,
                    e.path + ": hard link to '" + e.link_target + "' which is not an earlier member");
      }
    } else if (ft == AE_IFREG) {
      e.type = EntryType::kFile;
    } else if (ft == AE_IFDIR) {
      e.type = EntryType::kDirectory;
      e.size = 0;
    } else if (ft == AE_IFLNK) {
      e.type = EntryType::kSymlink;
      e.size = 0;
      const char* t = archive_entry_symlink(ae);
      e.link_target = t ? t : "";
      e.stored_link = e.link_target;
      if (e.link_target.empty()) return flag(ErrorCode::kMalformedInput, e.path + ": symlink with empty target");
      if (e.link_target.size() > opt_.limits.max_symlink_len) {
        return flag(ErrorCode::kLimitExceeded, e.path + ": symlink target longer than " +
                                                   std::to_string(opt_.limits.max_symlink_len) + " bytes");
      }
      if (e.link_target.front() == '/') {
        e.absolute_symlink = true;
        stats_.warnings.push_back(e.path + ": absolute symlink target '" + e.link_target + "'");
      } else if (!symlink_stays_inside(e.path, e.link_target)) {
        return flag(ErrorCode::kMalformedInput,
                    e.path + ": symlink target '" + e.link_target + "' points outside the archive");
      }
    } else {
      e.special = ft == AE_IFCHR ? "character device" : ft == AE_IFBLK ? "block device"
                  : ft == AE_IFIFO ? "fifo" : ft == AE_IFSOCK ? "socket" : "unknown file type";
      e.type = EntryType::kFile;
      e.size = 0;
      return flag(ErrorCode::kMalformedInput, e.path + ": " + std::string(e.special) + " not allowed");
    }
    return ok();
  }

  const ReaderOptions& opt_;
  ArchiveStats& stats_;
  std::unordered_set<std::string> seen_;
};

// The codec stream in front of libarchive, if any.
struct FrontDecoder {
  std::unique_ptr<XzMtStream> xz;
  std::unique_ptr<CodecStream> codec;
  std::string filter;
  InputStream* stream() { return xz ? static_cast<InputStream*>(xz.get()) : codec.get(); }
  std::uint64_t compressed() const { return xz ? xz->compressed() : codec->compressed(); }
};

// Peeks at the first chunk: xz goes through the threaded decoder, gzip,
// bzip2, zstd and lz4 through the codec libraries; anything else to libarchive.
Result<FrontDecoder> front_decoder(InputStream& in, Bytes first, const ReaderOptions& options) {
  static constexpr std::uint8_t kXzMagic[6] = {0xfd, '7', 'z', 'X', 'Z', 0};
  FrontDecoder f;
  if (options.threaded_xz && first.size() >= 6 && std::memcmp(first.data(), kXzMagic, 6) == 0) {
    f.xz = std::make_unique<XzMtStream>(in, first, options);
    KMR_TRY(f.xz->init());
    f.filter = "xz";
  } else if (first.size() >= 4) {
    const Codec c = detect_codec(first.first(std::min<std::size_t>(first.size(), 64)));
    if (c == Codec::kGzip || c == Codec::kBzip2 || c == Codec::kZstd || c == Codec::kLz4) {
      f.codec = std::make_unique<CodecStream>(in, first, options);
      KMR_TRY(f.codec->init(c));
      f.filter = std::string(codec_name(c));
    }
  }
  return f;
}

}  // namespace

Result<ArchiveStats> read_archive(InputStream& in, const ReaderOptions& options, const Visitor& visitor) {
  const bool lenient = options.mode == Mode::kLenient;
  KMR_ASSIGN_OR_RETURN(Bytes first, in.next());
  PeekedStream peeked(in, first);
  KMR_ASSIGN_OR_RETURN(FrontDecoder front, front_decoder(in, first, options));
  InputStream* src = front.filter.empty() ? &peeked : front.stream();
  Session s(*src, options);
  KMR_TRY(s.open(false));
  ArchiveStats stats;
  EntryChecker checker(options, stats);
  bool complete = false;
  for (;;) {
    if (lenient && stats.members >= options.limits.max_members) {
      stats.notes.push_back("member limit reached; listing truncated");
      break;
    }
    struct archive_entry* ae = nullptr;
    const int r = archive_read_next_header(s.get(), &ae);
    if (r == ARCHIVE_EOF) {
      complete = true;
      break;
    }
    if (r == ARCHIVE_WARN) {
      const char* m = archive_error_string(s.get());
      if (lenient) {
        stats.notes.push_back("warning at member " + std::to_string(stats.members) + ": " + (m ? m : "warning"));
      } else {
        stats.warnings.push_back(m ? m : "warning");
      }
    } else if (r != ARCHIVE_OK) {
      if (lenient && stats.members > 0) {
        stats.notes.push_back(s.source_limit_hit() ? "decompression stopped after " + std::to_string(stats.members) +
                                                         " members: " + s.reason() + " (possible decompression bomb)"
                                                   : "archive corrupt or truncated after " +
                                                         std::to_string(stats.members) + " members: " + s.reason());
        break;
      }
      return s.fail(stats.members == 0 ? "not a readable archive" : "cannot read member header");
    }
    if (stats.members == 0) {
      const char* fmt = archive_format_name(s.get());
      stats.format_name = fmt ? fmt : "";
      const char* flt = archive_filter_name(s.get(), 0);
      stats.filter_name = flt ? flt : "";
    }
    if (++stats.members > options.limits.max_members) {
      return limit_exceeded(options.name + ": more than " + std::to_string(options.limits.max_members) +
                            " members");
    }
    Entry e;
    KMR_TRY(checker.check(ae, e));
    const bool has_content = e.type == EntryType::kFile && e.special.empty();
    LaMemberStream content(s, stats, lenient ? e.stored_path : e.path, has_content ? e.size : 0);
    if (!e.path.empty() || lenient) {
      auto v = visitor(e, content);
      if (!v) return std::move(v).error();
    }
    auto drained = content.drain();
    if (!drained && !lenient) return std::move(drained).error();
    if (content.stopped()) break;
    if (!drained) stats.notes.push_back(drained.error().message());
  }
  if (!front.filter.empty() && (complete || !lenient)) {
    // Decode to the end so a truncated or corrupt stream tail (index, footer,
    // check) is an error even when the tar ended before it.
    for (;;) {
      auto b = src->next();
      if (!b) {
        if (!lenient) return std::move(b).error();
        stats.notes.push_back("compressed stream after the last member: " + b.error().to_string());
        break;
      }
      if (b->empty()) break;
    }
  }
  stats.compressed_bytes = front.filter.empty() ? s.source_bytes() : front.compressed();
  if (!front.filter.empty()) stats.filter_name = front.filter;
  return stats;
}

Result<ArchiveStats> read_archive_file(const std::string& path, const ReaderOptions& options,
                                       const Visitor& visitor) {
  KMR_ASSIGN_OR_RETURN(auto fs, FileStream::open(path));
  return read_archive(*fs, options, visitor);
}

Result<ArchiveStats> read_archive_memory(Bytes data, const ReaderOptions& options, const Visitor& visitor) {
  MemoryStream ms(data);
  return read_archive(ms, options, visitor);
}

Result<std::uint64_t> decompress_stream(InputStream& in, const ReaderOptions& options, const BlockSink& sink) {
  Session s(in, options);
  KMR_TRY(s.open(true));
  struct archive_entry* ae = nullptr;
  const int r = archive_read_next_header(s.get(), &ae);
  if (r == ARCHIVE_EOF) return std::uint64_t{0};
  if (r != ARCHIVE_OK && r != ARCHIVE_WARN) return s.fail("cannot decompress");
  std::uint64_t total = 0;
  for (;;) {
    const void* buf = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    const int d = archive_read_data_block(s.get(), &buf, &size, &offset);
    if (d == ARCHIVE_EOF) break;
    if (d != ARCHIVE_OK && d != ARCHIVE_WARN) return s.fail("cannot decompress");
    total += size;
    if (total > options.limits.max_member_bytes) {
      return limit_exceeded(options.name + ": decompressed size exceeds " +
                            std::to_string(options.limits.max_member_bytes) + " bytes");
    }
    KMR_TRY(s.check_expansion(total));
    KMR_ASSIGN_OR_RETURN(bool more, sink(Bytes(static_cast<const std::uint8_t*>(buf), size)));
    if (!more) break;
  }
  return total;
}

Result<ByteVector> decompress_bytes(Bytes data, std::uint64_t max_bytes, const std::string& name) {
  ReaderOptions opt;
  opt.name = name;
  opt.limits.max_member_bytes = max_bytes;
  ByteVector out;
  MemoryStream ms(data);
  KMR_TRY(decompress_stream(ms, opt, [&](Bytes b) -> Result<bool> {
    out.insert(out.end(), b.begin(), b.end());
    return true;
  }));
  return out;
}

}  // namespace kmr::archive

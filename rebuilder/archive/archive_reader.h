#pragma once

// Streaming member reader over libarchive: tar (plain or gzip/bzip2/xz/lzma/
// zstd/lz4 compressed), cpio (newc/odc) and ar. Members are visited in archive
// order; content is streamed in blocks and never written to disk. Every path is
// normalised and checked; caps bound members, sizes and compression ratio.
// Two modes (ReaderOptions::mode): strict, where any anomaly is an error (the
// package readers), and lenient, where anomalies become notes and the reader
// shows what it can (kmr diff).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/limits.h"
#include "rebuilder/base/result.h"

namespace kmr::archive {

// A pull source of bytes: next() returns the next chunk; an empty span means
// end of stream. The span stays valid until the next call.
class InputStream {
 public:
  virtual ~InputStream() = default;
  virtual Result<Bytes> next() = 0;
};

// An in-memory InputStream (tests, small files).
class MemoryStream : public InputStream {
 public:
  explicit MemoryStream(Bytes data, std::size_t chunk = 1 << 20) : data_(data), chunk_(chunk) {}
  Result<Bytes> next() override;

 private:
  Bytes data_;
  std::size_t chunk_;
  std::size_t pos_ = 0;
};

// A file read in blocks.
class FileStream : public InputStream {
 public:
  static Result<std::unique_ptr<FileStream>> open(const std::string& path);
  ~FileStream() override;
  Result<Bytes> next() override;
  const std::string& path() const { return path_; }

 private:
  FileStream(int fd, std::string path) : fd_(fd), path_(std::move(path)), buf_(1 << 20) {}
  int fd_;
  std::string path_;
  std::vector<std::uint8_t> buf_;
};

enum class EntryType { kFile, kDirectory, kSymlink, kHardlink };
std::string_view entry_type_name(EntryType type);

struct Entry {
  std::string path;         // normalised: relative, no "./", no "..", no "//", no trailing "/"
                            // (lenient mode: as stored when it does not normalise)
  std::string stored_path;  // as stored in the archive (capped at 4096 bytes, then "...")
  EntryType type = EntryType::kFile;
  std::string link_target;  // symlink target (as stored) or hardlink target (normalised)
  std::string stored_link;  // symlink or hardlink target as stored
  // Lenient mode only: "character device", "block device", "fifo", "socket"
  // or "unknown file type" for a member of no EntryType (type is then kFile,
  // size 0, no content). Strict mode rejects such members.
  std::string_view special;
  bool absolute_symlink = false;  // symlink target starts with '/' (kept, flagged)
  std::uint64_t size = 0;   // size from the header (0 for non-files)
  std::uint32_t mode = 0;   // permission bits
  std::int64_t mtime = 0;
};

// The content of the current member, read block by block. A member not read
// to the end by the visitor is skipped by the reader.
class MemberStream : public InputStream {
 public:
  // Next block of content; empty at the end of the member.
  Result<Bytes> next() override = 0;
  // Reads the whole member into memory, refusing more than max_bytes.
  Result<ByteVector> read_all(std::uint64_t max_bytes);
  // Expected content size when known (0 otherwise); only a hint.
  virtual std::uint64_t size_hint() const { return 0; }
};

using Visitor = std::function<Result<void>(const Entry&, MemberStream&)>;

enum class Format { kAny, kTar, kCpio, kAr, kRaw };

enum class Mode {
  // Any anomaly is an error: odd paths, devices, duplicates, links leaving the
  // tree, sparse or truncated members, a corrupt tail, a cap reached.
  kStrict,
  // For showing an archive rather than installing it: anomalies are notes
  // (ArchiveStats::notes) and the member is still visited; paths are kept as
  // stored when they do not normalise; the root ("./") is visited; sparse
  // holes read as zeros. A read error inside a member is returned by its
  // MemberStream (the visitor records it and returns ok) and the reader goes on
  // with the next member when libarchive can; a corrupt or truncated archive
  // after the first member, or a size, ratio or member-count cap, ends the
  // listing with a note instead of an error. An archive whose first header
  // cannot be read, and any error the visitor returns, are still errors.
  // Adds libarchive's rpm, compress (.Z), lzip and uuencode filters.
  kLenient,
};

struct ReaderOptions {
  Limits limits;
  Mode mode = Mode::kStrict;
  // Shown in every error message ("linux.deb: data.tar.xz: ...").
  std::string name = "archive";
  Format format = Format::kAny;
  // Compressed size of the source, when known (else counted as it is read):
  // used for the compression-ratio cap.
  bool allow_duplicate_directories = true;
  // Decompressed bytes allowed beyond ratio * compressed before the ratio cap
  // applies (small inputs expand a lot legitimately).
  std::uint64_t ratio_slack = 16ull << 20;
  // Decode xz input with liblzma's multi-threaded decoder.
  bool threaded_xz = true;
};

struct ArchiveStats {
  std::uint64_t members = 0;
  std::uint64_t content_bytes = 0;     // decompressed member content read or skipped
  std::uint64_t compressed_bytes = 0;  // bytes pulled from the source
  std::vector<std::string> warnings;   // ARCHIVE_WARN messages and flagged entries
  std::vector<std::string> notes;      // lenient mode: anomalies and why the listing ended early
  std::string format_name;             // libarchive's, e.g. "GNU tar format"
  std::string filter_name;             // outermost filter, e.g. "xz"
};

// Visits every member of the archive read from `in`.
Result<ArchiveStats> read_archive(InputStream& in, const ReaderOptions& options, const Visitor& visitor);
Result<ArchiveStats> read_archive_file(const std::string& path, const ReaderOptions& options,
                                       const Visitor& visitor);
Result<ArchiveStats> read_archive_memory(Bytes data, const ReaderOptions& options, const Visitor& visitor);

// Decompresses a single compressed stream (gzip, bzip2, xz, lzma, zstd, lz4,
// or none) and passes its blocks to `sink`; stops early when sink returns
// false. Caps total size and ratio like the archive reader.
using BlockSink = std::function<Result<bool>(Bytes)>;
Result<std::uint64_t> decompress_stream(InputStream& in, const ReaderOptions& options, const BlockSink& sink);
// Convenience: decompresses fully into memory (at most max_bytes).
Result<ByteVector> decompress_bytes(Bytes data, std::uint64_t max_bytes, const std::string& name);

// Normalises an archive member path; errors name the problem
// ("absolute path", "'..' component", "empty path", "NUL in path").
// Returns "" for the archive root ("./", ".").
Result<std::string> normalise_member_path(std::string_view raw);

// True when a relative symlink target, resolved from the link's directory,
// stays inside the archive root.
bool symlink_stays_inside(std::string_view link_path, std::string_view target);

}  // namespace kmr::archive

#pragma once

#include <functional>
#include <string>
#include <vector>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"
#include "rebuilder/compare/comparator.h"

namespace kmr::compare {

// Streams an archive held in memory (tar, cpio, ar, RPM payload; gzip,
// bzip2, xz, lzma, zstd, lz4, compress, lzip, uuencode) through
// //rebuilder/archive:archive_reader in lenient mode, without extracting to
// disk: odd members are listed as stored, the reader's notes become the
// list's comments. Every file member is hashed; its content is kept while the
// retain budget lasts. Size, ratio and time limits stop decompression with a
// comment. Errors only when not even the first header can be read.
// With `hook`, every file member's full content is handed to the hook (which
// decides what to keep) instead of the retain budget.
// Content that libarchive hands out in one piece straight from `source`
// (an uncompressed member of an uncompressed archive, such as the members of
// a .deb's ar) is kept as a zero-copy slice of `source`, never copied.
using RetainHook = std::function<void(const Member& m, BlobPtr content)>;
Result<MemberList> list_archive(Context& ctx, const BlobPtr& source, const std::string& what,
                                const RetainHook* hook = nullptr);
// Second pass: loads the content of the listed members at `wanted`.
Result<void> fetch_archive(Context& ctx, const BlobPtr& source, const std::string& what, MemberList& list,
                           const std::vector<std::size_t>& wanted);
// Decompresses a single-stream compressed blob (gzip, xz, zstd, bzip2, lz4)
// into memory with the member-size and ratio caps.
Result<ByteVector> decompress_stream(Context& ctx, Bytes data, const std::string& what);
// True when `data` (possibly compressed) opens as an archive libarchive reads.
bool opens_as_archive(Bytes data);

}  // namespace kmr::compare

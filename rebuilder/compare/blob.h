#pragma once

#include <memory>
#include <string>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"

namespace kmr::compare {

// Immutable bytes of one side of a comparison: a memory-mapped file (top
// level, directory members) or a buffer (archive members). Never copied.
class Blob {
 public:
  virtual ~Blob() = default;
  virtual Bytes bytes() const = 0;
  // Says that bytes [offset, offset+length) of bytes() will not be read
  // again soon. A mapped file drops those pages from the process (they stay
  // in the page cache and are faulted back in if read again), so a pass over
  // a large input does not keep all of it resident. Content is unchanged.
  virtual void release(std::size_t /*offset*/, std::size_t /*length*/) const {}
};

using BlobPtr = std::shared_ptr<const Blob>;

BlobPtr blob_from_vector(ByteVector data);
// A zero-copy window [offset, offset+length) of `parent` (caller checked the range).
BlobPtr blob_slice(BlobPtr parent, std::size_t offset, std::size_t length);
// Maps a regular file read-only (empty files need no mapping).
Result<BlobPtr> blob_from_file(const std::string& path);

// SHA-256 (hex) of the whole blob, read front to back, releasing what was
// hashed.
std::string blob_sha256_hex(const Blob& blob);

}  // namespace kmr::compare

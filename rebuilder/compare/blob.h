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
};

using BlobPtr = std::shared_ptr<const Blob>;

BlobPtr blob_from_vector(ByteVector data);
// A zero-copy window [offset, offset+length) of `parent` (caller checked the range).
BlobPtr blob_slice(BlobPtr parent, std::size_t offset, std::size_t length);
// Maps a regular file read-only (empty files need no mapping).
Result<BlobPtr> blob_from_file(const std::string& path);

}  // namespace kmr::compare

#pragma once

// A file written in pieces through SHA-256 and published atomically: the
// bytes go to a temporary file beside the destination, which is fsynced and
// renamed into place by commit(); without commit() it is removed.

#include <cstdint>
#include <string>

#include "rebuilder/base/result.h"
#include "rebuilder/base/sha256.h"

namespace kmr::net {

class HashedFile {
 public:
  static Result<HashedFile> create(const std::string& path, int mode = 0644);
  HashedFile(HashedFile&& other) noexcept;
  HashedFile& operator=(HashedFile&&) = delete;
  HashedFile(const HashedFile&) = delete;
  ~HashedFile();

  Result<void> write(Bytes data);
  std::uint64_t size() const { return size_; }
  // Digest of everything written; ends writing.
  Digest256 finish();
  // Renames the (finished) temporary file to the destination.
  Result<void> commit();

 private:
  HashedFile(std::string path, std::string tmp, int fd) : path_(std::move(path)), tmp_(std::move(tmp)), fd_(fd) {}

  std::string path_;
  std::string tmp_;
  int fd_ = -1;
  Sha256 sha_;
  std::uint64_t size_ = 0;
  bool finished_ = false;
  bool committed_ = false;
};

}  // namespace kmr::net

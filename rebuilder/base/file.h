#pragma once

#include <cstdint>
#include <string>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"

namespace kmr {

// Reads a whole file, refusing files larger than max_bytes.
Result<ByteVector> read_file(const std::string& path, std::uint64_t max_bytes);
Result<std::string> read_text_file(const std::string& path, std::uint64_t max_bytes);
// Writes all of `data` to `fd` (retrying short writes and EINTR); `what`
// names the file in errors.
Result<void> write_all(int fd, Bytes data, const std::string& what);
// Writes via a temporary file in the same directory and rename(), after
// fsync, so readers never see a partial file.
Result<void> write_file_atomic(const std::string& path, Bytes data, int mode = 0644);

// A temporary directory removed (recursively) on destruction.
class TempDir {
 public:
  static Result<TempDir> create(const std::string& prefix = "kmr");
  TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string p) : path_(std::move(p)) {}
  std::string path_;
};

}  // namespace kmr

#include "rebuilder/net/hashed_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "rebuilder/base/file.h"

namespace kmr::net {

Result<HashedFile> HashedFile::create(const std::string& path, int mode) {
  std::string tmp = path + ".part-XXXXXX";
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return io_error(path + ": cannot create a temporary file beside it: " + std::strerror(errno));
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) {
    int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return io_error(tmp + ": chmod: " + std::strerror(e));
  }
  return HashedFile(path, std::move(tmp), fd);
}

HashedFile::HashedFile(HashedFile&& other) noexcept
    : path_(std::move(other.path_)),
      tmp_(std::move(other.tmp_)),
      fd_(other.fd_),
      sha_(std::move(other.sha_)),
      size_(other.size_),
      finished_(other.finished_),
      committed_(other.committed_) {
  other.fd_ = -1;
  other.tmp_.clear();
}

HashedFile::~HashedFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
}

Result<void> HashedFile::write(Bytes data) {
  KMR_CHECK(!finished_ && fd_ >= 0);
  KMR_TRY(write_all(fd_, data, tmp_));
  sha_.update(data);
  size_ += data.size();
  return ok();
}

Digest256 HashedFile::finish() {
  KMR_CHECK(!finished_);
  finished_ = true;
  return sha_.finish();
}

Result<void> HashedFile::commit() {
  KMR_CHECK(finished_ && !committed_ && fd_ >= 0);
  int rc = ::fsync(fd_);
  int e = errno;
  ::close(fd_);
  fd_ = -1;
  if (rc != 0) return io_error(tmp_ + ": fsync: " + std::strerror(e));
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) return io_error(path_ + ": rename: " + std::strerror(errno));
  committed_ = true;
  return ok();
}

}  // namespace kmr::net

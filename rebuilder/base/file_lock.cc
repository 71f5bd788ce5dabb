#include "rebuilder/base/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kmr {

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<FileLock>> lock_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return io_error("cannot open " + path + ": " + std::strerror(errno));
  while (::flock(fd, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    const int e = errno;
    ::close(fd);
    return io_error("cannot lock " + path + ": " + std::strerror(e));
  }
  return std::make_unique<FileLock>(fd);
}

}  // namespace kmr

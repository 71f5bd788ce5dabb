#include "rebuilder/base/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace kmr {

Result<ByteVector> read_file(const std::string& path, std::uint64_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return io_error(path + ": stat: " + std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return io_error(path + ": is a directory");
  }
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    ::close(fd);
    return limit_exceeded(path + ": file is " + std::to_string(st.st_size) + " bytes, limit " +
                          std::to_string(max_bytes));
  }
  ByteVector out;
  out.reserve(static_cast<std::size_t>(st.st_size));
  std::uint8_t buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      return io_error(path + ": read: " + std::strerror(e));
    }
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > max_bytes) {
      ::close(fd);
      return limit_exceeded(path + ": larger than limit " + std::to_string(max_bytes));
    }
    out.insert(out.end(), buf, buf + n);
  }
  ::close(fd);
  return out;
}

Result<std::string> read_text_file(const std::string& path, std::uint64_t max_bytes) {
  KMR_ASSIGN_OR_RETURN(ByteVector data, read_file(path, max_bytes));
  return std::string(data.begin(), data.end());
}

Result<void> write_all(int fd, Bytes data, const std::string& what) {
  std::size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(what + ": write: " + std::strerror(errno));
    }
    off += static_cast<std::size_t>(n);
  }
  return ok();
}

Result<void> write_file_atomic(const std::string& path, Bytes data, int mode) {
  // Never rename over something that is not a regular file (/dev/null, a
  // pipe, /dev/stdout): write to it in place instead.
  struct stat existing;
  if (::stat(path.c_str(), &existing) == 0 && !S_ISREG(existing.st_mode)) {
    if (S_ISDIR(existing.st_mode)) return io_error(path + ": is a directory");
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return io_error(path + ": cannot open: " + std::strerror(errno));
    auto written = write_all(fd, data, path);
    ::close(fd);
    return written;
  }
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return io_error(tmp + ": cannot create: " + std::strerror(errno));
  if (auto written = write_all(fd, data, tmp); !written) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return written;
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return io_error(tmp + ": fsync/close failed");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return io_error(path + ": rename: " + std::strerror(e));
  }
  return ok();
}

Result<TempDir> TempDir::create(const std::string& prefix) {
  const char* base = std::getenv("TEST_TMPDIR");
  if (base == nullptr || *base == '\0') base = std::getenv("TMPDIR");
  if (base == nullptr || *base == '\0') base = "/tmp";
  std::string templ = std::string(base) + "/" + prefix + ".XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return io_error(templ + ": mkdtemp: " + std::strerror(errno));
  return TempDir(templ);
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace kmr

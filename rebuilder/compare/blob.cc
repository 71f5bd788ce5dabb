#include "rebuilder/compare/blob.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kmr::compare {

namespace {

class VectorBlob final : public Blob {
 public:
  explicit VectorBlob(ByteVector v) : v_(std::move(v)) {}
  Bytes bytes() const override { return Bytes(v_.data(), v_.size()); }

 private:
  ByteVector v_;
};

class MappedBlob final : public Blob {
 public:
  MappedBlob(void* addr, std::size_t size) : addr_(addr), size_(size) {}
  ~MappedBlob() override {
    if (addr_ != nullptr) munmap(addr_, size_);
  }
  MappedBlob(const MappedBlob&) = delete;
  MappedBlob& operator=(const MappedBlob&) = delete;
  Bytes bytes() const override { return Bytes(static_cast<const std::uint8_t*>(addr_), size_); }

 private:
  void* addr_;
  std::size_t size_;
};

class SliceBlob final : public Blob {
 public:
  SliceBlob(BlobPtr parent, std::size_t offset, std::size_t length)
      : parent_(std::move(parent)), offset_(offset), length_(length) {}
  Bytes bytes() const override { return parent_->bytes().subspan(offset_, length_); }

 private:
  BlobPtr parent_;
  std::size_t offset_;
  std::size_t length_;
};

}  // namespace

BlobPtr blob_slice(BlobPtr parent, std::size_t offset, std::size_t length) {
  return std::make_shared<SliceBlob>(std::move(parent), offset, length);
}

BlobPtr blob_from_vector(ByteVector data) { return std::make_shared<VectorBlob>(std::move(data)); }

Result<BlobPtr> blob_from_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return io_error(path + ": cannot stat: " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return io_error(path + ": not a regular file");
  }
  std::size_t size = static_cast<std::size_t>(st.st_size);
  void* addr = nullptr;
  if (size > 0) {
    addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      return io_error(path + ": cannot map: " + std::strerror(e));
    }
  }
  ::close(fd);
  return BlobPtr(std::make_shared<MappedBlob>(addr, size));
}

}  // namespace kmr::compare

#include "rebuilder/compare/blob.h"

#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"

#include <algorithm>
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
  void release(std::size_t offset, std::size_t length) const override {
    // Whole pages inside the range only: a page shared with bytes still in
    // use stays.
    static const std::size_t kPage = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    if (addr_ == nullptr || offset >= size_) return;
    length = std::min(length, size_ - offset);
    const std::size_t begin = (offset + kPage - 1) / kPage * kPage;
    const std::size_t end = offset + length == size_ ? size_ : (offset + length) / kPage * kPage;
    if (end <= begin) return;
    // A private read-only file mapping has no dirty pages: dropping them
    // loses nothing.
    ::madvise(static_cast<std::uint8_t*>(addr_) + begin, end - begin, MADV_DONTNEED);
  }

 private:
  void* addr_;
  std::size_t size_;
};

class SliceBlob final : public Blob {
 public:
  SliceBlob(BlobPtr parent, std::size_t offset, std::size_t length)
      : parent_(std::move(parent)), offset_(offset), length_(length) {}
  Bytes bytes() const override { return parent_->bytes().subspan(offset_, length_); }
  void release(std::size_t offset, std::size_t length) const override {
    if (offset >= length_) return;
    parent_->release(offset_ + offset, std::min(length, length_ - offset));
  }

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

std::string blob_sha256_hex(const Blob& blob) {
  constexpr std::size_t kStep = 4 << 20;
  const Bytes all = blob.bytes();
  Sha256 h;
  for (std::size_t off = 0; off < all.size(); off += kStep) {
    const std::size_t n = std::min(kStep, all.size() - off);
    h.update(all.subspan(off, n));
    blob.release(off, n);
  }
  return to_hex(h.finish());
}

}  // namespace kmr::compare

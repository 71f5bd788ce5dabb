#include "rebuilder/base/byte_reader.h"

#include <cstring>

#include "rebuilder/base/checked_math.h"

namespace kmr {

bool ByteReader::need(std::uint64_t n, std::string_view what) {
  if (failed_) return false;
  if (!range_fits(pos_, n, data_.size())) {
    fail("truncated: " + std::string(what) + " needs " + std::to_string(n) + " bytes, " +
         std::to_string(data_.size() - pos_) + " left");
    return false;
  }
  return true;
}

void ByteReader::fail(std::string message) {
  if (failed_) return;
  failed_ = true;
  error_ = std::move(message) + " at offset " + std::to_string(pos_);
}

template <typename T, bool kLittle>
T ByteReader::read_int() {
  if (!need(sizeof(T), "integer")) return 0;
  T v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    const std::size_t idx = kLittle ? sizeof(T) - 1 - i : i;
    v = static_cast<T>((v << 8) | data_[pos_ + idx]);
  }
  pos_ += sizeof(T);
  return v;
}

std::uint8_t ByteReader::u8() {
  if (!need(1, "u8")) return 0;
  return data_[pos_++];
}
std::uint16_t ByteReader::u16le() { return read_int<std::uint16_t, true>(); }
std::uint16_t ByteReader::u16be() { return read_int<std::uint16_t, false>(); }
std::uint32_t ByteReader::u32le() { return read_int<std::uint32_t, true>(); }
std::uint32_t ByteReader::u32be() { return read_int<std::uint32_t, false>(); }
std::uint64_t ByteReader::u64le() { return read_int<std::uint64_t, true>(); }
std::uint64_t ByteReader::u64be() { return read_int<std::uint64_t, false>(); }

Bytes ByteReader::bytes(std::uint64_t n) {
  if (!need(n, "byte run")) return {};
  Bytes out = data_.subspan(pos_, n);
  pos_ += n;
  return out;
}

std::string_view ByteReader::cstr(std::size_t max_len) {
  if (failed_) return {};
  const std::uint64_t avail = data_.size() - pos_;
  const std::uint64_t scan = avail < max_len + 1 ? avail : max_len + 1;
  const void* nul = std::memchr(data_.data() + pos_, 0, scan);
  if (nul == nullptr) {
    fail(scan == avail ? "unterminated string" : "string longer than " + std::to_string(max_len));
    return {};
  }
  const auto len = static_cast<std::size_t>(static_cast<const std::uint8_t*>(nul) - (data_.data() + pos_));
  std::string_view out(reinterpret_cast<const char*>(data_.data() + pos_), len);
  pos_ += len + 1;
  return out;
}

void ByteReader::skip(std::uint64_t n) {
  if (need(n, "skip")) pos_ += n;
}

void ByteReader::align(std::uint64_t alignment) {
  if (failed_ || alignment <= 1) return;
  const std::uint64_t rem = pos_ % alignment;
  if (rem != 0) skip(alignment - rem);
}

void ByteReader::seek(std::uint64_t offset) {
  if (failed_) return;
  if (offset > data_.size()) {
    fail("seek beyond end (" + std::to_string(offset) + " > " + std::to_string(data_.size()) + ")");
    return;
  }
  pos_ = offset;
}

Result<Bytes> ByteReader::sub(std::uint64_t offset, std::uint64_t length, std::string_view region) const {
  if (!range_fits(offset, length, data_.size())) {
    return malformed(what_ + ": " + std::string(region) + " out of bounds (offset " + std::to_string(offset) +
                     ", length " + std::to_string(length) + ", size " + std::to_string(data_.size()) + ")");
  }
  return data_.subspan(offset, length);
}

Result<void> ByteReader::finish() const {
  if (!failed_) return kmr::ok();
  return malformed(what_ + ": " + error_);
}

}  // namespace kmr

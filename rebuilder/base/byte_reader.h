#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"

namespace kmr {

// A bounds-checked cursor over untrusted bytes. Every read checks the
// remaining length first; the first failure is sticky: later reads return
// zero/empty and finish() reports the first error with its offset. Multi-byte
// integers are assembled byte by byte in an explicit endianness.
class ByteReader {
 public:
  explicit ByteReader(Bytes data, std::string what = "input") : data_(data), what_(std::move(what)) {}

  std::uint8_t u8();
  std::uint16_t u16le();
  std::uint16_t u16be();
  std::uint32_t u32le();
  std::uint32_t u32be();
  std::uint64_t u64le();
  std::uint64_t u64be();
  // Endianness chosen at run time (ELF, for example).
  std::uint16_t u16(bool little) { return little ? u16le() : u16be(); }
  std::uint32_t u32(bool little) { return little ? u32le() : u32be(); }
  std::uint64_t u64(bool little) { return little ? u64le() : u64be(); }

  // The next n bytes (empty span on failure).
  Bytes bytes(std::uint64_t n);
  // A NUL-terminated string of at most max_len bytes (NUL consumed, not returned).
  std::string_view cstr(std::size_t max_len);
  void skip(std::uint64_t n);
  // Advances to the next multiple of `alignment` (relative to the start).
  void align(std::uint64_t alignment);
  void seek(std::uint64_t offset);

  // A strict sub-view [offset, offset+length) of the whole input, or an error
  // naming the region ("region out of bounds").
  Result<Bytes> sub(std::uint64_t offset, std::uint64_t length, std::string_view region) const;

  std::uint64_t offset() const { return pos_; }
  std::uint64_t size() const { return data_.size(); }
  std::uint64_t remaining() const { return failed_ ? 0 : data_.size() - pos_; }
  bool ok() const { return !failed_; }
  Bytes rest() const { return failed_ ? Bytes() : data_.subspan(pos_); }

  // Records an error (first one wins), e.g. for a semantic check.
  void fail(std::string message);
  // ok(), or the first error: "<what>: <message> at offset N".
  Result<void> finish() const;

 private:
  bool need(std::uint64_t n, std::string_view what);
  template <typename T, bool kLittle>
  T read_int();

  Bytes data_;
  std::string what_;
  std::uint64_t pos_ = 0;
  bool failed_ = false;
  std::string error_;
};

}  // namespace kmr

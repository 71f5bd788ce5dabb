#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"

namespace kmr {

using Digest256 = std::array<std::uint8_t, 32>;

// Incremental SHA-256 through OpenSSL's EVP interface (uses the CPU's SHA
// extensions when present).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(Bytes data);
  void update(std::uint8_t byte) { update(Bytes(&byte, 1)); }
  Digest256 finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

Digest256 sha256(Bytes data);
std::string sha256_hex(Bytes data);
// Streams a file through SHA-256 (never loads it whole).
Result<Digest256> sha256_file(const std::string& path);

}  // namespace kmr

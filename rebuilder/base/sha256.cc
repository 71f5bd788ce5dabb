#include "rebuilder/base/sha256.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include "rebuilder/base/hex.h"

namespace kmr {

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  KMR_CHECK(impl_->ctx != nullptr);
  KMR_CHECK(EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) == 1);
}

Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(Bytes data) {
  if (!data.empty()) KMR_CHECK(EVP_DigestUpdate(impl_->ctx, data.data(), data.size()) == 1);
}

Digest256 Sha256::finish() {
  Digest256 out{};
  unsigned int len = 0;
  KMR_CHECK(EVP_DigestFinal_ex(impl_->ctx, out.data(), &len) == 1 && len == out.size());
  KMR_CHECK(EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) == 1);
  return out;
}

Digest256 sha256(Bytes data) {
  Sha256 h;
  h.update(data);
  return h.finish();
}

std::string sha256_hex(Bytes data) {
  const Digest256 d = sha256(data);
  return to_hex(d);
}

Result<Digest256> sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error(path + ": cannot open: " + std::strerror(errno));
  Sha256 h;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto got = in.gcount();
    if (got > 0) h.update(Bytes(reinterpret_cast<const std::uint8_t*>(buf.data()), static_cast<std::size_t>(got)));
  }
  if (in.bad()) return io_error(path + ": read error");
  return h.finish();
}

}  // namespace kmr

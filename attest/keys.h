#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"

namespace kmr::attest {

// An Ed25519 key through OpenSSL 3 (EVP_PKEY). Holds either a private key
// (which can sign and verify) or only a public key.
class Ed25519Key {
 public:
  static Result<Ed25519Key> generate();
  // RFC 8032 32-byte seed / public key.
  static Result<Ed25519Key> from_seed(Bytes seed32);
  static Result<Ed25519Key> from_raw_public(Bytes pub32);
  // PEM: "PRIVATE KEY" (PKCS#8) or "PUBLIC KEY" (SPKI). The public loader
  // also accepts the 46-byte SPKI with NULL parameters written by rebuilderd
  // / in-toto-rs (OpenSSL 3 refuses it): the OID is checked and the last 32
  // bytes are taken.
  static Result<Ed25519Key> from_pem(std::string_view pem);
  // SPKI DER (44-byte RFC 8410 form or the 46-byte NULL-params form).
  static Result<Ed25519Key> from_spki_der(Bytes der);
  // Reads a PEM file (private or public).
  static Result<Ed25519Key> load(const std::string& path);

  Ed25519Key(Ed25519Key&&) noexcept;
  Ed25519Key& operator=(Ed25519Key&&) noexcept;
  ~Ed25519Key();
  Ed25519Key(const Ed25519Key&) = delete;
  Ed25519Key& operator=(const Ed25519Key&) = delete;

  bool has_private() const { return has_private_; }
  // 32 raw public-key bytes.
  ByteVector raw_public() const;
  // RFC 8410 SPKI DER (44 bytes).
  ByteVector spki_der() const;
  std::string public_pem() const;
  Result<std::string> private_pem() const;
  // Lowercase hex SHA-256 of the SPKI DER: the DSSE keyid kmr publishes.
  std::string keyid() const;
  // A public-only copy.
  Ed25519Key public_only() const;

  // Pure Ed25519 (EVP_DigestSign with a NULL digest), 64 bytes.
  Result<ByteVector> sign(Bytes message) const;
  bool verify(Bytes message, Bytes signature) const;

 private:
  Ed25519Key(void* pkey, bool has_private) : pkey_(pkey), has_private_(has_private) {}
  void* pkey_ = nullptr;  // EVP_PKEY*
  bool has_private_ = false;
};

// Writes the private key as PKCS#8 PEM with mode 0600 (refuses to overwrite
// an existing file) and the public key next to it as PATH.pub (0644).
Result<void> save_private_key(const Ed25519Key& key, const std::string& path);
// Fails if a private key file is readable by group or others.
Result<void> check_private_key_permissions(const std::string& path);

// Published keys with validity periods (rotation: the current key plus
// previous ones). Times are RFC 3339 UTC strings; an empty not_after means
// "still valid".
struct PublishedKey {
  std::string keyid;        // hex SHA-256 of SPKI DER
  std::string public_pem;   // SPKI PEM
  std::string vkey;         // signed-note verifier key (log key), may be empty
  std::string not_before;
  std::string not_after;
  bool current = false;
};

class KeySet {
 public:
  void add(PublishedKey key) { keys_.push_back(std::move(key)); }
  const std::vector<PublishedKey>& keys() const { return keys_; }
  // The key valid at `time` (RFC 3339 UTC; lexicographic compare is valid for
  // the fixed "YYYY-MM-DDTHH:MM:SSZ" form).
  std::optional<PublishedKey> valid_at(std::string_view keyid, std::string_view time) const;
  // {"keys":[{"keyid","public_key_pem","vkey","not_before","not_after","current"}]}
  std::string to_json() const;
  static Result<KeySet> from_json(std::string_view json);

 private:
  std::vector<PublishedKey> keys_;
};

// "YYYY-MM-DDTHH:MM:SSZ" for now (UTC).
std::string now_rfc3339();

}  // namespace kmr::attest

#pragma once

// Trust settings of the HTTP client.

#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/result.h"
#include "rebuilder/base/sha256.h"

namespace kmr::net {

// A pinned certificate: SHA-256 of the DER SubjectPublicKeyInfo (matches the
// leaf or any CA of the verified chain, so it survives leaf renewals with the
// same key) or of the whole DER leaf certificate.
struct Pin {
  enum class Kind { kSpki, kCert };
  Kind kind = Kind::kSpki;
  Digest256 sha256{};

  // "spki-sha256:<64 hex>" or "cert-sha256:<64 hex>".
  static Result<Pin> parse(std::string_view text);
  std::string str() const;
};

struct TlsOptions {
  // Trust the system store (OpenSSL's default paths; SSL_CERT_FILE and
  // SSL_CERT_DIR override them as usual).
  bool system_trust = true;
  // Extra trusted CA certificates (PEM), in addition to the system store.
  std::string ca_file;
  // When not empty, the verified peer must match one pin (in addition to the
  // normal verification, never instead of it).
  std::vector<Pin> pins;
};

}  // namespace kmr::net

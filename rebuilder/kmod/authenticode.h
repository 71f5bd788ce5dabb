#pragma once

// The Authenticode signature of a PE image (an x86 bzImage with its EFI stub,
// an arm64 EFI Image), as Secure Boot checks it: the PE image hash (headers
// without the checksum and the certificate-table entry, then everything up
// to the certificate table) must equal the digest in the signature's
// SpcIndirectDataContent, the PKCS#7 signature over that content must verify
// with the signer's certificate, and the signer must chain to a trusted CA.

#include <cstdint>
#include <optional>
#include <string>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"
#include "rebuilder/kmod/module_sig.h"

namespace kmr::kmod {

struct PeLayout {
  std::uint64_t checksum_offset = 0;   // 4 bytes
  std::uint64_t cert_dir_offset = 0;   // 8 bytes: data directory entry 4
  std::uint64_t cert_table_offset = 0; // 0 when unsigned
  std::uint64_t cert_table_size = 0;
};

// Parses the PE headers (bounds-checked); nullopt when `image` is no PE file.
Result<std::optional<PeLayout>> parse_pe_layout(Bytes image, const std::string& what);

struct AuthenticodeInfo {
  std::string signer;          // subject of the signing certificate
  std::string signer_issuer;
  std::string digest;          // e.g. "sha256"
  bool digest_matches = false; // image hash == signed digest
  bool signature_valid = false;
  bool chain_trusted = false;  // signer chains to a certificate of `trust`
  bool verified = false;       // all three
  std::string reason;          // why not verified
  PeLayout layout;
};

// nullopt when the image is not a PE file or carries no signature. `trust`
// holds CA (or signer) certificates; time validity is not checked, as
// firmware does not check it either.
Result<std::optional<AuthenticodeInfo>> check_authenticode(Bytes image, const CertificateSet& trust,
                                                           const std::string& what);

}  // namespace kmr::kmod

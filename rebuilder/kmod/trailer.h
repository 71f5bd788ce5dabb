#pragma once

// Parses the trailer appended to a kernel module held in memory:
// none, PKCS#7 (id_type 2; signer and key id read from the CMS blob with
// OpenSSL) or a Merkle proof (id_type 3).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"
#include "rebuilder/kmod/merkle.h"
#include "rebuilder/kmod/trailer_format.h"

namespace kmr::kmod {

enum class TrailerKind { kNone, kPkcs7, kMerkle };
// "none", "pkcs7", "merkle".
std::string_view trailer_kind_name(TrailerKind kind);

struct Pkcs7Info {
  std::string signer;      // issuer CN (or the whole issuer name)
  std::string key_id;      // serial number or subject key identifier, hex
  std::string digest;      // e.g. "sha512"
};

struct ModuleTrailer {
  TrailerKind kind = TrailerKind::kNone;
  std::uint64_t content_length = 0;  // the module without its trailer
  std::uint64_t trailer_length = 0;  // blob + struct + marker
  ModuleSignature sig;
  Bytes blob;                        // view into the input
  std::optional<MerkleProof> proof;  // kMerkle
  std::optional<Pkcs7Info> pkcs7;    // kPkcs7
};

// Largest trailer we accept (a PKCS#7 blob with a certificate chain stays
// far below it). Streaming readers hold back this many bytes.
inline constexpr std::uint64_t kMaxTrailerSize = 64 * 1024;

// Parses the end of `module`. `what` names the file in errors. Rejects a
// truncated trailer, sig_len beyond the file, unknown id_type, nonzero
// reserved fields and a Merkle blob whose size is not 4 + 32 * levels.
Result<ModuleTrailer> parse_trailer(Bytes module, std::string_view what);

// Signer, key id and digest of a DER CMS/PKCS#7 SignedData blob.
Result<Pkcs7Info> parse_pkcs7_signature(Bytes der);

}  // namespace kmr::kmod

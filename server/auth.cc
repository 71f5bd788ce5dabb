#include "server/auth.h"

#include <openssl/rand.h>

#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"

namespace kmr::server {

namespace {
Bytes as_bytes(std::string_view s) { return Bytes(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); }
}  // namespace

std::string signing_message(std::string_view method, std::string_view target, std::string_view body,
                            std::int64_t timestamp, std::string_view nonce) {
  std::string m(kSigDomain);
  m += '\n';
  m += method;
  m += '\n';
  m += target;
  m += '\n';
  m += sha256_hex(as_bytes(body));
  m += '\n';
  m += std::to_string(timestamp);
  m += '\n';
  m += nonce;
  return m;
}

Result<SignedHeaders> sign_request(const attest::Ed25519Key& key, std::string_view method, std::string_view target,
                                   std::string_view body, std::int64_t timestamp) {
  unsigned char n[16];
  if (RAND_bytes(n, sizeof n) != 1) return internal_error("RAND_bytes failed");
  SignedHeaders h;
  h.nonce = to_hex(Bytes(n, sizeof n));
  h.timestamp = std::to_string(timestamp);
  h.key = to_hex(key.raw_public());
  std::string msg = signing_message(method, target, body, timestamp, h.nonce);
  KMR_ASSIGN_OR_RETURN(ByteVector sig, key.sign(as_bytes(msg)));
  h.signature = to_hex(sig);
  return h;
}

Result<void> verify_signature(const std::string& public_key_hex, std::string_view method, std::string_view target,
                              std::string_view body, std::int64_t timestamp, std::string_view nonce,
                              std::string_view signature_hex) {
  auto pub = from_hex(public_key_hex);
  if (!pub || pub->size() != 32) return malformed("public key is not 64 hex digits");
  auto sig = from_hex(signature_hex);
  if (!sig || sig->size() != 64) return malformed("signature is not 128 hex digits");
  KMR_ASSIGN_OR_RETURN(auto key, attest::Ed25519Key::from_raw_public(*pub));
  std::string msg = signing_message(method, target, body, timestamp, nonce);
  if (!key.verify(as_bytes(msg), *sig)) return Error(ErrorCode::kVerificationFailed, "signature does not verify");
  return ok();
}

}  // namespace kmr::server

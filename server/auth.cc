#include "server/auth.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cctype>

#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"

namespace kmr::server {

namespace {
Bytes as_bytes(std::string_view s) { return Bytes(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); }

// Lines joined by '\n' after the domain; no field may contain a newline (checked by callers
// for untrusted fields: the target has no raw newline, the nonce is hex, the origin a URL).
std::string join_lines(std::string_view domain, std::initializer_list<std::string_view> fields) {
  std::string m(domain);
  for (std::string_view f : fields) {
    m += '\n';
    m += f;
  }
  return m;
}
}  // namespace

bool is_valid_nonce(std::string_view nonce) {
  return nonce.size() >= 16 && nonce.size() <= 64 &&
         std::all_of(nonce.begin(), nonce.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

std::string signing_message(std::string_view origin, std::string_view method, std::string_view target,
                            std::string_view body, std::int64_t timestamp, std::string_view nonce) {
  const std::string digest = sha256_hex(as_bytes(body)), ts = std::to_string(timestamp);
  return join_lines(kSigDomain, {origin, method, target, digest, ts, nonce});
}

Result<SignedHeaders> sign_request(const attest::Ed25519Key& key, std::string_view origin, std::string_view method,
                                   std::string_view target, std::string_view body, std::int64_t timestamp) {
  unsigned char n[16];
  if (RAND_bytes(n, sizeof n) != 1) return internal_error("RAND_bytes failed");
  SignedHeaders h;
  h.nonce = to_hex(Bytes(n, sizeof n));
  h.origin = std::string(origin);
  h.timestamp = std::to_string(timestamp);
  h.key = to_hex(key.raw_public());
  std::string msg = signing_message(origin, method, target, body, timestamp, h.nonce);
  KMR_ASSIGN_OR_RETURN(ByteVector sig, key.sign(as_bytes(msg)));
  h.signature = to_hex(sig);
  return h;
}

Result<void> verify_signature(const std::string& public_key_hex, std::string_view origin, std::string_view method,
                              std::string_view target, std::string_view body, std::int64_t timestamp,
                              std::string_view nonce, std::string_view signature_hex) {
  auto pub = from_hex(public_key_hex);
  if (!pub || pub->size() != 32) return malformed("public key is not 64 hex digits");
  auto sig = from_hex(signature_hex);
  if (!sig || sig->size() != 64) return malformed("signature is not 128 hex digits");
  KMR_ASSIGN_OR_RETURN(auto key, attest::Ed25519Key::from_raw_public(*pub));
  std::string msg = signing_message(origin, method, target, body, timestamp, nonce);
  if (!key.verify(as_bytes(msg), *sig)) return Error(ErrorCode::kVerificationFailed, "signature does not verify");
  return ok();
}

std::string reply_message(std::string_view origin, std::string_view request_nonce, int status, std::string_view body) {
  const std::string digest = sha256_hex(as_bytes(body)), st = std::to_string(status);
  return join_lines(kReplyDomain, {origin, request_nonce, st, digest});
}

Result<std::string> sign_reply(const attest::Ed25519Key& server_key, std::string_view origin,
                               std::string_view request_nonce, int status, std::string_view body) {
  KMR_ASSIGN_OR_RETURN(ByteVector sig, server_key.sign(as_bytes(reply_message(origin, request_nonce, status, body))));
  return to_hex(sig);
}

Result<void> verify_reply(const attest::Ed25519Key& server_key, std::string_view origin, std::string_view request_nonce,
                          int status, std::string_view body, std::string_view signature_hex) {
  if (signature_hex.empty()) return Error(ErrorCode::kVerificationFailed, "reply is not signed by kmrd");
  auto sig = from_hex(signature_hex);
  if (!sig || sig->size() != 64) return Error(ErrorCode::kVerificationFailed, "reply signature is not 128 hex digits");
  if (!server_key.verify(as_bytes(reply_message(origin, request_nonce, status, body)), *sig))
    return Error(ErrorCode::kVerificationFailed, "reply signature does not verify with the pinned kmrd key");
  return ok();
}

}  // namespace kmr::server

#pragma once

// Worker request signatures and kmrd reply signatures.
//
// Every worker request carries
//   X-Kmr-Key:        hex of the worker's raw Ed25519 public key (registered by an admin)
//   X-Kmr-Origin:     kmrd's origin as the worker addresses it (its configured server URL)
//   X-Kmr-Timestamp:  unix seconds
//   X-Kmr-Nonce:      32 hex characters, never reused
//   X-Kmr-Signature:  hex Ed25519 signature over signing_message(...)
// The message binds kmrd's origin, method, target (path and query), the body's sha256,
// the timestamp and the nonce, so a captured request cannot be replayed, retargeted,
// sent to another kmrd or given another body. This is proof of possession (rebuilderd
// sends the public key as a bearer token).
//
// Every reply kmrd sends to a worker request carries
//   X-Kmr-Reply-Signature: hex Ed25519 signature by kmrd's key over reply_message(...)
// binding kmrd's origin, the request's nonce, the status and the body's sha256. The
// worker pins kmrd's public key and drops replies that do not verify, so a network
// attacker cannot hand it another job, artifact URL or hash, even over plain HTTP.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "attest/keys.h"
#include "rebuilder/base/result.h"

namespace kmr::server {

inline constexpr std::string_view kSigDomain = "kmr-worker-request-v2";
inline constexpr std::string_view kReplyDomain = "kmr-server-reply-v1";

std::string signing_message(std::string_view origin, std::string_view method, std::string_view target,
                            std::string_view body, std::int64_t timestamp, std::string_view nonce);

struct SignedHeaders {
  std::string key, origin, timestamp, nonce, signature;
  std::vector<std::pair<std::string, std::string>> as_list() const {
    return {{"X-Kmr-Key", key},         {"X-Kmr-Origin", origin}, {"X-Kmr-Timestamp", timestamp},
            {"X-Kmr-Nonce", nonce},     {"X-Kmr-Signature", signature}};
  }
};

Result<SignedHeaders> sign_request(const attest::Ed25519Key& key, std::string_view origin, std::string_view method,
                                   std::string_view target, std::string_view body, std::int64_t timestamp);

// Checks the signature of the given fields with the hex public key (format checks included).
Result<void> verify_signature(const std::string& public_key_hex, std::string_view origin, std::string_view method,
                              std::string_view target, std::string_view body, std::int64_t timestamp,
                              std::string_view nonce, std::string_view signature_hex);

// kmrd's reply to a worker request.
std::string reply_message(std::string_view origin, std::string_view request_nonce, int status, std::string_view body);
Result<std::string> sign_reply(const attest::Ed25519Key& server_key, std::string_view origin,
                               std::string_view request_nonce, int status, std::string_view body);
Result<void> verify_reply(const attest::Ed25519Key& server_key, std::string_view origin, std::string_view request_nonce,
                          int status, std::string_view body, std::string_view signature_hex);

// A well-formed request nonce: 16..64 hex digits.
bool is_valid_nonce(std::string_view nonce);

}  // namespace kmr::server

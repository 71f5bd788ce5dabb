#pragma once

// Worker request signatures. Every worker request carries
//   X-Kmr-Key:        hex of the worker's raw Ed25519 public key (registered by an admin)
//   X-Kmr-Timestamp:  unix seconds
//   X-Kmr-Nonce:      32 hex characters, never reused
//   X-Kmr-Signature:  hex Ed25519 signature over signing_message(...)
// The message binds method, target (path and query), the body's sha256, the
// timestamp and the nonce, so a captured request cannot be replayed, retargeted
// or given another body. This is proof of possession (rebuilderd sends the public
// key as a bearer token).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "attest/keys.h"
#include "rebuilder/base/result.h"

namespace kmr::server {

inline constexpr std::string_view kSigDomain = "kmr-worker-request-v1";

std::string signing_message(std::string_view method, std::string_view target, std::string_view body,
                            std::int64_t timestamp, std::string_view nonce);

struct SignedHeaders {
  std::string key, timestamp, nonce, signature;
  std::vector<std::pair<std::string, std::string>> as_list() const {
    return {{"X-Kmr-Key", key}, {"X-Kmr-Timestamp", timestamp}, {"X-Kmr-Nonce", nonce}, {"X-Kmr-Signature", signature}};
  }
};

Result<SignedHeaders> sign_request(const attest::Ed25519Key& key, std::string_view method, std::string_view target,
                                   std::string_view body, std::int64_t timestamp);

// Checks the signature of the given fields with the hex public key (format checks included).
Result<void> verify_signature(const std::string& public_key_hex, std::string_view method, std::string_view target,
                              std::string_view body, std::int64_t timestamp, std::string_view nonce,
                              std::string_view signature_hex);

}  // namespace kmr::server

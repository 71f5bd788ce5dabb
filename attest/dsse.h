#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "attest/keys.h"
#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"

namespace kmr::attest {

inline constexpr std::string_view kInTotoPayloadType = "application/vnd.in-toto+json";
inline constexpr std::size_t kMaxEnvelopeBytes = 4 << 20;
inline constexpr std::size_t kMaxSignatures = 64;

// DSSE v1 Pre-Authentication Encoding:
// "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body.
ByteVector pae(std::string_view payload_type, Bytes body);

// Signs `payload` with every key; returns the envelope JSON
// {"payload","payloadType","signatures":[{"keyid","sig"}]} (standard base64,
// keyid = hex SHA-256 of the SPKI DER).
Result<std::string> sign_envelope(std::string_view payload_type, Bytes payload,
                                  const std::vector<const Ed25519Key*>& keys);

struct VerifiedPayload {
  std::string payload_type;
  ByteVector payload;                  // the exact bytes whose signature verified
  std::vector<std::string> keyids;     // distinct trusted keys that verified (SPKI keyids)
};

// Verifies an envelope: payloadType must equal `expected_type`; counts
// signatures that verify under DISTINCT trusted keys (keyid hints are
// ignored for trust; a key signing twice counts once); succeeds when at least
// `threshold` distinct keys verified. Accepts standard and URL-safe base64.
// Callers must use the returned bytes, never re-parse the envelope.
Result<VerifiedPayload> verify_envelope(std::string_view envelope_json,
                                        const std::vector<const Ed25519Key*>& trusted,
                                        std::size_t threshold = 1,
                                        std::string_view expected_type = kInTotoPayloadType);

}  // namespace kmr::attest

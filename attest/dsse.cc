#include "attest/dsse.h"

#include <set>

#include <nlohmann/json.hpp>

#include "attest/base64.h"

namespace kmr::attest {

ByteVector pae(std::string_view payload_type, Bytes body) {
  std::string head = "DSSEv1 " + std::to_string(payload_type.size()) + " " +
                     std::string(payload_type) + " " + std::to_string(body.size()) + " ";
  ByteVector out(head.begin(), head.end());
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

Result<std::string> sign_envelope(std::string_view payload_type, Bytes payload,
                                  const std::vector<const Ed25519Key*>& keys) {
  if (keys.empty()) return internal_error("sign_envelope: no signing key");
  ByteVector message = pae(payload_type, payload);
  nlohmann::json sigs = nlohmann::json::array();
  for (const Ed25519Key* key : keys) {
    KMR_ASSIGN_OR_RETURN(ByteVector sig, key->sign(message));
    sigs.push_back({{"keyid", key->keyid()}, {"sig", base64_encode(sig)}});
  }
  nlohmann::json env;
  env["payload"] = base64_encode(payload);
  env["payloadType"] = std::string(payload_type);
  env["signatures"] = std::move(sigs);
  return env.dump();
}

Result<VerifiedPayload> verify_envelope(std::string_view envelope_json,
                                        const std::vector<const Ed25519Key*>& trusted,
                                        std::size_t threshold, std::string_view expected_type) {
  if (threshold == 0) return internal_error("DSSE threshold must be at least 1");
  if (envelope_json.size() > kMaxEnvelopeBytes) return limit_exceeded("DSSE envelope larger than 4 MiB");
  auto j = nlohmann::json::parse(envelope_json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return malformed("DSSE envelope is not valid JSON");
  if (!j.is_object()) return malformed("DSSE envelope is not a JSON object");
  auto p = j.find("payload");
  auto t = j.find("payloadType");
  auto s = j.find("signatures");
  if (p == j.end() || !p->is_string()) return malformed("DSSE envelope: missing string field 'payload'");
  if (t == j.end() || !t->is_string()) return malformed("DSSE envelope: missing string field 'payloadType'");
  if (s == j.end() || !s->is_array()) return malformed("DSSE envelope: missing array field 'signatures'");
  std::string type = t->get<std::string>();
  if (type != expected_type) {
    return unsupported("DSSE envelope: unsupported payloadType '" + type + "'");
  }
  if (s->empty()) return malformed("DSSE envelope: no signatures");
  if (s->size() > kMaxSignatures) return limit_exceeded("DSSE envelope: more than 64 signatures");
  auto body = base64_decode(p->get_ref<const std::string&>());
  if (!body) return malformed("DSSE envelope: payload is not valid base64");
  ByteVector message = pae(type, *body);

  std::set<std::string> verified;
  for (const auto& sig : *s) {
    if (!sig.is_object()) return malformed("DSSE envelope: signature entry is not an object");
    auto sv = sig.find("sig");
    if (sv == sig.end() || !sv->is_string()) return malformed("DSSE envelope: signature without 'sig'");
    auto raw = base64_decode(sv->get_ref<const std::string&>());
    if (!raw) return malformed("DSSE envelope: 'sig' is not valid base64");
    if (raw->size() != 64) continue;  // not Ed25519: cannot be ours
    // keyid is an unauthenticated hint: try every trusted key.
    for (const Ed25519Key* key : trusted) {
      if (key->verify(message, *raw)) {
        verified.insert(key->keyid());
        break;
      }
    }
  }
  if (verified.size() < threshold) {
    if (verified.empty()) {
      return Error(ErrorCode::kVerificationFailed,
                   "DSSE envelope: no signature verifies under a trusted key");
    }
    return Error(ErrorCode::kVerificationFailed,
                 "DSSE envelope: " + std::to_string(verified.size()) +
                     " distinct trusted key(s) verified, threshold is " + std::to_string(threshold));
  }
  VerifiedPayload out;
  out.payload_type = std::move(type);
  out.payload = std::move(*body);
  out.keyids.assign(verified.begin(), verified.end());
  return out;
}

}  // namespace kmr::attest

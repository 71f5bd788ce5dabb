#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"

namespace kmr::attest {

inline constexpr std::string_view kStatementType = "https://in-toto.io/Statement/v1";
// Our predicate: SLSA VSA v1 fields plus a "kernel" object. Stable; the major
// version lives in the URI. Schema: schema/attestation/kernel-rebuild-v1.schema.json.
inline constexpr std::string_view kPredicateType = "https://kmr.dev/attestation/kernel-rebuild/v1";
inline constexpr std::string_view kDefaultPolicyUri = "https://kmr.dev/policy/kernel-rebuild/v1";
inline constexpr std::string_view kReproduced = "SLSA_BUILD_REPRODUCED";

struct Artifact {
  std::string name;
  std::string sha256;  // lowercase hex
};

// An independent rebuilder's PASSED attestation for the same subject, already
// verified by the caller under that rebuilder's pinned key.
struct Confirmation {
  std::string verifier_id;
  std::string keyid;          // SPKI keyid of the key that signed it
  std::string uri;            // where the envelope is published
  std::string envelope_sha256;
};

struct StatementInput {
  std::vector<Artifact> subjects;        // shipped artifact(s), >= 1
  std::string verifier_id;               // e.g. "https://rebuilder.example.org/kmr"
  std::string time_verified;             // RFC 3339 UTC; empty = now
  std::string resource_uri;              // purl or archive URL
  std::string policy_uri = std::string(kDefaultPolicyUri);
  std::string policy_sha256;             // may be empty
  std::string module_root;               // match|mismatch|absent|invalid
  std::string files;                     // identical|content-identical|...|error
  std::string reason;                    // free text for non-good verdicts
  std::string shipped_root;              // hex or empty
  std::optional<std::uint32_t> shipped_levels;
  std::string rebuilt_root;              // hex or empty
  // The root over the modules without signatures or proofs, shipped against
  // rebuilt: match|mismatch|absent, or empty when the rebuild did not compare
  // it (the one rule then treats it as absent).
  std::string module_content_root;
  std::string shipped_content_root;      // hex or empty
  std::string rebuilt_content_root;      // hex or empty
  std::optional<std::uint32_t> content_root_levels;
  std::string build_environment_sha256;  // digest of the pinned environment
  std::vector<Artifact> rebuilt_artifacts;
  // Other rebuilders' PASSED attestations. SLSA_BUILD_REPRODUCED is added
  // only when this result is PASSED and at least one confirmation comes from
  // a key other than `own_keyid` (>= 2 independent builders).
  std::vector<Confirmation> confirmations;
  std::string own_keyid;
};

bool is_module_root_verdict(std::string_view v);
bool is_files_verdict(std::string_view v);
// PASSED iff the verdicts are reproducible by the one rule
// (rebuilder/verdict/rule.h): files identical / content-identical /
// identical-modulo-signatures, module_root match or absent, and
// module_content_root (when known) match or absent.
bool verdict_passes(std::string_view module_root, std::string_view files,
                    std::optional<std::string_view> module_content_root = std::nullopt);

// Builds the Statement JSON (compact, deterministic key order). Rejects
// unknown verdicts and malformed digests.
Result<std::string> make_statement(const StatementInput& in);

// What a client needs from a verified statement.
struct StatementView {
  std::vector<Artifact> subjects;
  std::string verifier_id;
  std::string time_verified;
  std::string resource_uri;
  std::string verification_result;  // PASSED | FAILED
  std::vector<std::string> verified_levels;
  std::string module_root;
  std::string files;
  std::optional<std::string> module_content_root;  // absent in statements made before it existed
  std::string rebuilt_root;
  std::string shipped_content_root;
  std::string rebuilt_content_root;
  std::string kmr_version;
};

// Parses and checks the shape of a statement (from VERIFIED payload bytes):
// _type, predicateType, subject digests, required VSA fields, verdict enums,
// and consistency of verificationResult with the verdicts.
Result<StatementView> parse_statement(Bytes payload);

// True if any subject has this sha256.
bool has_subject(const StatementView& s, std::string_view sha256_hex);

}  // namespace kmr::attest

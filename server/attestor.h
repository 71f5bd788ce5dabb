#pragma once

// Creates a signed DSSE-wrapped in-toto Statement (attest library) for every
// artifact of an accepted report, positive or negative, appends it to the
// transparency log, stores the envelope as a content-addressed blob served at
// /api/v1/attestations/{sha256}, and serves the attest helper's key, log and
// tile routes.

#include <memory>
#include <string>

#include "attest/keys.h"
#include "attest/service.h"
#include "attest/tlog.h"
#include "rebuilder/base/result.h"
#include "server/store.h"

namespace kmr::server {

class Attestor {
 public:
  // key_path empty: STATE/keys/attestation.pem, generated on first start.
  // The log lives in STATE/log.
  static Result<std::unique_ptr<Attestor>> open(const std::string& state_dir, const std::string& key_path,
                                                std::string verifier_id, std::string public_base);
  // Returns the number of envelopes written. Builds without a verdict on the
  // artifact bytes (no module_root, e.g. build-failed) are not attested.
  Result<int> attest_rebuild(Store& store, std::int64_t rebuild_id, std::int64_t now);
  const std::string& keyid() const { return keyid_; }
  // kmrd's Ed25519 key: signs attestations, checkpoints and replies to workers.
  const attest::Ed25519Key& key() const { return *key_; }
  // Entries in the transparency log.
  std::uint64_t log_size() const;
  attest::AttestationService& service() { return *service_; }

 private:
  Attestor() = default;
  std::unique_ptr<attest::Ed25519Key> key_;
  std::unique_ptr<attest::TransparencyLog> log_;
  std::unique_ptr<attest::AttestationService> service_;
  std::mutex mu_;
  std::string verifier_id_;
  std::string keyid_;
  std::string public_base_;
};

// Checkpoint origin derived from the verifier id: "https://host/path" -> "host/path".
std::string log_origin(const std::string& verifier_id);

}  // namespace kmr::server

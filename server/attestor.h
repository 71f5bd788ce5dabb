#pragma once

// Signs a DSSE-wrapped in-toto Statement (attest library) for every artifact
// of an accepted report, positive or negative, and stores the envelope as a
// content-addressed blob served at /api/v1/attestations/{sha256}.

#include <memory>
#include <string>

#include "attest/keys.h"
#include "rebuilder/base/result.h"
#include "server/store.h"

namespace kmr::server {

class Attestor {
 public:
  // key_path empty: STATE/keys/attestation.pem, generated on first start.
  static Result<std::unique_ptr<Attestor>> open(const std::string& state_dir, const std::string& key_path,
                                                std::string verifier_id, std::string public_base);
  // Returns the number of envelopes written. Builds without a verdict on the
  // artifact bytes (no module_root, e.g. build-failed) are not attested.
  Result<int> attest_rebuild(Store& store, std::int64_t rebuild_id, std::int64_t now);
  std::string keys_json() const;
  const std::string& keyid() const { return keyid_; }

 private:
  Attestor(attest::Ed25519Key key, std::string verifier_id, std::string not_before)
      : key_(std::move(key)), verifier_id_(std::move(verifier_id)), not_before_(std::move(not_before)) {}
  attest::Ed25519Key key_;
  std::string verifier_id_;
  std::string not_before_;
  std::string keyid_;
  std::string public_base_;
};

}  // namespace kmr::server

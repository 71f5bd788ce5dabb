#pragma once

// OpenPGP signature checks through a real verifier run as a subprocess:
// Sequoia's `sqv` (preferred) or GnuPG's `gpgv`. No hand-rolled OpenPGP.

#include <string>

#include "rebuilder/base/result.h"

namespace kmr::archive {

struct PgpResult {
  bool valid = false;
  std::string verifier;  // "sqv" or "gpgv"
  std::string output;    // the verifier's stderr/stdout, for reports
};

// Verifies a detached signature (`sig_path`, binary or armored) over
// `data_path` with the keys in `keyring_path`. An invalid signature is a
// result (valid = false); errors mean no verifier could run.
Result<PgpResult> verify_detached(const std::string& keyring_path, const std::string& sig_path,
                                  const std::string& data_path);

// Verifies a clearsigned file (InRelease) with gpgv.
Result<PgpResult> verify_clearsigned(const std::string& keyring_path, const std::string& path);

}  // namespace kmr::archive

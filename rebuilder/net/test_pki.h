#pragma once

// Test-only X.509 material made with the OpenSSL API at test time: a CA and
// leaf certificates (P-256) with chosen names and validity, written as PEM.

#include <string>
#include <vector>

#include "rebuilder/base/result.h"

namespace kmr::net::testing {

struct IssueOptions {
  // DNS names and IP addresses for the subjectAltName; the first is the CN.
  std::vector<std::string> names;
  // Validity relative to now, in seconds.
  long not_before = -3600;
  long not_after = 30L * 24 * 3600;
  // Signed by its own key instead of the CA.
  bool self_signed = false;
};

struct IssuedCert {
  std::string cert_path;  // PEM
  std::string key_path;   // PEM (unencrypted)
};

class TestPki {
 public:
  // Creates the CA ("kmr test CA") in `dir`.
  static Result<TestPki> create(const std::string& dir);
  const std::string& ca_cert_path() const { return ca_.cert_path; }
  // Writes <dir>/<stem>.crt and <stem>.key.
  Result<IssuedCert> issue(const std::string& stem, const IssueOptions& options) const;

 private:
  TestPki(std::string dir, IssuedCert ca) : dir_(std::move(dir)), ca_(std::move(ca)) {}
  std::string dir_;
  IssuedCert ca_;
};

}  // namespace kmr::net::testing

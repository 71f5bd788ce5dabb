#pragma once

// Small helpers around OpenSSL shared by the signature checkers.

#include <openssl/x509.h>

#include <string>

namespace kmr::kmod {

// The oldest queued OpenSSL error as text ("" when none); clears the queue.
std::string openssl_reason();
// An X.509 name in RFC 2253 form with UTF-8 kept, e.g. "CN=Debian Secure Boot CA".
std::string x509_name_line(const X509_NAME* name);

}  // namespace kmr::kmod

#pragma once

// OpenSSL pieces of the client: the shared context (trust store, CA file,
// protocol floor), per-connection host checks, failure descriptions and pins.

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <string>
#include <vector>

#include <openssl/ssl.h>

#include "rebuilder/base/result.h"
#include "rebuilder/net/tls_options.h"
#include "rebuilder/net/url.h"

namespace kmr::net::tls {

// TLS 1.2 or later, peer verification on, the system trust store (unless
// disabled) and the extra CA file.
Result<std::shared_ptr<boost::asio::ssl::context>> make_context(const TlsOptions& options);

// What the verifier said about the first certificate it rejected (the
// peer's certificate is not kept after a failed handshake).
struct VerifyNote {
  std::string certificate;  // subject, issuer, validity
};

// SNI (host names only), the name or IP address the certificate must carry,
// and a verify callback filling `note` (which must outlive the handshake).
Result<void> prepare(SSL* ssl, const Url& url, VerifyNote* note);

// Why a handshake failed, naming the peer and, for a rejected certificate,
// OpenSSL's reason with the certificate's subject, issuer and validity.
Error describe_handshake_failure(SSL* ssl, const Url& url, const std::string& transport_error, const VerifyNote& note);

// Passes when `pins` is empty or one matches the verified peer.
Result<void> check_pins(SSL* ssl, const std::vector<Pin>& pins, const Url& url);

}  // namespace kmr::net::tls

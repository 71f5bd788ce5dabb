#include "rebuilder/net/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <map>
#include <mutex>
#include <utility>

#include "rebuilder/base/hex.h"

namespace kmr::net {

Result<Pin> Pin::parse(std::string_view text) {
  Pin pin;
  std::string_view hex;
  if (text.starts_with("spki-sha256:")) {
    pin.kind = Kind::kSpki;
    hex = text.substr(12);
  } else if (text.starts_with("cert-sha256:")) {
    pin.kind = Kind::kCert;
    hex = text.substr(12);
  } else {
    return malformed("bad pin '" + std::string(text.substr(0, 100)) + "': expected spki-sha256:<hex> or cert-sha256:<hex>");
  }
  auto bytes = is_sha256_hex(hex) ? from_hex(hex) : std::nullopt;
  if (!bytes) return malformed("bad pin '" + std::string(text.substr(0, 100)) + "': expected 64 hex digits");
  std::copy(bytes->begin(), bytes->end(), pin.sha256.begin());
  return pin;
}

std::string Pin::str() const {
  return std::string(kind == Kind::kSpki ? "spki-sha256:" : "cert-sha256:") + to_hex(sha256);
}

namespace tls {
namespace {

std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    std::array<char, 256> buf{};
    ERR_error_string_n(e, buf.data(), buf.size());
    if (!out.empty()) out += "; ";
    out += buf.data();
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

std::string name_text(const X509_NAME* name) {
  if (name == nullptr) return "?";
  BIO* bio = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n > 0 ? n : 0));
  BIO_free(bio);
  return out;
}

std::string time_text(const ASN1_TIME* t) {
  if (t == nullptr) return "?";
  BIO* bio = BIO_new(BIO_s_mem());
  ASN1_TIME_print(bio, t);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n > 0 ? n : 0));
  BIO_free(bio);
  return out;
}

template <typename T, typename Encode>
Digest256 der_sha256(T* object, Encode encode) {
  unsigned char* der = nullptr;
  int len = encode(object, &der);
  if (len <= 0) return Digest256{};
  Digest256 d = sha256(Bytes(der, static_cast<std::size_t>(len)));
  OPENSSL_free(der);
  return d;
}

std::string describe_cert(X509* cert) {
  return "subject " + name_text(X509_get_subject_name(cert)) + ", issuer " + name_text(X509_get_issuer_name(cert)) +
         ", valid " + time_text(X509_get0_notBefore(cert)) + " to " + time_text(X509_get0_notAfter(cert));
}

int note_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// Keeps OpenSSL's verdict, noting the first certificate it rejects.
int verify_callback(int preverify_ok, X509_STORE_CTX* store) {
  if (preverify_ok == 1) return 1;
  auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* note = ssl == nullptr ? nullptr : static_cast<VerifyNote*>(SSL_get_ex_data(ssl, note_index()));
  X509* cert = X509_STORE_CTX_get_current_cert(store);
  if (note != nullptr && note->certificate.empty() && cert != nullptr) note->certificate = describe_cert(cert);
  return 0;
}

Digest256 spki_sha256(X509* cert) { return der_sha256(X509_get_X509_PUBKEY(cert), i2d_X509_PUBKEY); }
Digest256 cert_sha256(X509* cert) { return der_sha256(cert, i2d_X509); }

}  // namespace

Result<std::shared_ptr<boost::asio::ssl::context>> make_context(const TlsOptions& options) {
  namespace ssl = boost::asio::ssl;
  if (!options.system_trust && options.ca_file.empty()) {
    return malformed("TLS options trust nothing: enable the system trust store or give a CA file");
  }
  // Loading the system bundle parses every certificate in it: clients with
  // the same trust settings share one context while any of them lives.
  static std::mutex mu;
  static std::map<std::pair<bool, std::string>, std::weak_ptr<ssl::context>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_pair(options.system_trust, options.ca_file);
  if (auto shared = cache[key].lock()) return shared;
  try {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    ctx->set_verify_mode(ssl::verify_peer);
    boost::system::error_code ec;
    if (options.system_trust) {
      ctx->set_default_verify_paths(ec);
      if (ec) return io_error("cannot load the system trust store: " + ec.message());
    }
    if (!options.ca_file.empty()) {
      ctx->load_verify_file(options.ca_file, ec);
      if (ec) return io_error("cannot load CA file " + options.ca_file + ": " + ec.message());
    }
    cache[key] = ctx;
    return ctx;
  } catch (const std::exception& e) {
    return internal_error(std::string("TLS context: ") + e.what());
  }
}

Result<void> prepare(SSL* ssl, const Url& url, VerifyNote* note) {
  ERR_clear_error();
  // SSL_set_tlsext_host_name() without its C cast.
  if (!url.ip_literal() && SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                                    const_cast<char*>(url.host.c_str())) != 1) {
    return internal_error("cannot set SNI for " + url.host + ": " + openssl_errors());
  }
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  int rc = url.ip_literal() ? X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str())
                            : X509_VERIFY_PARAM_set1_host(param, url.host.c_str(), url.host.size());
  if (rc != 1) return internal_error("cannot set the expected host " + url.host + ": " + openssl_errors());
  if (SSL_set_ex_data(ssl, note_index(), note) != 1) return internal_error("cannot attach the verify note");
  SSL_set_verify(ssl, SSL_VERIFY_PEER, verify_callback);
  return ok();
}

Error describe_handshake_failure(SSL* ssl, const Url& url, const std::string& transport_error, const VerifyNote& note) {
  long verify = SSL_get_verify_result(ssl);
  if (verify == X509_V_OK) return io_error("TLS handshake with " + url.authority() + " failed: " + transport_error);
  std::string reason = X509_verify_cert_error_string(verify);
  if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
    reason += " (the certificate is not valid for '" + url.host + "')";
  }
  std::string detail = note.certificate.empty() ? "" : " [" + note.certificate + "]";
  return Error(ErrorCode::kVerificationFailed, "certificate of " + url.authority() + " rejected: " + reason + detail);
}

Result<void> check_pins(SSL* ssl, const std::vector<Pin>& pins, const Url& url) {
  if (pins.empty()) return ok();
  X509* leaf = SSL_get0_peer_certificate(ssl);
  STACK_OF(X509)* chain = SSL_get0_verified_chain(ssl);
  if (leaf == nullptr || chain == nullptr) return Error(ErrorCode::kVerificationFailed, "no verified certificate to check pins against");
  Digest256 leaf_cert = cert_sha256(leaf);
  for (const Pin& pin : pins) {
    if (pin.kind == Pin::Kind::kCert && pin.sha256 == leaf_cert) return ok();
    if (pin.kind != Pin::Kind::kSpki) continue;
    for (int i = 0; i < sk_X509_num(chain); ++i) {
      if (spki_sha256(sk_X509_value(chain, i)) == pin.sha256) return ok();
    }
  }
  Pin spki{Pin::Kind::kSpki, spki_sha256(leaf)};
  Pin cert{Pin::Kind::kCert, leaf_cert};
  return Error(ErrorCode::kVerificationFailed, "certificate pin mismatch for " + url.authority() + ": none of the " +
                                                   std::to_string(pins.size()) + " pin(s) matches; the server's leaf is " +
                                                   spki.str() + " / " + cert.str());
}

}  // namespace tls
}  // namespace kmr::net

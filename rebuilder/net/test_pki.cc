#include "rebuilder/net/test_pki.h"

#include <arpa/inet.h>

#include <atomic>
#include <cstdio>
#include <memory>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace kmr::net::testing {
namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using Key = std::unique_ptr<EVP_PKEY, Free>;
using Cert = std::unique_ptr<X509, Free>;
using File = std::unique_ptr<std::FILE, Free>;

std::atomic<long> next_serial{1000};

bool is_ip(const std::string& name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

Result<void> add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, Free> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) return internal_error("cannot add extension " + value);
  return ok();
}

Result<Cert> make_cert(EVP_PKEY* key, const std::string& cn, X509* issuer, long not_before, long not_after) {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), next_serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), not_before);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), not_after);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("kmr tests"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  return cert;
}

Result<void> write_pem(const std::string& cert_path, X509* cert, const std::string& key_path, EVP_PKEY* key) {
  File c(std::fopen(cert_path.c_str(), "w"));
  File k(std::fopen(key_path.c_str(), "w"));
  if (!c || !k) return io_error("cannot write " + cert_path);
  if (PEM_write_X509(c.get(), cert) != 1 || PEM_write_PrivateKey(k.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return io_error("cannot write PEM to " + cert_path);
  }
  return ok();
}

Key new_key() { return Key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")); }

}  // namespace

Result<TestPki> TestPki::create(const std::string& dir) {
  Key key = new_key();
  if (!key) return internal_error("EC key generation failed");
  KMR_ASSIGN_OR_RETURN(Cert ca, make_cert(key.get(), "kmr test CA", nullptr, -86400, 365L * 86400));
  KMR_TRY(add_ext(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE"));
  KMR_TRY(add_ext(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  KMR_TRY(add_ext(ca.get(), ca.get(), NID_subject_key_identifier, "hash"));
  if (X509_sign(ca.get(), key.get(), EVP_sha256()) <= 0) return internal_error("CA signing failed");
  IssuedCert files{dir + "/ca.crt", dir + "/ca.key"};
  KMR_TRY(write_pem(files.cert_path, ca.get(), files.key_path, key.get()));
  return TestPki(dir, files);
}

Result<IssuedCert> TestPki::issue(const std::string& stem, const IssueOptions& options) const {
  if (options.names.empty()) return internal_error("a certificate needs a name");
  Key ca_key;
  Cert ca_cert;
  {
    File k(std::fopen(ca_.key_path.c_str(), "r"));
    File c(std::fopen(ca_.cert_path.c_str(), "r"));
    if (!k || !c) return io_error("cannot read the test CA");
    ca_key.reset(PEM_read_PrivateKey(k.get(), nullptr, nullptr, nullptr));
    ca_cert.reset(PEM_read_X509(c.get(), nullptr, nullptr, nullptr));
    if (!ca_key || !ca_cert) return io_error("cannot parse the test CA");
  }
  Key key = new_key();
  if (!key) return internal_error("EC key generation failed");
  X509* issuer = options.self_signed ? nullptr : ca_cert.get();
  EVP_PKEY* signer = options.self_signed ? key.get() : ca_key.get();
  KMR_ASSIGN_OR_RETURN(Cert cert, make_cert(key.get(), options.names[0], issuer, options.not_before, options.not_after));
  std::string san;
  for (const auto& n : options.names) san += (san.empty() ? "" : ",") + std::string(is_ip(n) ? "IP:" : "DNS:") + n;
  X509* ext_issuer = options.self_signed ? cert.get() : ca_cert.get();
  KMR_TRY(add_ext(cert.get(), ext_issuer, NID_basic_constraints, "critical,CA:FALSE"));
  KMR_TRY(add_ext(cert.get(), ext_issuer, NID_subject_alt_name, san));
  KMR_TRY(add_ext(cert.get(), ext_issuer, NID_ext_key_usage, "serverAuth"));
  KMR_TRY(add_ext(cert.get(), ext_issuer, NID_subject_key_identifier, "hash"));
  if (!options.self_signed) KMR_TRY(add_ext(cert.get(), ext_issuer, NID_authority_key_identifier, "keyid:always"));
  if (X509_sign(cert.get(), signer, EVP_sha256()) <= 0) return internal_error("certificate signing failed");
  IssuedCert files{dir_ + "/" + stem + ".crt", dir_ + "/" + stem + ".key"};
  KMR_TRY(write_pem(files.cert_path, cert.get(), files.key_path, key.get()));
  return files;
}

}  // namespace kmr::net::testing

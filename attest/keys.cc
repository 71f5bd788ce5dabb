#include "attest/keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include <nlohmann/json.hpp>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "attest/base64.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"

namespace kmr::attest {
namespace {

EVP_PKEY* pk(void* p) { return static_cast<EVP_PKEY*>(p); }

constexpr std::uint8_t kSpkiPrefix[] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b,
                                        0x65, 0x70, 0x03, 0x21, 0x00};
constexpr std::uint8_t kSpkiNullPrefix[] = {0x30, 0x2c, 0x30, 0x07, 0x06, 0x03, 0x2b,
                                            0x65, 0x70, 0x05, 0x00, 0x03, 0x21, 0x00};

std::string bio_to_string(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

// Extracts the base64 body between "-----BEGIN <label>-----" and the END line.
std::optional<ByteVector> pem_body(std::string_view pem, std::string_view label) {
  std::string begin = "-----BEGIN " + std::string(label) + "-----";
  std::string end = "-----END " + std::string(label) + "-----";
  auto b = pem.find(begin);
  if (b == std::string_view::npos) return std::nullopt;
  auto e = pem.find(end, b);
  if (e == std::string_view::npos) return std::nullopt;
  std::string body;
  for (char c : pem.substr(b + begin.size(), e - b - begin.size())) {
    if (c != '\n' && c != '\r' && c != ' ' && c != '\t') body.push_back(c);
  }
  return base64_decode_std(body);
}

}  // namespace

Ed25519Key::Ed25519Key(Ed25519Key&& o) noexcept : pkey_(o.pkey_), has_private_(o.has_private_) {
  o.pkey_ = nullptr;
}
Ed25519Key& Ed25519Key::operator=(Ed25519Key&& o) noexcept {
  if (this != &o) {
    EVP_PKEY_free(pk(pkey_));
    pkey_ = o.pkey_;
    has_private_ = o.has_private_;
    o.pkey_ = nullptr;
  }
  return *this;
}
Ed25519Key::~Ed25519Key() { EVP_PKEY_free(pk(pkey_)); }

Result<Ed25519Key> Ed25519Key::generate() {
  std::uint8_t seed[32];
  if (RAND_priv_bytes(seed, sizeof seed) != 1) return internal_error("RAND_priv_bytes failed");
  auto key = from_seed(Bytes(seed, sizeof seed));
  OPENSSL_cleanse(seed, sizeof seed);
  return key;
}

Result<Ed25519Key> Ed25519Key::from_seed(Bytes seed32) {
  if (seed32.size() != 32) return malformed("Ed25519 seed must be 32 bytes");
  EVP_PKEY* p = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed32.data(), 32);
  if (p == nullptr) return internal_error("EVP_PKEY_new_raw_private_key failed");
  return Ed25519Key(p, true);
}

Result<Ed25519Key> Ed25519Key::from_raw_public(Bytes pub32) {
  if (pub32.size() != 32) return malformed("Ed25519 public key must be 32 bytes");
  EVP_PKEY* p = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, pub32.data(), 32);
  if (p == nullptr) return malformed("not a valid Ed25519 public key");
  return Ed25519Key(p, false);
}

Result<Ed25519Key> Ed25519Key::from_spki_der(Bytes der) {
  if (der.size() == 44 && std::memcmp(der.data(), kSpkiPrefix, sizeof kSpkiPrefix) == 0) {
    return from_raw_public(der.subspan(12));
  }
  if (der.size() == 46 && std::memcmp(der.data(), kSpkiNullPrefix, sizeof kSpkiNullPrefix) == 0) {
    return from_raw_public(der.subspan(14));
  }
  return unsupported("public key is not an Ed25519 SubjectPublicKeyInfo");
}

Result<Ed25519Key> Ed25519Key::from_pem(std::string_view pem) {
  if (pem.size() > 64 * 1024) return limit_exceeded("PEM larger than 64 KiB");
  if (pem.find("-----BEGIN PRIVATE KEY-----") != std::string_view::npos) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    if (bio == nullptr) return internal_error("BIO_new_mem_buf failed");
    EVP_PKEY* p = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (p == nullptr) return malformed("cannot parse PRIVATE KEY PEM");
    if (EVP_PKEY_get_id(p) != EVP_PKEY_ED25519) {
      EVP_PKEY_free(p);
      return unsupported("private key is not Ed25519");
    }
    return Ed25519Key(p, true);
  }
  if (pem.find("-----BEGIN PUBLIC KEY-----") != std::string_view::npos) {
    auto der = pem_body(pem, "PUBLIC KEY");
    if (!der) return malformed("PUBLIC KEY PEM body is not valid base64");
    return from_spki_der(*der);
  }
  return malformed("no PRIVATE KEY or PUBLIC KEY PEM block");
}

Result<Ed25519Key> Ed25519Key::load(const std::string& path) {
  KMR_ASSIGN_OR_RETURN(std::string text, read_text_file(path, 64 * 1024));
  auto key = from_pem(text);
  if (!key) return std::move(key).error().with_context("while loading key " + path);
  return key;
}

ByteVector Ed25519Key::raw_public() const {
  ByteVector out(32);
  std::size_t len = 32;
  KMR_CHECK(EVP_PKEY_get_raw_public_key(pk(pkey_), out.data(), &len) == 1 && len == 32);
  return out;
}

ByteVector Ed25519Key::spki_der() const {
  ByteVector out(kSpkiPrefix, kSpkiPrefix + sizeof kSpkiPrefix);
  ByteVector raw = raw_public();
  out.insert(out.end(), raw.begin(), raw.end());
  return out;
}

std::string Ed25519Key::public_pem() const {
  std::string b64 = base64_encode(spki_der());
  return "-----BEGIN PUBLIC KEY-----\n" + b64 + "\n-----END PUBLIC KEY-----\n";
}

Result<std::string> Ed25519Key::private_pem() const {
  if (!has_private_) return internal_error("public-only key has no private PEM");
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return internal_error("BIO_new failed");
  if (PEM_write_bio_PrivateKey(bio, pk(pkey_), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    BIO_free(bio);
    return internal_error("PEM_write_bio_PrivateKey failed");
  }
  std::string out = bio_to_string(bio);
  BIO_free(bio);
  return out;
}

std::string Ed25519Key::keyid() const { return sha256_hex(spki_der()); }

Ed25519Key Ed25519Key::public_only() const {
  auto k = from_raw_public(raw_public());
  KMR_CHECK(k.has_value());
  return std::move(k).value();
}

Result<ByteVector> Ed25519Key::sign(Bytes message) const {
  if (!has_private_) return internal_error("cannot sign with a public-only key");
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return internal_error("EVP_MD_CTX_new failed");
  ByteVector sig(64);
  std::size_t len = sig.size();
  bool good = EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, pk(pkey_)) == 1 &&
              EVP_DigestSign(ctx, sig.data(), &len, message.data(), message.size()) == 1 &&
              len == 64;
  EVP_MD_CTX_free(ctx);
  if (!good) return internal_error("EVP_DigestSign (Ed25519) failed");
  return sig;
}

bool Ed25519Key::verify(Bytes message, Bytes signature) const {
  if (signature.size() != 64) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return false;
  bool good = EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, pk(pkey_)) == 1 &&
              EVP_DigestVerify(ctx, signature.data(), signature.size(), message.data(),
                               message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return good;
}

Result<void> save_private_key(const Ed25519Key& key, const std::string& path) {
  KMR_ASSIGN_OR_RETURN(std::string pem, key.private_pem());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    int e = errno;
    return io_error(path + ": cannot create private key file: " + std::strerror(e));
  }
  bool good = ::fchmod(fd, 0600) == 0;
  std::size_t off = 0;
  while (good && off < pem.size()) {
    ssize_t n = ::write(fd, pem.data() + off, pem.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) good = false; else off += static_cast<std::size_t>(n);
  }
  good = good && ::fsync(fd) == 0;
  good = (::close(fd) == 0) && good;
  OPENSSL_cleanse(pem.data(), pem.size());
  if (!good) {
    ::unlink(path.c_str());
    return io_error(path + ": writing private key failed");
  }
  std::string pub = key.public_pem();
  return write_file_atomic(path + ".pub", as_bytes(pub), 0644);
}

Result<void> check_private_key_permissions(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    int e = errno;
    return io_error(path + ": " + std::strerror(e));
  }
  if ((st.st_mode & 077) != 0) {
    return Error(ErrorCode::kPermissionDenied,
                 path + ": private key is accessible by group/others (mode must be 0600)");
  }
  return ok();
}

std::optional<PublishedKey> KeySet::valid_at(std::string_view keyid, std::string_view time) const {
  for (const auto& k : keys_) {
    if (k.keyid != keyid) continue;
    if (!k.not_before.empty() && time < k.not_before) continue;
    if (!k.not_after.empty() && time >= k.not_after) continue;
    return k;
  }
  return std::nullopt;
}

std::string KeySet::to_json() const {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& k : keys_) {
    nlohmann::json j;
    j["keyid"] = k.keyid;
    j["algorithm"] = "ed25519";
    j["public_key_pem"] = k.public_pem;
    if (!k.vkey.empty()) j["vkey"] = k.vkey;
    j["not_before"] = k.not_before;
    j["not_after"] = k.not_after.empty() ? nlohmann::json(nullptr) : nlohmann::json(k.not_after);
    j["current"] = k.current;
    arr.push_back(std::move(j));
  }
  nlohmann::json root;
  root["keys"] = std::move(arr);
  return root.dump(2) + "\n";
}

Result<KeySet> KeySet::from_json(std::string_view json) {
  if (json.size() > 1 << 20) return limit_exceeded("key set JSON larger than 1 MiB");
  auto j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("keys") || !j["keys"].is_array()) {
    return malformed("key set: expected {\"keys\":[...]}");
  }
  KeySet set;
  for (const auto& e : j["keys"]) {
    if (!e.is_object() || !e.contains("public_key_pem") || !e["public_key_pem"].is_string()) {
      return malformed("key set: entry without public_key_pem");
    }
    PublishedKey k;
    k.public_pem = e["public_key_pem"].get<std::string>();
    KMR_ASSIGN_OR_RETURN(auto key, Ed25519Key::from_pem(k.public_pem));
    k.keyid = key.keyid();  // never trust a published keyid: recompute it
    if (e.contains("vkey") && e["vkey"].is_string()) k.vkey = e["vkey"].get<std::string>();
    if (e.contains("not_before") && e["not_before"].is_string()) k.not_before = e["not_before"].get<std::string>();
    if (e.contains("not_after") && e["not_after"].is_string()) k.not_after = e["not_after"].get<std::string>();
    if (e.contains("current") && e["current"].is_boolean()) k.current = e["current"].get<bool>();
    set.add(std::move(k));
  }
  return set;
}

std::string now_rfc3339() {
  std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace kmr::attest

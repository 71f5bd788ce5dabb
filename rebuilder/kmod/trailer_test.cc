#include "rebuilder/kmod/trailer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "rebuilder/base/file.h"
#include "rebuilder/base/subprocess.h"

namespace kmr::kmod {
namespace {

std::string tmpdir() {
  const char* t = std::getenv("TEST_TMPDIR");
  return t != nullptr ? t : "/tmp";
}

ByteVector module_body() {
  std::string s = "\x7f" "ELF fake module body\n";
  for (int i = 0; i < 100; ++i) s += "padding line " + std::to_string(i) + "\n";
  return ByteVector(s.begin(), s.end());
}

ByteVector with_trailer(ByteVector body, Bytes blob, ModuleSignature sig) {
  const ByteVector t = build_trailer(blob, sig);
  body.insert(body.end(), t.begin(), t.end());
  return body;
}

ModuleSignature merkle_sig(std::uint32_t len) {
  ModuleSignature s;
  s.id_type = kIdTypeMerkle;
  s.sig_len = len;
  return s;
}

TEST(TrailerTest, NoTrailer) {
  const ByteVector body = module_body();
  auto t = parse_trailer(body, "a.ko");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->kind, TrailerKind::kNone);
  EXPECT_EQ(t->content_length, body.size());
  auto e = parse_trailer(Bytes(), "a.ko");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->content_length, 0u);
}

TEST(TrailerTest, MerkleTrailer) {
  const ByteVector body = module_body();
  ByteVector blob = {0, 0, 0, 7};
  blob.resize(4 + 64, 0xab);
  const ByteVector m = with_trailer(body, blob, merkle_sig(68));
  auto t = parse_trailer(m, "a.ko");
  ASSERT_TRUE(t.has_value()) << t.error().to_string();
  EXPECT_EQ(t->kind, TrailerKind::kMerkle);
  EXPECT_EQ(t->content_length, body.size());
  EXPECT_EQ(t->trailer_length, 68u + 12 + 28);
  EXPECT_EQ(t->proof->pos, 7u);
  EXPECT_EQ(t->proof->siblings.size(), 2u);
}

TEST(TrailerTest, TruncatedTrailer) {
  std::string s = "abc";
  s += kSignatureMarker;
  auto t = parse_trailer(as_bytes(s), "a.ko");
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().to_string(), "a.ko: truncated trailer: 3 bytes before the signature marker, the signature struct needs 12");
}

TEST(TrailerTest, SigLenLargerThanFile) {
  ByteVector blob(36, 1);
  ByteVector m = with_trailer({}, blob, merkle_sig(1000));
  auto t = parse_trailer(m, "b.ko");
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().to_string(), "b.ko: sig_len 1000 larger than the file (36 bytes before the signature struct)");
}

TEST(TrailerTest, UnknownIdType) {
  ModuleSignature s = merkle_sig(36);
  s.id_type = 1;
  auto t = parse_trailer(with_trailer(module_body(), ByteVector(36), s), "c.ko");
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().to_string(), "c.ko: unknown id_type 1 in module signature");
}

TEST(TrailerTest, NonzeroReservedFields) {
  ModuleSignature s = merkle_sig(36);
  s.signer_len = 3;
  auto t = parse_trailer(with_trailer(module_body(), ByteVector(36), s), "d.ko");
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().to_string(), "d.ko: module signature struct has nonzero algo/hash/signer_len/key_id_len/pad fields");
}

TEST(TrailerTest, ProofSizeNotMultiple) {
  auto t = parse_trailer(with_trailer(module_body(), ByteVector(40), merkle_sig(40)), "e.ko");
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().to_string(), "e.ko: merkle proof: size 40 is not 4 + 32 * levels");
}

TEST(TrailerTest, ZeroSigLen) {
  auto t = parse_trailer(with_trailer(module_body(), {}, merkle_sig(0)), "f.ko");
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().to_string(), "f.ko: sig_len is 0");
}

TEST(TrailerTest, HugeTrailerIsLimited) {
  const ByteVector blob(100000, 0);
  auto t = parse_trailer(with_trailer(module_body(), blob, merkle_sig(100000)), "g.ko");
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().code(), ErrorCode::kLimitExceeded);
}

// A real PKCS#7 signature made like the kernel's sign-file does, with the
// openssl command line tool.
ByteVector openssl_sign(const std::string& tag, bool keyid) {
  const std::string d = tmpdir() + "/" + tag;
  const std::string script =
      "set -e; mkdir -p " + d + "; cd " + d +
      "; openssl req -new -x509 -newkey rsa:2048 -nodes -days 3650 -subj '/O=Test Org/CN=Test module signing key'"
      " -keyout key.pem -out cert.pem 2>/dev/null; printf 'module body' > mod;"
      " openssl cms -sign -in mod -signer cert.pem -inkey key.pem -md sha256 -nocerts -noattr -binary -outform DER" +
      std::string(keyid ? " -keyid" : "") + " -out sig.der;"
      " openssl x509 -in cert.pem -noout -serial > serial.txt;"
      " openssl x509 -in cert.pem -noout -ext subjectKeyIdentifier | tail -1 | tr -d ' :' > ski.txt";
  auto r = run_subprocess({"sh", "-c", script});
  EXPECT_TRUE(r.has_value() && r->success()) << (r ? r->err : "");
  return *read_file(d + "/sig.der", 1 << 20);
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

TEST(TrailerTest, Pkcs7SignerAndSerialFromOpenssl) {
  const ByteVector der = openssl_sign("p7serial", false);
  ModuleSignature s;
  s.id_type = kIdTypePkcs7;
  s.sig_len = static_cast<std::uint32_t>(der.size());
  const ByteVector body = module_body();
  auto t = parse_trailer(with_trailer(body, der, s), "h.ko");
  ASSERT_TRUE(t.has_value()) << t.error().to_string();
  EXPECT_EQ(t->kind, TrailerKind::kPkcs7);
  EXPECT_EQ(t->content_length, body.size());
  EXPECT_EQ(t->pkcs7->signer, "Test module signing key");
  EXPECT_EQ(t->pkcs7->digest, "SHA256");
  std::string serial = *read_text_file(tmpdir() + "/p7serial/serial.txt", 1000);
  serial = lower(serial.substr(serial.find('=') + 1));
  serial.erase(serial.find_last_not_of("\n") + 1);
  while (serial.size() > 2 && serial.rfind("00", 0) == 0) serial = serial.substr(2);
  EXPECT_EQ(t->pkcs7->key_id, serial);
}

TEST(TrailerTest, Pkcs7SubjectKeyId) {
  const ByteVector der = openssl_sign("p7ski", true);
  ModuleSignature s;
  s.id_type = kIdTypePkcs7;
  s.sig_len = static_cast<std::uint32_t>(der.size());
  auto t = parse_trailer(with_trailer(module_body(), der, s), "i.ko");
  ASSERT_TRUE(t.has_value()) << t.error().to_string();
  std::string ski = *read_text_file(tmpdir() + "/p7ski/ski.txt", 1000);
  ski.erase(ski.find_last_not_of("\n") + 1);
  EXPECT_EQ(t->pkcs7->key_id, lower(ski));
  EXPECT_EQ(t->pkcs7->signer, "");
}

TEST(TrailerTest, Pkcs7Garbage) {
  ModuleSignature s;
  s.id_type = kIdTypePkcs7;
  s.sig_len = 50;
  auto t = parse_trailer(with_trailer(module_body(), ByteVector(50, 0x30), s), "j.ko");
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().to_string(), "j.ko: PKCS#7 signature: not a DER CMS/PKCS#7 structure");
}

}  // namespace
}  // namespace kmr::kmod

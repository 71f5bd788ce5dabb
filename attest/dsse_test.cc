#include "attest/dsse.h"

#include <sys/stat.h>

#include <fstream>

#include <gtest/gtest.h>

#include "rebuilder/base/require.h"

#include "attest/base64.h"
#include "attest/keys.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/subprocess.h"

namespace kmr::attest {
namespace {

constexpr char kSeed[] = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
constexpr char kPub[] = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
constexpr char kSpkiB64[] = "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
constexpr char kKeyid[] = "06e3fd8fda29bb60ab59557de61edb0aecdb231134be30e75b455f8e1b792fa9";
constexpr char kSig[] = "4DHX3Zn4qpBKvEj7maE8O9u9bjXEnPLLnyXVUJ2PXJR8DSLcL3QDpFvfJOj3pB/SPHsl6Jg4boxsMb6KvuYABw==";

Ed25519Key test_key() { return std::move(Ed25519Key::from_seed(*from_hex(kSeed))).value(); }

std::string make_env(std::string_view payload_b64, std::string_view type, std::string_view sigs) {
  return "{\"payload\":\"" + std::string(payload_b64) + "\",\"payloadType\":\"" + std::string(type) +
         "\",\"signatures\":[" + std::string(sigs) + "]}";
}

TEST(Base64, RoundTripAndAlphabets) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    auto enc = base64_encode(as_bytes(s));
    auto dec = base64_decode(enc);
    ASSERT_TRUE(dec);
    EXPECT_EQ(std::string(dec->begin(), dec->end()), s);
  }
  EXPECT_EQ(base64_encode(as_bytes("foobar")), "Zm9vYmFy");
  // 0xfb 0xff -> "+/8=" standard, "-_8" URL-safe.
  auto a = base64_decode("+/8=");
  auto b = base64_decode("-_8");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, *b);
  EXPECT_FALSE(base64_decode("ab=c"));
  EXPECT_FALSE(base64_decode("a"));
  EXPECT_FALSE(base64_decode("ab c"));
  EXPECT_FALSE(base64_decode("Zh=="));  // non-zero trailing bits
  EXPECT_FALSE(base64_decode_std("-_8="));
}

TEST(Dsse, PaeMatchesSpec) {
  auto p = pae("http://example.com/HelloWorld", as_bytes("hello world"));
  EXPECT_EQ(std::string(p.begin(), p.end()), "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
  auto e = pae(kInTotoPayloadType, as_bytes(""));
  EXPECT_EQ(std::string(e.begin(), e.end()), "DSSEv1 28 application/vnd.in-toto+json 0 ");
}

TEST(Dsse, Ed25519SpecVector) {
  Ed25519Key key = test_key();
  EXPECT_EQ(to_hex(key.raw_public()), kPub);
  EXPECT_EQ(base64_encode(key.spki_der()), kSpkiB64);
  EXPECT_EQ(key.keyid(), kKeyid);
  auto p = pae("http://example.com/HelloWorld", as_bytes("hello world"));
  auto sig = key.sign(p);
  ASSERT_TRUE(sig);
  EXPECT_EQ(base64_encode(*sig), kSig);
  // Verify the published vector through the envelope path, public key only.
  Ed25519Key pub = std::move(Ed25519Key::from_pem(key.public_pem())).value();
  std::string env = make_env(base64_encode(as_bytes("hello world")), "http://example.com/HelloWorld",
                             std::string("{\"keyid\":\"\",\"sig\":\"") + kSig + "\"}");
  auto v = verify_envelope(env, {&pub}, 1, "http://example.com/HelloWorld");
  ASSERT_TRUE(v) << v.error().to_string();
  EXPECT_EQ(std::string(v->payload.begin(), v->payload.end()), "hello world");
  ASSERT_EQ(v->keyids.size(), 1u);
  EXPECT_EQ(v->keyids[0], kKeyid);
}

TEST(Dsse, AcceptsUrlSafeBase64) {
  Ed25519Key key = test_key();
  std::string sig = kSig;
  for (char& c : sig) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  while (!sig.empty() && sig.back() == '=') sig.pop_back();
  std::string env = make_env("aGVsbG8gd29ybGQ", "http://example.com/HelloWorld",
                             "{\"sig\":\"" + sig + "\"}");
  EXPECT_TRUE(verify_envelope(env, {&key}, 1, "http://example.com/HelloWorld"));
}

TEST(Dsse, RejectsTamperWrongKeyTypeAndCountsDistinctKeys) {
  Ed25519Key k1 = test_key();
  Ed25519Key k2 = std::move(Ed25519Key::generate()).value();
  Ed25519Key k3 = std::move(Ed25519Key::generate()).value();
  std::string payload = "{\"a\":1}";
  auto env = sign_envelope(kInTotoPayloadType, as_bytes(payload), {&k1, &k2});
  ASSERT_TRUE(env);
  EXPECT_TRUE(verify_envelope(*env, {&k1, &k2}, 2));
  // Wrong key.
  auto wrong = verify_envelope(*env, {&k3}, 1);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().message(), "DSSE envelope: no signature verifies under a trusted key");
  // Tampered payload.
  std::string tampered = *env;
  auto pos = tampered.find(base64_encode(as_bytes(payload)));
  tampered.replace(pos, base64_encode(as_bytes(payload)).size(), base64_encode(as_bytes("{\"a\":2}")));
  EXPECT_FALSE(verify_envelope(tampered, {&k1, &k2}, 1));
  // The same key signing twice counts once.
  auto dup = sign_envelope(kInTotoPayloadType, as_bytes(payload), {&k1, &k1});
  ASSERT_TRUE(dup);
  auto r = verify_envelope(*dup, {&k1, &k2}, 2);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "DSSE envelope: 1 distinct trusted key(s) verified, threshold is 2");
  // Trusting the same key twice does not help either.
  EXPECT_FALSE(verify_envelope(*dup, {&k1, &k1}, 2));
  // Unsupported payload type.
  auto other = sign_envelope("text/plain", as_bytes(payload), {&k1});
  auto t = verify_envelope(*other, {&k1}, 1);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().message(), "DSSE envelope: unsupported payloadType 'text/plain'");
}

TEST(Dsse, MalformedEnvelopes) {
  Ed25519Key k = test_key();
  struct Case {
    std::string env;
    std::string msg;
  } cases[] = {
      {"not json", "DSSE envelope is not valid JSON"},
      {"[]", "DSSE envelope is not a JSON object"},
      {"{\"payloadType\":\"application/vnd.in-toto+json\",\"signatures\":[]}", "DSSE envelope: missing string field 'payload'"},
      {"{\"payload\":\"\",\"signatures\":[]}", "DSSE envelope: missing string field 'payloadType'"},
      {"{\"payload\":\"\",\"payloadType\":\"application/vnd.in-toto+json\"}", "DSSE envelope: missing array field 'signatures'"},
      {make_env("", kInTotoPayloadType, ""), "DSSE envelope: no signatures"},
      {make_env("!!", kInTotoPayloadType, "{\"sig\":\"\"}"), "DSSE envelope: payload is not valid base64"},
      {make_env("", kInTotoPayloadType, "1"), "DSSE envelope: signature entry is not an object"},
      {make_env("", kInTotoPayloadType, "{\"keyid\":\"x\"}"), "DSSE envelope: signature without 'sig'"},
      {make_env("", kInTotoPayloadType, "{\"sig\":\"*\"}"), "DSSE envelope: 'sig' is not valid base64"},
  };
  for (const auto& c : cases) {
    auto r = verify_envelope(c.env, {&k}, 1);
    ASSERT_FALSE(r) << c.env;
    EXPECT_EQ(r.error().message(), c.msg) << c.env;
  }
}

TEST(Keys, PemRoundTripPermissionsAndNullParamsSpki) {
  auto dir = std::move(TempDir::create("attest-keys")).value();
  Ed25519Key key = std::move(Ed25519Key::generate()).value();
  std::string path = dir.path() + "/k.pem";
  ASSERT_TRUE(save_private_key(key, path));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(check_private_key_permissions(path));
  EXPECT_FALSE(save_private_key(key, path));  // never overwrites
  auto loaded = Ed25519Key::load(path);
  ASSERT_TRUE(loaded);
  EXPECT_TRUE(loaded->has_private());
  EXPECT_EQ(loaded->keyid(), key.keyid());
  auto pub = Ed25519Key::load(path + ".pub");
  ASSERT_TRUE(pub);
  EXPECT_FALSE(pub->has_private());
  EXPECT_EQ(pub->keyid(), key.keyid());
  ::chmod(path.c_str(), 0644);
  auto perm = check_private_key_permissions(path);
  ASSERT_FALSE(perm);
  EXPECT_EQ(perm.error().code(), ErrorCode::kPermissionDenied);

  // rebuilderd / in-toto-rs SPKI with NULL parameters (46 bytes).
  ByteVector der = {0x30, 0x2c, 0x30, 0x07, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x05, 0x00, 0x03, 0x21, 0x00};
  auto raw = *from_hex(kPub);
  der.insert(der.end(), raw.begin(), raw.end());
  std::string pem = "-----BEGIN PUBLIC KEY-----\n" + base64_encode(der) + "\n-----END PUBLIC KEY-----\n";
  auto nullparams = Ed25519Key::from_pem(pem);
  ASSERT_TRUE(nullparams) << nullparams.error().to_string();
  EXPECT_EQ(nullparams->keyid(), kKeyid);  // keyid is always of the RFC 8410 form
  // Wrong OID (X25519 1.3.101.110) is refused.
  der[8] = 0x6e;
  pem = "-----BEGIN PUBLIC KEY-----\n" + base64_encode(der) + "\n-----END PUBLIC KEY-----\n";
  auto bad = Ed25519Key::from_pem(pem);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "public key is not an Ed25519 SubjectPublicKeyInfo");
}

TEST(Keys, KeySetJsonRotation) {
  Ed25519Key a = std::move(Ed25519Key::generate()).value();
  Ed25519Key b = std::move(Ed25519Key::generate()).value();
  KeySet set;
  set.add({a.keyid(), a.public_pem(), "", "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z", false});
  set.add({b.keyid(), b.public_pem(), "", "2026-01-01T00:00:00Z", "", true});
  auto parsed = KeySet::from_json(set.to_json());
  ASSERT_TRUE(parsed);
  ASSERT_EQ(parsed->keys().size(), 2u);
  EXPECT_TRUE(parsed->valid_at(a.keyid(), "2025-06-01T00:00:00Z"));
  EXPECT_FALSE(parsed->valid_at(a.keyid(), "2026-06-01T00:00:00Z"));
  EXPECT_TRUE(parsed->valid_at(b.keyid(), "2026-06-01T00:00:00Z"));
  EXPECT_TRUE(parsed->keys()[1].current);
}

// Signs with our code; verifies with the openssl command-line tool.
TEST(Dsse, ExternalOpensslVerifies) {
  if (!have_program("openssl")) KMR_SKIP_OR_FAIL("openssl not installed");
  auto dir = std::move(TempDir::create("attest-ossl")).value();
  Ed25519Key key = std::move(Ed25519Key::generate()).value();
  std::string payload = "{\"_type\":\"https://in-toto.io/Statement/v1\"}";
  auto env = sign_envelope(kInTotoPayloadType, as_bytes(payload), {&key});
  ASSERT_TRUE(env);
  // Take the signature out of the envelope text as an external tool would.
  auto sigpos = env->find("\"sig\":\"");
  ASSERT_NE(sigpos, std::string::npos);
  auto sigend = env->find('"', sigpos + 7);
  auto sig = base64_decode(env->substr(sigpos + 7, sigend - sigpos - 7));
  ASSERT_TRUE(sig);
  ASSERT_TRUE(write_file_atomic(dir.path() + "/sig", *sig));
  ASSERT_TRUE(write_file_atomic(dir.path() + "/pae.bin", pae(kInTotoPayloadType, as_bytes(payload))));
  ASSERT_TRUE(write_file_atomic(dir.path() + "/pub.pem", as_bytes(key.public_pem())));
  auto run = [&](const std::string& in) {
    return run_subprocess({"openssl", "pkeyutl", "-verify", "-rawin", "-pubin", "-inkey",
                           dir.path() + "/pub.pem", "-sigfile", dir.path() + "/sig", "-in", in});
  };
  auto r = run(dir.path() + "/pae.bin");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->success()) << r->out << r->err;
  EXPECT_NE(r->out.find("Signature Verified Successfully"), std::string::npos);
  // And openssl rejects a modified message (the check can fail).
  ASSERT_TRUE(write_file_atomic(dir.path() + "/bad.bin", as_bytes("DSSEv1 28 application/vnd.in-toto+json 1 x")));
  auto bad = run(dir.path() + "/bad.bin");
  ASSERT_TRUE(bad);
  EXPECT_FALSE(bad->success());
  // The keyid equals `openssl pkey -pubin -outform DER | sha256sum`.
  auto der = run_subprocess({"openssl", "pkey", "-pubin", "-in", dir.path() + "/pub.pem", "-outform", "DER",
                             "-out", dir.path() + "/pub.der"});
  ASSERT_TRUE(der && der->success());
  EXPECT_EQ(to_hex(*sha256_file(dir.path() + "/pub.der")), key.keyid());
  // A key generated by openssl loads in our code.
  auto gen = run_subprocess({"openssl", "genpkey", "-algorithm", "ed25519", "-out", dir.path() + "/o.pem"});
  ASSERT_TRUE(gen && gen->success());
  auto loaded = Ed25519Key::load(dir.path() + "/o.pem");
  ASSERT_TRUE(loaded) << loaded.error().to_string();
  EXPECT_TRUE(loaded->has_private());
}

}  // namespace
}  // namespace kmr::attest

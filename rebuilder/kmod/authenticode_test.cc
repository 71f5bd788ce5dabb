// Authenticode on a PE image made by binutils (objcopy --target
// efi-app-x86_64) and signed by sbsign (sbsigntool) with a test CA made by
// openssl; sbverify's answer is checked alongside.
#include "rebuilder/kmod/authenticode.h"

#include <gtest/gtest.h>

#include <string>

#include "rebuilder/base/file.h"
#include "rebuilder/base/require.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/kmod/test_util.h"

namespace kmr::kmod {
namespace {

using testing::sh;
using testing::tmpdir;
ByteVector file(const std::string& name) { return testing::read_tmp_file(name); }


CertificateSet trust(std::initializer_list<const char*> ders) {
  CertificateSet s;
  for (const char* d : ders) EXPECT_TRUE(s.add_der(file(std::string("pe/") + d), "keyring"));
  return s;
}

class AuthenticodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!run_subprocess({"sh", "-c", "command -v sbsign && command -v sbverify"})->success()) {
      KMR_SKIP_OR_FAIL("sbsign/sbverify (sbsigntool) not available");
    }
    static bool made = false;
    if (made) return;
    made = true;
    sh("rm -rf pe && mkdir pe && cd pe && "
       "printf 'int efi_main(void){return 0;}\\nint data_x = 42;\\n' > e.c && "
       "gcc -c -fpic -fno-stack-protector e.c -o e.o && ld -shared -Bsymbolic -nostdlib -e efi_main e.o -o e.so && "
       "objcopy -j .text -j .data -j .dynamic -j .rela --target efi-app-x86_64 e.so e.efi && "
       "openssl req -new -nodes -batch -x509 -newkey rsa:2048 -subj '/CN=Test CA' -keyout ca.key -out ca.crt 2>/dev/null && "
       "openssl req -new -nodes -batch -x509 -newkey rsa:2048 -subj '/CN=Other CA' -keyout oca.key -out oca.crt 2>/dev/null && "
       "openssl req -new -nodes -batch -newkey rsa:2048 -subj '/CN=Test Signer' -keyout s.key -out s.csr 2>/dev/null && "
       "openssl x509 -req -in s.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -out s.crt 2>/dev/null && "
       "for c in ca oca s; do openssl x509 -in $c.crt -outform DER -out $c.der; done && "
       "sbsign --key s.key --cert s.crt --output e.signed.efi e.efi 2>/dev/null && "
       "sbverify --cert ca.crt e.signed.efi > /dev/null 2>&1");
  }
};

TEST_F(AuthenticodeTest, SignedBySbsign) {
  const ByteVector img = file("pe/e.signed.efi");
  auto a = check_authenticode(img, trust({"ca.der"}), "e.signed.efi");
  ASSERT_TRUE(a) << a.error().to_string();
  ASSERT_TRUE(a->has_value());
  const AuthenticodeInfo& i = **a;
  EXPECT_EQ(i.signer, "CN=Test Signer");
  EXPECT_EQ(i.signer_issuer, "CN=Test CA");
  EXPECT_EQ(i.digest, "SHA256");
  EXPECT_TRUE(i.digest_matches);
  EXPECT_TRUE(i.signature_valid);
  EXPECT_TRUE(i.chain_trusted);
  EXPECT_TRUE(i.verified) << i.reason;
  EXPECT_GT(i.layout.cert_table_offset, 0u);
  // The signer's own certificate as the trust anchor also holds.
  EXPECT_TRUE((*check_authenticode(img, trust({"s.der"}), "x"))->verified);
}

TEST_F(AuthenticodeTest, NotVerifiedWithoutOrWithAWrongCa) {
  const ByteVector img = file("pe/e.signed.efi");
  auto none = check_authenticode(img, CertificateSet(), "e");
  ASSERT_TRUE(none && none->has_value());
  EXPECT_FALSE((*none)->verified);
  EXPECT_TRUE((*none)->digest_matches);
  EXPECT_TRUE((*none)->signature_valid);
  EXPECT_EQ((*none)->reason, "no trusted certificate given (--keyring)");
  EXPECT_EQ((*none)->signer, "CN=Test Signer");
  auto wrong = check_authenticode(img, trust({"oca.der"}), "e");
  ASSERT_TRUE(wrong && wrong->has_value());
  EXPECT_FALSE((*wrong)->verified);
  EXPECT_EQ((*wrong)->reason, "signer does not chain to a trusted certificate");
  // sbverify agrees.
  EXPECT_FALSE(run_subprocess({"sbverify", "--cert", tmpdir() + "/pe/oca.crt", tmpdir() + "/pe/e.signed.efi"})->success());
}

TEST_F(AuthenticodeTest, ModifiedImageFails) {
  ByteVector img = file("pe/e.signed.efi");
  img[0x400] ^= 0x01;  // inside the first section
  auto a = check_authenticode(img, trust({"ca.der"}), "e");
  ASSERT_TRUE(a && a->has_value());
  EXPECT_FALSE((*a)->digest_matches);
  EXPECT_FALSE((*a)->verified);
  EXPECT_EQ((*a)->reason, "image hash differs from the signed digest");
  ASSERT_TRUE(write_file_atomic(tmpdir() + "/pe/e.bad.efi", img));
  EXPECT_FALSE(run_subprocess({"sbverify", "--cert", tmpdir() + "/pe/ca.crt", tmpdir() + "/pe/e.bad.efi"})->success());
}

TEST_F(AuthenticodeTest, UnsignedAndNotPe) {
  auto u = check_authenticode(file("pe/e.efi"), trust({"ca.der"}), "e.efi");
  ASSERT_TRUE(u);
  EXPECT_FALSE(u->has_value());
  auto n = check_authenticode(as_bytes("not a PE image at all, just text padding padding padding padding"), CertificateSet(), "t");
  ASSERT_TRUE(n);
  EXPECT_FALSE(n->has_value());
}

TEST_F(AuthenticodeTest, HostileHeaders) {
  const ByteVector good = file("pe/e.signed.efi");
  auto layout = parse_pe_layout(good, "e");
  ASSERT_TRUE(layout && layout->has_value());
  const std::uint64_t dir = (*layout)->cert_dir_offset;
  auto put32 = [](ByteVector& b, std::uint64_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
  };
  {
    ByteVector b = good;
    put32(b, dir, static_cast<std::uint32_t>(b.size() - 4));  // table runs past the end
    EXPECT_EQ(check_authenticode(b, CertificateSet(), "e").error().message(), "e: PE certificate table outside the file");
  }
  {
    ByteVector b = good;
    put32(b, (*layout)->cert_table_offset, 0xfffffff0u);  // WIN_CERTIFICATE length
    EXPECT_EQ(check_authenticode(b, CertificateSet(), "e").error().message(),
              "e: WIN_CERTIFICATE length outside the table");
  }
  {
    ByteVector b = good;
    b[(*layout)->cert_table_offset + 6] = 1;  // certificate type
    EXPECT_EQ(check_authenticode(b, CertificateSet(), "e").error().message(),
              "e: WIN_CERTIFICATE is not PKCS#7 signed data");
  }
  {
    ByteVector b = good;
    b[(*layout)->cert_table_offset + 8 + 20] ^= 0xff;  // inside the PKCS#7 structure
    auto r = check_authenticode(b, CertificateSet(), "e");
    EXPECT_TRUE(!r || !(*r)->verified);
  }
  {
    ByteVector b = good;
    put32(b, 0x3c, 0xfffffff0u);  // e_lfanew
    auto r = check_authenticode(b, CertificateSet(), "e");
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->has_value());
  }
  // Every truncation parses or fails cleanly.
  for (std::size_t n = 0; n < good.size(); n += 97) {
    auto r = check_authenticode(Bytes(good).first(n), CertificateSet(), "t");
    if (r && r->has_value()) {
      EXPECT_FALSE((*r)->verified);
    }
  }
}

}  // namespace
}  // namespace kmr::kmod

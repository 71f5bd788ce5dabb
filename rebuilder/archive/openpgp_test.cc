// Detached and clearsigned OpenPGP signatures made with gpg, checked with the
// real verifiers (sqv, gpgv).
#include "rebuilder/archive/openpgp.h"

#include <gtest/gtest.h>

#include "rebuilder/base/require.h"

#include <cstdlib>
#include <fstream>

#include "rebuilder/base/subprocess.h"

namespace kmr::archive {
namespace {

class Pgp : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_program("gpg") || (!have_program("sqv") && !have_program("gpgv"))) KMR_SKIP_OR_FAIL("gpg/sqv missing");
    // gpg-agent's socket path must fit in sun_path (108 bytes); Bazel's
    // TEST_TMPDIR is often longer, so use a short private directory.
    char templ[] = "/tmp/kmrpgp.XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    d_ = templ;
    (void)run_subprocess({"mkdir", "-m", "700", "-p", d_ + "/home"});
    sh("gpg --batch --quiet --passphrase '' --quick-gen-key 'kmr test <t@kmr.invalid>' ed25519 sign never");
    sh("gpg --batch --export > " + d_ + "/keyring.gpg");
    std::ofstream(d_ + "/pkg.tar.zst") << "package bytes";
    sh("gpg --batch --quiet --detach-sign -o " + d_ + "/pkg.tar.zst.sig " + d_ + "/pkg.tar.zst");
    std::ofstream(d_ + "/Release") << "Origin: kmr\nSuite: test\n";
    sh("gpg --batch --quiet --clearsign -o " + d_ + "/InRelease " + d_ + "/Release");
  }
  void TearDown() override {
    if (d_.empty()) return;
    (void)run_subprocess({"sh", "-c", "GNUPGHOME=" + d_ + "/home gpgconf --kill gpg-agent"});
    (void)run_subprocess({"rm", "-rf", d_});
  }
  void sh(const std::string& cmd) {
    auto r = run_subprocess({"sh", "-c", "GNUPGHOME=" + d_ + "/home " + cmd});
    ASSERT_TRUE(r && r->success()) << cmd << ": " << (r ? r->err : "");
  }
  std::string d_;
};

TEST_F(Pgp, DetachedSignature) {
  auto r = verify_detached(d_ + "/keyring.gpg", d_ + "/pkg.tar.zst.sig", d_ + "/pkg.tar.zst");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->valid) << r->output;
  std::ofstream(d_ + "/pkg.tar.zst", std::ios::app) << "tampered";
  r = verify_detached(d_ + "/keyring.gpg", d_ + "/pkg.tar.zst.sig", d_ + "/pkg.tar.zst");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->valid);
}

TEST_F(Pgp, ClearsignedInRelease) {
  if (!have_program("gpgv")) KMR_SKIP_OR_FAIL("gpgv missing");
  auto r = verify_clearsigned(d_ + "/keyring.gpg", d_ + "/InRelease");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->valid) << r->output;
  auto text = run_subprocess({"sed", "-i", "s/Suite: test/Suite: evil/", d_ + "/InRelease"});
  ASSERT_TRUE(text);
  r = verify_clearsigned(d_ + "/keyring.gpg", d_ + "/InRelease");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->valid);
}

}  // namespace
}  // namespace kmr::archive

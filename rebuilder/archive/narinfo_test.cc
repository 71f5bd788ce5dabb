// The NAR behind a narinfo is checked against it before anyone compares it:
// a real binary cache made by Nix (`nix copy --to file://` with a generated
// signing key), then copies whose NAR was tampered with. FileHash/FileSize
// are not covered by the signature, so the copies that rewrite them still
// carry a valid Sig: only NarHash/NarSize catch those.
#include "rebuilder/archive/narinfo.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>

#include "rebuilder/archive/decompress.h"
#include "rebuilder/archive/nar.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/require.h"
#include "rebuilder/base/subprocess.h"

namespace kmr::archive {
namespace {

std::string run(const std::vector<std::string>& argv, const std::vector<std::string>& env = {}) {
  SubprocessOptions o;
  if (!env.empty()) {
    std::vector<std::string> e = env;
    for (char** v = environ; *v; ++v) e.emplace_back(*v);
    o.env = e;
  }
  auto r = run_subprocess(argv, o);
  EXPECT_TRUE(r && r->success()) << argv[0] << ": " << (r ? r->err : r.error().to_string());
  std::string out = r ? r->out : "";
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// "sha256:<nix32>" of a file, by Nix's own nix-hash.
std::string nix_file_hash(const std::string& path) {
  return "sha256:" + run({"nix-hash", "--type", "sha256", "--flat", "--base32", path});
}

class VerifiedNar : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* t : {"nix", "nix-store", "nix-hash", "xz"}) {
      if (!have_program(t)) KMR_SKIP_OR_FAIL(std::string(t) + " not installed");
    }
    const char* t = std::getenv("TEST_TMPDIR");
    tmp_ = std::string(t ? t : "/tmp") + "/verified-nar";
    run({"rm", "-rf", tmp_});
    run({"mkdir", "-p", tmp_ + "/tree/lib/modules"});
    std::ofstream(tmp_ + "/tree/bzImage") << std::string(3000, 'k');
    std::ofstream(tmp_ + "/tree/lib/modules/a.ko") << "module";
    const std::vector<std::string> env = {"NIX_CONFIG=extra-experimental-features = nix-command", "HOME=" + tmp_,
                                          "XDG_CACHE_HOME=" + tmp_ + "/xdg"};
    run({"nix-store", "--generate-binary-cache-key", "kmr-test-1", tmp_ + "/sk", tmp_ + "/pk"}, env);
    const std::string store_path = run({"nix", "store", "add-path", "--store", tmp_ + "/root", tmp_ + "/tree"}, env);
    ASSERT_FALSE(store_path.empty());
    run({"nix", "copy", "--store", tmp_ + "/root", "--to",
         "file://" + tmp_ + "/cache?compression=xz&secret-key=" + tmp_ + "/sk", store_path},
        env);
    auto text = read_text_file(tmp_ + "/cache/" + store_path.substr(store_path.rfind('/') + 1, 32) + ".narinfo", 1 << 20);
    ASSERT_TRUE(text);
    text_ = *text;
    auto info = parse_narinfo(text_, "t.narinfo");
    ASSERT_TRUE(info) << info.error().to_string();
    info_ = *info;
    ASSERT_TRUE(info_.file_size_given);
    ASSERT_FALSE(info_.file_hash.empty());
    auto file = read_file(tmp_ + "/cache/" + info_.url, 1 << 30);
    ASSERT_TRUE(file);
    file_ = *file;
    auto pk = read_text_file(tmp_ + "/pk", 1000);
    ASSERT_TRUE(pk);
    key_ = *parse_public_key(*pk);
  }

  // The cache's NAR with `edit` applied to the decompressed NAR, recompressed
  // by xz; FileHash/FileSize rewritten to match (they are unsigned).
  std::pair<NarInfo, ByteVector> renar(const std::function<void(ByteVector&)>& edit) {
    auto nar = decompress_all(file_, 1 << 30);
    EXPECT_TRUE(nar);
    edit(*nar);
    const std::string p = tmp_ + "/edited.nar";
    EXPECT_TRUE(write_file_atomic(p, *nar));
    run({"xz", "-f", "-k", p});
    auto xz = read_file(p + ".xz", 1 << 30);
    EXPECT_TRUE(xz);
    NarInfo info = info_;
    info.file_hash = nix_file_hash(p + ".xz");
    info.file_size = xz->size();
    return {info, *xz};
  }

  std::string tmp_, text_;
  NarInfo info_;
  ByteVector file_;
  PublicKey key_;
};

TEST_F(VerifiedNar, PristineCachePasses) {
  auto nar = load_verified_nar(file_, info_, info_.url);
  ASSERT_TRUE(nar) << nar.error().to_string();
  EXPECT_EQ(nar->size(), info_.nar_size);
  EXPECT_EQ(nix_file_hash(tmp_ + "/cache/" + info_.url), info_.file_hash);
  auto check = verify_narinfo_sigs(info_, {key_});
  ASSERT_TRUE(check);
  EXPECT_EQ(check->valid, 1);
}

TEST_F(VerifiedNar, ChangedFileFailsFileHash) {
  ByteVector f = file_;
  f[f.size() / 2] ^= 0x40;
  auto r = load_verified_nar(f, info_, "x.nar.xz");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kVerificationFailed);
  EXPECT_EQ(r.error().message().rfind("x.nar.xz: FileHash mismatch: the file has sha256:", 0), 0u) << r.error().message();
}

TEST_F(VerifiedNar, LongerFileFailsFileSize) {
  ByteVector f = file_;
  f.push_back(0);
  auto r = load_verified_nar(f, info_, "x.nar.xz");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "x.nar.xz: FileSize mismatch: the file has " + std::to_string(file_.size() + 1) +
                                     " bytes, the narinfo says " + std::to_string(file_.size()));
}

// Same size, one content byte changed, FileHash/FileSize rewritten: the
// signature still verifies (it covers NarHash, not the file), NarHash catches it.
TEST_F(VerifiedNar, SwappedNarFailsNarHashWithValidSignature) {
  auto [info, xz] = renar([](ByteVector& nar) {
    const std::string k(64, 'k');
    auto it = std::search(nar.begin(), nar.end(), k.begin(), k.end());
    ASSERT_NE(it, nar.end());
    *it = 'K';
  });
  auto check = verify_narinfo_sigs(info, {key_});
  ASSERT_TRUE(check);
  EXPECT_EQ(check->valid, 1);
  auto r = load_verified_nar(xz, info, "x.nar.xz");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kVerificationFailed);
  EXPECT_EQ(r.error().message().rfind("x.nar.xz: NarHash mismatch: the NAR has sha256:", 0), 0u) << r.error().message();
}

// A longer NAR: decompression stops at the signed NarSize.
TEST_F(VerifiedNar, LargerNarFailsNarSizeAtTheCap) {
  auto [info, xz] = renar([](ByteVector& nar) { nar.insert(nar.end(), 1 << 20, 0); });
  auto r = load_verified_nar(xz, info, "x.nar.xz");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "x.nar.xz: NarSize mismatch: the NAR decompresses to more than the narinfo's " +
                                     std::to_string(info_.nar_size) + " bytes");
  auto [shorter, xz2] = renar([](ByteVector& nar) { nar.resize(nar.size() - 8); });
  r = load_verified_nar(xz2, shorter, "y.nar.xz");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "y.nar.xz: NarSize mismatch: the NAR has " + std::to_string(info_.nar_size - 8) +
                                     " bytes, the narinfo says " + std::to_string(info_.nar_size));
}

TEST(DecodeSha256Field, Forms) {
  EXPECT_TRUE(decode_sha256_field("FileHash", "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"));
  EXPECT_TRUE(decode_sha256_field("FileHash", "sha256:" + std::string(64, 'a')));
  EXPECT_EQ(decode_sha256_field("FileHash", "md5:x").error().message(), "FileHash is not sha256: 'md5:x'");
  EXPECT_EQ(decode_sha256_field("FileHash", "sha256:zz").error().message(), "FileHash is not a valid sha256 hash: 'sha256:zz'");
}

}  // namespace
}  // namespace kmr::archive

// Verdicts over packages made from the fixtures helper's kernel
// (tests/fixtures/kernel/kbuild.sh): its proofs and roots come from the
// independent Python Merkle implementation, not from our engine.
#include "rebuilder/rebuild/verdict.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "rebuilder/base/require.h"
#include "rebuilder/base/subprocess.h"

namespace kmr::build {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using kmr::testing::test_tmpdir;

// Builds the fixture kernel (variant) into DIR and packs it the way Arch
// lays out `linux`: usr/lib/modules/<kver>/{vmlinuz,kernel/**.ko.zst,modules.order}.
std::string build_pkg(const std::string& name, const std::string& variant, int modules_compress_zst = 1) {
  const std::string dir = test_tmpdir() + "/" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string kbuild = fs::absolute("tests/fixtures/kernel/kbuild.sh").string();
  SubprocessOptions o;
  o.timeout = 300s;
  o.merge_stderr = true;
  o.cwd = dir;
  auto r = run_subprocess({"env", "SOURCE_DATE_EPOCH=1700000000", "KBUILD_BUILD_USER=linux", "KBUILD_BUILD_HOST=archlinux",
                           "KMR_VARIANT=" + variant, "O=" + dir + "/build", "INSTALL_MOD_PATH=" + dir + "/inst",
                           std::string("MODULE_COMPRESS=") + (modules_compress_zst ? "zst" : "none"),
                           "INSTALL_MOD_STRIP=1", "ZSTD_CLEVEL=3", "KERNEL_COMPRESS=gzip", "bash", kbuild, "all", "modules_install"},
                          o);
  EXPECT_TRUE(r && r->success()) << (r ? r->out : r.error().to_string());
  const std::string kver = "6.18.0-kmrfix";
  const std::string root = dir + "/pkg/usr/lib/modules";
  fs::create_directories(root);
  fs::copy(dir + "/inst/lib/modules/" + kver, root + "/" + kver, fs::copy_options::recursive);
  fs::copy_file(dir + "/build/arch/x86/boot/bzImage", root + "/" + kver + "/vmlinuz");
  const std::string pkg = dir + "/" + name + "-1-x86_64.pkg.tar.zst";
  o.cwd = dir + "/pkg";
  auto t = run_subprocess({"sh", "-c",
                           "tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -cf - usr | zstd -q -19 > " + pkg},
                          o);
  EXPECT_TRUE(t && t->success()) << (t ? t->out : t.error().to_string());
  return pkg;
}

Artifact read(const std::string& pkg) {
  auto a = read_artifact(pkg);
  EXPECT_TRUE(a) << a.error().to_string();
  return a ? *a : Artifact{};
}

class Verdicts : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pkgs_ = new std::map<std::string, std::string>;
    (*pkgs_)["pristine"] = build_pkg("pristine", "pristine");
    (*pkgs_)["pristine2"] = build_pkg("pristine2", "pristine");
    (*pkgs_)["seed"] = build_pkg("seed", "seed");
    (*pkgs_)["signed"] = build_pkg("signed", "signed");
    (*pkgs_)["signed2"] = build_pkg("signed2", "signed");
  }
  static void TearDownTestSuite() { delete pkgs_; }
  static std::map<std::string, std::string>* pkgs_;
};
std::map<std::string, std::string>* Verdicts::pkgs_ = nullptr;

TEST_F(Verdicts, PristineRebuildIsIdenticalAndMatches) {
  auto a = read(pkgs_->at("pristine"));
  auto b = read(pkgs_->at("pristine2"));
  EXPECT_EQ(a.format, "pkg.tar");
  ASSERT_EQ(a.modules.size(), a.modules_order.size());
  EXPECT_GE(a.modules.size(), 20u);
  ASSERT_TRUE(a.image_root);
  EXPECT_EQ(a.image_member, "usr/lib/modules/6.18.0-kmrfix/vmlinuz");
  // The root in the shipped image is the one the Python tool computed.
  std::ifstream txt(test_tmpdir() + "/pristine/build/module_hashes_root.txt");
  std::string levels, hex;
  txt >> levels >> hex;
  EXPECT_EQ(root_hex(a.image_root), hex);
  EXPECT_EQ(std::to_string(a.image_root->levels), levels);

  auto f = files_verdict(a, b);
  EXPECT_EQ(files_tier_name(f.tier), "identical");
  EXPECT_TRUE(f.differing.empty());
  auto m = module_root_verdict({&a}, {&b});
  EXPECT_EQ(module_root_name(m.verdict), "match") << m.note;
  EXPECT_EQ(m.verified, a.modules.size());
  EXPECT_EQ(root_hex(m.rebuilt), hex);
}

TEST_F(Verdicts, RecompressedPackageIsContentIdentical) {
  const std::string src = pkgs_->at("pristine");
  const std::string other = test_tmpdir() + "/pristine/recompressed-1-x86_64.pkg.tar.zst";
  auto r = run_subprocess({"sh", "-c", "zstd -dc " + src + " | zstd -q -3 > " + other});
  ASSERT_TRUE(r && r->success());
  auto a = read(src);
  auto b = read(other);
  auto f = files_verdict(a, b);
  EXPECT_EQ(files_tier_name(f.tier), "content-identical");
  EXPECT_TRUE(f.differing.empty());
}

TEST_F(Verdicts, SeedVariantIsDifferentAndNamesTheModule) {
  auto a = read(pkgs_->at("pristine"));
  auto b = read(pkgs_->at("seed"));
  auto f = files_verdict(a, b);
  EXPECT_EQ(files_tier_name(f.tier), "different");
  const std::vector<std::string> want = {"usr/lib/modules/6.18.0-kmrfix/kernel/drivers/char/kmr_seed.ko.zst",
                                         "usr/lib/modules/6.18.0-kmrfix/vmlinuz"};
  for (const auto& w : want) {
    EXPECT_NE(std::find(f.differing.begin(), f.differing.end(), w), f.differing.end()) << w;
  }
  auto m = module_root_verdict({&a}, {&b});
  EXPECT_EQ(module_root_name(m.verdict), "mismatch");
  EXPECT_NE(root_hex(m.rebuilt), root_hex(m.shipped));
}

TEST_F(Verdicts, EphemeralKeyVariantIsIdenticalModuloSignatures) {
  auto a = read(pkgs_->at("signed"));
  auto b = read(pkgs_->at("signed2"));
  ASSERT_FALSE(a.modules.empty());
  EXPECT_EQ(a.modules[0].trailer, kmod::TrailerKind::kPkcs7);
  EXPECT_TRUE(a.image_found);
  EXPECT_FALSE(a.image_root);
  auto f = files_verdict(a, b);
  EXPECT_EQ(files_tier_name(f.tier), "identical-modulo-signatures");
  // Every module is named (it differs as stored), nothing else.
  EXPECT_EQ(f.differing.size(), a.modules.size());
  for (const auto& d : f.differing) EXPECT_NE(d.find(".ko.zst"), std::string::npos) << d;
  auto m = module_root_verdict({&a}, {&b});
  EXPECT_EQ(module_root_name(m.verdict), "absent");
  EXPECT_EQ(m.note, "the shipped kernel has no .module_hashes section");
}

TEST_F(Verdicts, ContentRootEqualsTheEmbeddedRootAndComparesContents) {
  auto a = read(pkgs_->at("pristine"));
  auto b = read(pkgs_->at("pristine2"));
  auto c = content_root_verdict({&a}, {&b}, a.image_root);
  EXPECT_EQ(content_root_name(c.verdict), "match") << c.note;
  // The kernel hashes modules before appending proofs: the content root is
  // the root the independent Python tool computed and the image embeds.
  std::ifstream txt(test_tmpdir() + "/pristine/build/module_hashes_root.txt");
  std::string levels, hex;
  txt >> levels >> hex;
  EXPECT_EQ(root_hex(c.shipped), hex);
  EXPECT_EQ(root_hex(c.rebuilt), hex);
  auto seed = read(pkgs_->at("seed"));
  auto m = content_root_verdict({&a}, {&seed}, a.image_root);
  EXPECT_EQ(content_root_name(m.verdict), "mismatch");
  EXPECT_EQ(m.note, "the rebuilt modules' contents differ from the shipped ones");
  // A shipped image whose embedded root is not the shipped modules' content root.
  kmod::MerkleRoot other = *a.image_root;
  other.hash[0] ^= 1;
  EXPECT_EQ(content_root_verdict({&a}, {&b}, other).note,
            "the shipped content root differs from the root embedded in the shipped image");
  // Signed modules: the content root ignores the signatures.
  auto s1 = read(pkgs_->at("signed"));
  auto s2 = read(pkgs_->at("signed2"));
  auto sc = content_root_verdict({&s1}, {&s2}, std::nullopt);
  EXPECT_EQ(content_root_name(sc.verdict), "match") << sc.note;
  EXPECT_EQ(root_hex(sc.shipped), hex);  // same module contents as pristine
  // No modules on either side.
  Artifact empty;
  EXPECT_EQ(content_root_name(content_root_verdict({&empty}, {&empty}, std::nullopt).verdict), "absent");
  EXPECT_EQ(content_root_name(content_root_verdict({&a}, {&empty}, std::nullopt).verdict), "mismatch");
}

TEST_F(Verdicts, ModuloSignaturesNeedsVerifiedShippedSignatures) {
  // The fixture's signed kernel does not embed its signing certificate: its
  // module signatures cannot be verified, so the tier is "different".
  auto a = read(pkgs_->at("signed"));
  auto b = read(pkgs_->at("signed2"));
  FilesReport f = files_verdict(a, b);
  ASSERT_EQ(files_tier_name(f.tier), "identical-modulo-signatures");
  SignatureCheck c = require_verified_signatures(f, {&a});
  EXPECT_TRUE(c.checked);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(files_tier_name(f.tier), "different");
  EXPECT_EQ(c.signed_count, a.modules.size()) << c.note;
  EXPECT_EQ(c.verified, 0u);
  ASSERT_FALSE(c.failed.empty());
  EXPECT_NE(c.failed[0].reason.find("none of the 0 trusted certificate(s)"), std::string::npos) << c.failed[0].reason;
  EXPECT_NE(c.note.find("do not verify against the shipped kernel's certificates"), std::string::npos) << c.note;
  // Other tiers are left alone, and nothing is checked.
  FilesReport same = files_verdict(a, a);
  EXPECT_FALSE(require_verified_signatures(same, {&a}).checked);
  EXPECT_EQ(files_tier_name(same.tier), "identical");
}

TEST(ReproducibleRule, OneRule) {
  EXPECT_TRUE(is_reproducible(FilesTier::kIdentical, ModuleRoot::kMatch, ContentRoot::kMatch));
  EXPECT_TRUE(is_reproducible(FilesTier::kContentIdentical, ModuleRoot::kAbsent, ContentRoot::kMatch));
  EXPECT_TRUE(is_reproducible(FilesTier::kIdenticalModuloSignatures, ModuleRoot::kAbsent, ContentRoot::kMatch));
  EXPECT_TRUE(is_reproducible(FilesTier::kIdentical, ModuleRoot::kAbsent, ContentRoot::kAbsent));
  EXPECT_FALSE(is_reproducible(FilesTier::kDifferent, ModuleRoot::kMatch, ContentRoot::kMatch));
  EXPECT_FALSE(is_reproducible(FilesTier::kIdentical, ModuleRoot::kMismatch, ContentRoot::kMatch));
  EXPECT_FALSE(is_reproducible(FilesTier::kIdentical, ModuleRoot::kInvalid, ContentRoot::kMatch));
  EXPECT_FALSE(is_reproducible(FilesTier::kIdentical, ModuleRoot::kMatch, ContentRoot::kMismatch));
  // By name, as stored: missing fields (older verdicts) count as absent.
  EXPECT_TRUE(is_reproducible("identical-modulo-signatures", std::nullopt, std::nullopt));
  EXPECT_TRUE(is_reproducible("content-identical", "match", "match"));
  EXPECT_FALSE(is_reproducible("different", "match", "match"));
  EXPECT_FALSE(is_reproducible("identical", "invalid", std::nullopt));
  EXPECT_FALSE(is_reproducible("identical", "match", "mismatch"));
  EXPECT_FALSE(is_reproducible("build-failed", std::nullopt, std::nullopt));
  EXPECT_FALSE(is_reproducible("Identical", std::nullopt, std::nullopt));
}

TEST_F(Verdicts, TamperedShippedModuleIsInvalid) {
  // Flip one byte inside one module's code (not its proof) and repack.
  const std::string dir = test_tmpdir() + "/tampered";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string ko = "usr/lib/modules/6.18.0-kmrfix/kernel/drivers/net/dummy.ko";
  SubprocessOptions o;
  o.cwd = dir;
  o.merge_stderr = true;
  auto r = run_subprocess(
      {"sh", "-c",
       "zstd -dc " + pkgs_->at("pristine") + " | tar -xf - && ls " + ko + ".zst && zstd -q -d --rm " + ko + ".zst && "
       "printf '\\377' | dd of=" + ko + " bs=1 seek=100 conv=notrunc status=none && zstd -q --rm -19 " + ko + " && "
       "tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -cf - usr | zstd -q -19 > t-1-x86_64.pkg.tar.zst"},
      o);
  ASSERT_TRUE(r && r->success()) << (r ? r->out : "");
  auto shipped = read(dir + "/t-1-x86_64.pkg.tar.zst");
  auto rebuilt = read(pkgs_->at("pristine2"));
  auto m = module_root_verdict({&shipped}, {&rebuilt});
  EXPECT_EQ(module_root_name(m.verdict), "invalid");
  ASSERT_EQ(m.invalid.size(), 1u);
  EXPECT_EQ(m.invalid[0].module, ko + ".zst");
  EXPECT_NE(m.invalid[0].reason.find("does not verify"), std::string::npos) << m.invalid[0].reason;
  auto f = files_verdict(shipped, rebuilt);
  EXPECT_EQ(files_tier_name(f.tier), "different");
  ASSERT_EQ(f.differing.size(), 1u);
  EXPECT_EQ(f.differing[0], ko + ".zst");
}

// Kernel images that differ only where a build-time key or a signer reaches:
// PE images signed by sbsign with two test CAs, and ELF images linked by
// binutils around two openssl-made build-time certificates (the kernel's
// certificate-list layout, a GNU build-id). Packed as .pkg.tar.zst.
class MaskedImages : public ::testing::Test {
 protected:
  static std::string run(const std::string& script) {
    SubprocessOptions o;
    o.timeout = 300s;
    o.merge_stderr = true;
    o.cwd = test_tmpdir();
    auto r = run_subprocess({"sh", "-ec", script}, o);
    EXPECT_TRUE(r && r->success()) << script << "\n" << (r ? r->out : r.error().to_string());
    return r ? r->out : "";
  }
  static void SetUpTestSuite() {
    if (!run_subprocess({"sh", "-c", "command -v sbsign && command -v ld && command -v openssl"})->success()) return;
    run("rm -rf mask && mkdir mask && cd mask && "
        "printf 'int efi_main(void){return 0x5a5a5a5a;}\\n' > e.c && "
        "gcc -O1 -c -fpic -fno-stack-protector e.c -o e.o && ld -shared -Bsymbolic -nostdlib -e efi_main e.o -o e.so && "
        "objcopy -j .text --target efi-app-x86_64 e.so e.efi && truncate -s %8 e.efi && "
        "python3 -c \"d=bytearray(open('e.efi','rb').read()); i=d.find(bytes([0x5a]*4)); d[i]=0x5b; open('e2.efi','wb').write(d)\" && "
        "for n in a b; do "
        "openssl req -new -nodes -batch -x509 -newkey rsa:2048 -subj \"/CN=CA $n\" -keyout ca$n.key -out ca$n.crt 2>/dev/null && "
        "openssl req -new -nodes -batch -newkey rsa:2048 -subj \"/CN=Signer $n\" -keyout s$n.key -out s$n.csr 2>/dev/null && "
        "openssl x509 -req -in s$n.csr -CA ca$n.crt -CAkey ca$n.key -CAcreateserial -days 3650 -out s$n.crt 2>/dev/null; done && "
        "sbsign --key sa.key --cert sa.crt --output pe.a e.efi && sbsign --key sb.key --cert sb.crt --output pe.b e.efi && "
        "sbsign --key sb.key --cert sb.crt --output pe.code e2.efi && "
        "for n in 1 2; do openssl req -new -nodes -batch -x509 -newkey rsa:2048 -days 3650 -set_serial $n "
        "-subj '/CN=Build time autogenerated kernel key' -keyout k$n.key -outform DER -out k$n.der 2>/dev/null && "
        "printf '.section \".init.data\",\"aw\"\\n.globl system_certificate_list\\nsystem_certificate_list:\\n"
        "__module_cert_start:\\n.incbin \"k%s.der\"\\n__module_cert_end:\\n.text\\n.globl _start\\n_start: ret\\n' $n > c.S && "
        "as --64 c.S -o c.o && ld -m elf_x86_64 --build-id=sha1 -o elf.$n c.o; done && "
        "pack() { rm -rf p && mkdir -p p/usr/lib/modules/6.1.0-x && cp $2 p/usr/lib/modules/6.1.0-x/$3 && chmod 644 p/usr/lib/modules/6.1.0-x/$3 && echo same > p/usr/lib/modules/6.1.0-x/other && "
        "(cd p && tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -cf - usr) | zstd -q > $1-1-x86_64.pkg.tar.zst; }; "
        "pack pea pe.a vmlinuz && pack peb pe.b vmlinuz && pack pecode pe.code vmlinuz && pack unsigned e.efi vmlinuz && "
        "pack elf1 elf.1 vmlinux && pack elf2 elf.2 vmlinux");
  }
  void SetUp() override {
    if (!fs::exists(test_tmpdir() + "/mask/elf2-1-x86_64.pkg.tar.zst")) KMR_SKIP_OR_FAIL("sbsign, binutils or openssl not available");
  }
  static Artifact pkg(const std::string& name) { return read(test_tmpdir() + "/mask/" + name + "-1-x86_64.pkg.tar.zst"); }
};

TEST_F(MaskedImages, SignedByTwoSignersIsIdenticalModuloSignatures) {
  const Artifact a = pkg("pea"), b = pkg("peb");
  const std::string member = "usr/lib/modules/6.1.0-x/vmlinuz";
  ASSERT_TRUE(a.members.at(member).mask) << a.members.at(member).mask_error;
  EXPECT_NE(a.members.at(member).sha256, b.members.at(member).sha256);
  FilesReport f = files_verdict(a, b);
  EXPECT_EQ(files_tier_name(f.tier), "identical-modulo-signatures");
  EXPECT_EQ(f.differing, std::vector<std::string>{member});
  EXPECT_TRUE(f.mask_notes.empty());
  nlohmann::json j;
  add_masked_json(j, f);
  ASSERT_EQ(j["masked"].size(), 1u) << j.dump();
  EXPECT_EQ(j["masked"][0]["member"], member);
  const auto& ranges = j["masked"][0]["ranges"];
  ASSERT_EQ(ranges.size(), 3u) << j.dump();
  for (const auto& r : ranges) {
    EXPECT_EQ(r["what"], "authenticode");
    EXPECT_EQ(r["in"], "file");
  }
  EXPECT_EQ(ranges[2]["detail"], "certificate-table");
  EXPECT_EQ(ranges[2]["offset"].get<std::uint64_t>() + ranges[2]["length"].get<std::uint64_t>(),
            fs::file_size(test_tmpdir() + "/mask/pe.a"));
  // An unsigned rebuild of the signed image, too.
  EXPECT_EQ(files_tier_name(files_verdict(a, pkg("unsigned")).tier), "identical-modulo-signatures");
  // The tier still needs verified module signatures: these packages ship none.
  SignatureCheck c = require_verified_signatures(f, {&a});
  EXPECT_TRUE(c.checked);
  EXPECT_EQ(files_tier_name(f.tier), "different");
  EXPECT_EQ(c.note, "no shipped module carries a PKCS#7 signature");
}

TEST_F(MaskedImages, OneCodeByteIsDifferentWithTheReason) {
  const Artifact a = pkg("pea"), b = pkg("pecode");
  FilesReport f = files_verdict(a, b);
  EXPECT_EQ(files_tier_name(f.tier), "different");
  EXPECT_TRUE(f.masked.empty());
  ASSERT_EQ(f.mask_notes.size(), 1u);
  EXPECT_EQ(f.mask_notes[0].member, "usr/lib/modules/6.1.0-x/vmlinuz");
  EXPECT_EQ(f.mask_notes[0].note, "the images differ outside the masked ranges");
  // Several packages: members are prefixed like `differing`.
  FilesReport two = files_verdict(std::vector<const Artifact*>{&a, &a}, std::vector<const Artifact*>{&b, &a});
  ASSERT_EQ(two.mask_notes.size(), 1u);
  EXPECT_EQ(two.mask_notes[0].member, "pea-1-x86_64.pkg.tar.zst:usr/lib/modules/6.1.0-x/vmlinuz");
}

TEST_F(MaskedImages, BuildTimeCertificateAndBuildIdInVmlinux) {
  const Artifact a = pkg("elf1"), b = pkg("elf2");
  const std::string member = "usr/lib/modules/6.1.0-x/vmlinux";
  FilesReport f = files_verdict(a, b);
  EXPECT_EQ(files_tier_name(f.tier), "identical-modulo-signatures");
  ASSERT_EQ(f.masked.size(), 1u);
  EXPECT_EQ(f.masked[0].member, member);
  // The certificate sits where Python finds its DER in the file.
  const std::string at = run("python3 -c \"d=open('mask/elf.1','rb').read(); c=open('mask/k1.der','rb').read(); "
                             "print(d.find(c), len(c))\"");
  std::uint64_t off = 0, len = 0;
  ASSERT_EQ(std::sscanf(at.c_str(), "%lu %lu", &off, &len), 2) << at;
  nlohmann::json j;
  add_masked_json(j, f);
  const auto& ranges = j["masked"][0]["ranges"];
  ASSERT_EQ(ranges.size(), 2u) << j.dump();
  EXPECT_EQ(ranges[0]["what"], "build-id");
  EXPECT_EQ(ranges[0]["length"], 20);
  EXPECT_EQ(ranges[1]["what"], "certificate");
  EXPECT_EQ(ranges[1]["in"], "vmlinux");
  EXPECT_EQ(ranges[1]["offset"], off);
  EXPECT_EQ(ranges[1]["length"], len);
  EXPECT_TRUE(j["mask_notes"].empty());
}

}  // namespace
}  // namespace kmr::build

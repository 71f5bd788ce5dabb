// Package formats against packages made by the distros' own tools
// (dpkg-deb, rpmbuild) plus hostile hand-made inputs.
#include <gtest/gtest.h>

#include "rebuilder/base/require.h"
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "rebuilder/archive/arch_meta.h"
#include "rebuilder/archive/deb.h"
#include "rebuilder/archive/deb822.h"
#include "rebuilder/archive/rpm.h"
#include "rebuilder/archive/rpmmd.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/subprocess.h"

namespace kmr::archive {
namespace {

std::string tmpdir(const std::string& sub) {
  const char* t = std::getenv("TEST_TMPDIR");
  std::string d = std::string(t ? t : "/tmp") + "/" + sub;
  (void)run_subprocess({"rm", "-rf", d});
  (void)run_subprocess({"mkdir", "-p", d});
  return d;
}

void sh(const std::string& cmd) {
  auto r = run_subprocess({"sh", "-c", cmd});
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->success()) << cmd << "\n" << r->out << r->err;
}

struct Collected {
  std::vector<std::string> paths;
  std::map<std::string, std::string> content;
};

Visitor collector(Collected& c) {
  return [&c](const Entry& e, MemberStream& s) -> Result<void> {
    c.paths.push_back(e.path);
    KMR_ASSIGN_OR_RETURN(auto b, s.read_all(1 << 20));
    c.content[e.path] = std::string(b.begin(), b.end());
    return ok();
  };
}

TEST(Deb, ReadsDpkgDebBuild) {
  if (!have_program("dpkg-deb")) KMR_SKIP_OR_FAIL("dpkg-deb not installed");
  const std::string d = tmpdir("deb");
  sh("mkdir -p " + d + "/root/DEBIAN " + d + "/root/boot " + d + "/root/lib/modules/6.1.0-t/kernel && "
     "printf 'Package: linux-image-t\\nVersion: 6.1.1-1\\nArchitecture: amd64\\nMaintainer: K <k@x>\\n"
     "Description: test\\n multi\\n' > " + d + "/root/DEBIAN/control && "
     "printf IMG > " + d + "/root/boot/vmlinuz-6.1.0-t && printf MOD > " + d +
     "/root/lib/modules/6.1.0-t/kernel/a.ko && dpkg-deb -Zxz --root-owner-group --build " + d + "/root " + d + "/t.deb >/dev/null");
  auto fs = FileStream::open(d + "/t.deb");
  ASSERT_TRUE(fs);
  Collected c;
  Visitor v = collector(c);
  ReaderOptions o;
  o.name = "t.deb";
  auto deb = read_deb(**fs, o, &v);
  ASSERT_TRUE(deb) << deb.error().to_string();
  EXPECT_EQ(deb->format_version, "2.0");
  EXPECT_EQ(deb->package(), "linux-image-t");
  EXPECT_EQ(deb->version(), "6.1.1-1");
  EXPECT_EQ(deb->control.get_or("Description"), "test\nmulti");
  EXPECT_EQ(deb->data_member, "data.tar.xz");
  EXPECT_EQ(c.content["boot/vmlinuz-6.1.0-t"], "IMG");
  EXPECT_EQ(c.content["lib/modules/6.1.0-t/kernel/a.ko"], "MOD");

  // Truncated .deb: the error names the nested member.
  sh("head -c $(( $(stat -c %s " + d + "/t.deb) - 60 )) " + d + "/t.deb > " + d + "/trunc.deb");
  auto fs2 = FileStream::open(d + "/trunc.deb");
  auto bad = read_deb(**fs2, o, &v);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message().rfind("t.deb: ", 0), 0u) << bad.error().message();
}

class RealRpm : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_program("rpmbuild")) KMR_SKIP_OR_FAIL("rpmbuild not installed");
    d_ = tmpdir("rpm");
    std::ofstream(d_ + "/k.spec") << "Name: kernel-test\nVersion: 6.1.2\nRelease: 3.1\nSummary: t\nLicense: GPL\n"
                                     "BuildArch: x86_64\n%description\nt\n%install\n"
                                     "mkdir -p %{buildroot}/usr/lib/modules/6.1.2-3-default/kernel\n"
                                     "printf IMG > %{buildroot}/usr/lib/modules/6.1.2-3-default/vmlinuz\n"
                                     "printf MOD > %{buildroot}/usr/lib/modules/6.1.2-3-default/kernel/a.ko\n"
                                     "%files\n/usr/lib/modules\n";
    sh("HOME=" + d_ + " rpmbuild --quiet -bb --define '_topdir " + d_ + "/top' --define '_binary_payload w9.xzdio' "
       "--define 'distribution obs://build.example/proj/repo/abc-kernel-test' "
       "--define '_buildhost buildhost' " + d_ + "/k.spec >/dev/null 2>&1");
    rpm_ = d_ + "/top/RPMS/x86_64/kernel-test-6.1.2-3.1.x86_64.rpm";
  }
  std::string d_, rpm_;
};

TEST_F(RealRpm, ReadsRpmbuildOutput) {
  auto fs = FileStream::open(rpm_);
  ASSERT_TRUE(fs);
  Collected c;
  Visitor v = collector(c);
  ReaderOptions o;
  o.name = "k.rpm";
  auto p = read_rpm(**fs, o, &v);
  ASSERT_TRUE(p) << p.error().to_string();
  EXPECT_EQ(p->nevra(), "kernel-test-6.1.2-3.1.x86_64");
  EXPECT_EQ(p->buildhost, "buildhost");
  EXPECT_EQ(p->payload_compressor, "xz");
  EXPECT_TRUE(p->header_sha256_ok);
  ASSERT_TRUE(p->payload_digest_ok.has_value());
  EXPECT_TRUE(*p->payload_digest_ok);
  EXPECT_EQ(c.content["usr/lib/modules/6.1.2-3-default/vmlinuz"], "IMG");
  EXPECT_EQ(c.content["usr/lib/modules/6.1.2-3-default/kernel/a.ko"], "MOD");
}

TEST_F(RealRpm, HostileHeaders) {
  auto bytes = read_file(rpm_, 64 << 20);
  ASSERT_TRUE(bytes);
  ByteVector& b = *bytes;
  auto be32 = [&](std::size_t off) {
    return (std::uint32_t{b[off]} << 24) | (std::uint32_t{b[off + 1]} << 16) | (std::uint32_t{b[off + 2]} << 8) | b[off + 3];
  };
  auto put32 = [&](ByteVector& v, std::size_t off, std::uint32_t x) {
    v[off] = static_cast<std::uint8_t>(x >> 24);
    v[off + 1] = static_cast<std::uint8_t>(x >> 16);
    v[off + 2] = static_cast<std::uint8_t>(x >> 8);
    v[off + 3] = static_cast<std::uint8_t>(x);
  };
  const std::size_t sig = 96;
  const std::uint32_t sig_n = be32(sig + 8), sig_h = be32(sig + 12);
  std::size_t hdr = sig + 16 + sig_n * 16 + sig_h;
  hdr = (hdr + 7) / 8 * 8;
  const std::uint32_t hsize = be32(hdr + 12);
  auto err = [&](const ByteVector& v) {
    MemoryStream ms(v);
    ReaderOptions o;
    o.name = "k.rpm";
    auto r = read_rpm(ms, o, nullptr);
    return r ? std::string("no error") : r.error().message();
  };
  ByteVector v = b;
  put32(v, hdr + 16 + 8, hsize + 100);  // first entry's offset
  const std::uint32_t tag0 = be32(hdr + 16);
  EXPECT_EQ(err(v), "k.rpm: RPM header: index entry 0 (tag " + std::to_string(tag0) + "): offset " +
                        std::to_string(hsize + 100) + " out of range (data " + std::to_string(hsize) + " bytes)");
  v = b;
  put32(v, hdr + 8, 0x10000);
  EXPECT_EQ(err(v), "k.rpm: RPM header: index count 65536 out of range");
  v = b;
  put32(v, hdr + 12, 0x7fffffff);
  EXPECT_EQ(err(v), "k.rpm: RPM header: data size 2147483647 out of range");
  v = b;
  // An INT32 entry whose count runs past the store: find one.
  const std::uint32_t n = be32(hdr + 8);
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::size_t e = hdr + 16 + i * 16;
    if (be32(e + 4) == 4) {
      put32(v, e + 12, hsize);
      EXPECT_EQ(err(v), "k.rpm: RPM header: index entry " + std::to_string(i) + " (tag " + std::to_string(be32(e)) +
                            "): " + std::to_string(hsize) + " items at offset " + std::to_string(be32(e + 8)) +
                            " run past the data (" + std::to_string(hsize) + " bytes)");
      break;
    }
  }
  v = b;
  v.resize(hdr + 100);
  EXPECT_EQ(err(v), "k.rpm: RPM header: truncated");
  v = b;
  v[hdr + 16 + n * 16 + 3] ^= 1;  // a byte of the store: header digest breaks
  EXPECT_EQ(err(v), "k.rpm: RPM header SHA256 does not match the signature header");
  v = b;
  v[0] = 0;
  EXPECT_EQ(err(v), "k.rpm: not an RPM (bad lead magic)");
}

TEST_F(RealRpm, RpmMdRepositoryFromCreaterepo) {
  if (!have_program("createrepo_c")) KMR_SKIP_OR_FAIL("createrepo_c not installed");
  sh("mkdir -p " + d_ + "/repo/x86_64 && cp " + rpm_ + " " + d_ + "/repo/x86_64/ && createrepo_c -q " + d_ + "/repo");
  auto repomd = read_text_file(d_ + "/repo/repodata/repomd.xml", 1 << 20);
  ASSERT_TRUE(repomd);
  auto data = parse_repomd(*repomd, "repomd.xml");
  ASSERT_TRUE(data) << data.error().to_string();
  const RepoMdData* primary = nullptr;
  for (const auto& d : *data) {
    if (d.type == "primary") primary = &d;
  }
  ASSERT_NE(primary, nullptr);
  auto gz = read_file(d_ + "/repo/" + primary->location, 64 << 20);
  ASSERT_TRUE(gz);
  EXPECT_TRUE(check_digest(as_string_view(*gz), primary->checksum_type, primary->checksum, primary->location));
  auto xml = decompress_bytes(*gz, 64 << 20, primary->location);
  ASSERT_TRUE(xml) << xml.error().to_string();
  EXPECT_TRUE(check_digest(as_string_view(*xml), primary->checksum_type, primary->open_checksum, "primary.xml"));
  auto pkgs = parse_primary(as_string_view(*xml), "primary.xml");
  ASSERT_TRUE(pkgs) << pkgs.error().to_string();
  ASSERT_EQ(pkgs->size(), 1u);
  const RpmMdPackage& p = (*pkgs)[0];
  EXPECT_EQ(p.name, "kernel-test");
  EXPECT_EQ(p.version, "6.1.2");
  EXPECT_EQ(p.release, "3.1");
  EXPECT_EQ(p.buildhost, "buildhost");
  EXPECT_EQ(p.location, "x86_64/kernel-test-6.1.2-3.1.x86_64.rpm");
  auto rpm = read_file(rpm_, 64 << 20);
  ASSERT_TRUE(rpm);
  EXPECT_TRUE(check_digest(as_string_view(*rpm), p.checksum_type, p.checksum, p.location));
  // A package whose bytes changed no longer matches the index.
  (*rpm)[rpm->size() / 2] ^= 1;
  auto bad = check_digest(as_string_view(*rpm), p.checksum_type, p.checksum, p.location);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::kVerificationFailed);
  EXPECT_EQ(bad.error().message(), p.location + ": sha256 " + sha256_hex(*rpm) + " does not match the index (" +
                                       p.checksum + ")");
}

TEST(RpmMd, HostileXml) {
  auto err = [](std::string_view x) {
    auto r = parse_repomd(x, "repomd.xml");
    return r ? std::string("no error") : r.error().message();
  };
  EXPECT_EQ(err("<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"b\">]><repomd/>"),
            "repomd.xml: XML: DOCTYPE and declarations are not allowed at offset 21");
  EXPECT_EQ(err("<repomd><data></repomd>"), "repomd.xml: XML: end tag </repomd> does not match at offset 23");
  EXPECT_EQ(err("<repomd>&xxe;</repomd>"), "repomd.xml: XML: unknown entity '&xxe;' at offset 8");
  EXPECT_EQ(err("<repomd><data type=\"primary\"><location href=\"../../etc/passwd\"/></data></repomd>"),
            "repomd.xml: <data type=\"primary\"> has a bad location '../../etc/passwd'");
  EXPECT_EQ(err("<metadata/>"), "repomd.xml: root element is <metadata>, not <repomd>");
  EXPECT_EQ(err("<repomd>"), "repomd.xml: XML: unterminated element <repomd> at offset 8");
  std::string deep;
  for (int i = 0; i < 70; ++i) deep += "<a>";
  EXPECT_EQ(parse_primary("<metadata>" + deep, "p").error().message(), "p: XML: nesting deeper than 64 at offset 202");
  auto ok_entities = parse_repomd("<repomd><data type=\"a&amp;b&#x41;\"><location href=\"x\"/></data></repomd>", "r");
  ASSERT_TRUE(ok_entities);
  EXPECT_EQ((*ok_entities)[0].type, "a&bA");
}

TEST(Deb822, ParsesAndRejects) {
  auto p = parse_deb822("Package: a\nDescription: x\n y\n .\n\n\nPackage: b\n", "Packages");
  ASSERT_TRUE(p) << p.error().to_string();
  ASSERT_EQ(p->size(), 2u);
  EXPECT_EQ((*p)[0].get_or("description"), "x\ny\n.");
  EXPECT_EQ((*p)[1].get_or("Package"), "b");
  EXPECT_EQ(parse_deb822(" cont\n", "P").error().message(), "P: line 1: continuation line without a field");
  EXPECT_EQ(parse_deb822("Package a\n", "P").error().message(), "P: line 1: expected 'Field: value'");
  EXPECT_EQ(parse_deb822("A: 1\na: 2\n", "P").error().message(), "P: line 2: duplicate field 'a'");
  Deb822Options o;
  o.limits.max_line_len = 50;
  EXPECT_EQ(parse_deb822("A: " + std::string(60, 'x') + "\n", "P", o).error().message(),
            "P: line 1 longer than 50 bytes");
  EXPECT_EQ(parse_deb822(std::string("A: x\0y\n", 7), "P").error().message(), "P: line 1: NUL byte");
}

TEST(Deb822, ClearsignedReleaseChain) {
  const std::string packages = "Package: linux-image\nVersion: 1\n";
  const std::string h = sha256_hex(as_bytes(packages));
  const std::string inrelease = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\nSHA256:\n " + h +
                                " " + std::to_string(packages.size()) +
                                " main/binary-amd64/Packages\n- -not-a-dash\n-----BEGIN PGP SIGNATURE-----\n\nxx\n"
                                "-----END PGP SIGNATURE-----\n";
  auto body = strip_clearsign(inrelease, "InRelease");
  ASSERT_TRUE(body);
  EXPECT_EQ(body->substr(0, 15), "Origin: Debian\n");
  auto paras = parse_deb822(inrelease, "InRelease");
  ASSERT_FALSE(paras);  // "-not-a-dash" line has no colon
  std::string fixed = inrelease;
  fixed.replace(fixed.find("- -not-a-dash\n"), 14, "");
  paras = parse_deb822(fixed, "InRelease");
  ASSERT_TRUE(paras) << paras.error().to_string();
  auto files = release_sha256((*paras)[0], "InRelease");
  ASSERT_TRUE(files);
  EXPECT_TRUE(check_release_entry(*files, "main/binary-amd64/Packages", packages));
  auto bad = check_release_entry(*files, "main/binary-amd64/Packages", packages + " ");
  EXPECT_EQ(bad.error().message(), "main/binary-amd64/Packages: size " + std::to_string(packages.size() + 1) +
                                       " does not match Release (" + std::to_string(packages.size()) + ")");
  std::string tampered = packages;
  tampered[0] = 'p';
  bad = check_release_entry(*files, "main/binary-amd64/Packages", tampered);
  EXPECT_EQ(bad.error().message(), "main/binary-amd64/Packages: SHA256 " + sha256_hex(as_bytes(tampered)) +
                                       " does not match Release (" + h + ")");
  EXPECT_EQ(strip_clearsign("-----BEGIN PGP SIGNED MESSAGE-----\nHash: x\n\nA: b\n", "R").error().message(),
            "R: clearsigned message without a signature");
}

TEST(Deb822, Buildinfo) {
  auto b = parse_deb_buildinfo(
      "Format: 1.0\nSource: linux-signed-amd64\nBinary: linux-image-6.1.0-56-amd64\nArchitecture: amd64\n"
      "Version: 6.1.192+2\nBuild-Date: Sat, 01 Nov 2025 10:00:00 +0000\nInstalled-Build-Depends:\n gcc-12 (= 12.2.0-14),\n"
      " make (= 4.3-4.1)\nEnvironment:\n DEB_BUILD_OPTIONS=\"parallel=4\"\n SOURCE_DATE_EPOCH=\"1\"\n",
      "x.buildinfo");
  ASSERT_TRUE(b) << b.error().to_string();
  EXPECT_EQ(b->installed_build_depends, (std::vector<std::string>{"gcc-12 (= 12.2.0-14)", "make (= 4.3-4.1)"}));
  EXPECT_EQ(b->environment.size(), 2u);
  EXPECT_EQ(b->build_date, "Sat, 01 Nov 2025 10:00:00 +0000");
  EXPECT_EQ(parse_deb_buildinfo("Source: x\n", "x.buildinfo").error().message(), "x.buildinfo: missing Format");
}

TEST(ArchMeta, RepoAddDatabase) {
  if (!have_program("repo-add") || !have_program("bsdtar")) KMR_SKIP_OR_FAIL("repo-add/bsdtar not installed");
  const std::string d = tmpdir("arch");
  sh("mkdir -p " + d + "/p/usr/lib/modules/6.18.0-t && printf IMG > " + d + "/p/usr/lib/modules/6.18.0-t/vmlinuz && "
     "printf 'pkgname = linux-t\\npkgbase = linux-t\\npkgver = 6.18.0-1\\npkgdesc = t\\nbuilddate = 1767225600\\n"
     "packager = K <k@x>\\nsize = 3\\narch = x86_64\\n' > " + d + "/p/.PKGINFO && "
     "cd " + d + "/p && bsdtar --zstd -cf ../linux-t-6.18.0-1-x86_64.pkg.tar.zst .PKGINFO usr && cd .. && "
     "repo-add -q t.db.tar.gz linux-t-6.18.0-1-x86_64.pkg.tar.zst >/dev/null 2>&1");
  auto fs = FileStream::open(d + "/t.db.tar.gz");
  ASSERT_TRUE(fs);
  ReaderOptions o;
  o.name = "t.db";
  auto pkgs = read_repo_db(**fs, o);
  ASSERT_TRUE(pkgs) << pkgs.error().to_string();
  ASSERT_EQ(pkgs->size(), 1u);
  const RepoPackage& p = (*pkgs)[0];
  EXPECT_EQ(p.name, "linux-t");
  EXPECT_EQ(p.version, "6.18.0-1");
  EXPECT_EQ(p.filename, "linux-t-6.18.0-1-x86_64.pkg.tar.zst");
  EXPECT_EQ(p.builddate, 1767225600);
  auto file = read_file(d + "/" + p.filename, 1 << 20);
  ASSERT_TRUE(file);
  EXPECT_EQ(p.sha256, sha256_hex(*file));
  EXPECT_EQ(p.csize, file->size());
}

TEST(Deb, AptFtparchiveReleaseChain) {
  if (!have_program("dpkg-deb") || !have_program("apt-ftparchive")) KMR_SKIP_OR_FAIL("dpkg-deb/apt-ftparchive missing");
  const std::string d = tmpdir("apt");
  sh("mkdir -p " + d + "/root/DEBIAN " + d + "/pool && printf 'Package: k\\nVersion: 1\\nArchitecture: amd64\\n"
     "Maintainer: K <k@x>\\nDescription: t\\n' > " + d + "/root/DEBIAN/control && "
     "dpkg-deb --root-owner-group --build " + d + "/root " + d + "/pool/k_1_amd64.deb >/dev/null && cd " + d +
     " && mkdir -p dists/s/main/binary-amd64 && apt-ftparchive packages pool > dists/s/main/binary-amd64/Packages && "
     "apt-ftparchive release dists/s > dists/s/Release");
  auto release_text = read_text_file(d + "/dists/s/Release", 1 << 20);
  auto packages_text = read_text_file(d + "/dists/s/main/binary-amd64/Packages", 1 << 20);
  ASSERT_TRUE(release_text && packages_text);
  auto release = parse_deb822(*release_text, "Release");
  ASSERT_TRUE(release) << release.error().to_string();
  auto files = release_sha256((*release)[0], "Release");
  ASSERT_TRUE(files) << files.error().to_string();
  EXPECT_TRUE(check_release_entry(*files, "main/binary-amd64/Packages", *packages_text));
  auto tampered = check_release_entry(*files, "main/binary-amd64/Packages", *packages_text + "X: y\n");
  ASSERT_FALSE(tampered);
  EXPECT_EQ(tampered.error().code(), ErrorCode::kVerificationFailed);
  auto packages = parse_deb822(*packages_text, "Packages");
  ASSERT_TRUE(packages);
  ASSERT_EQ(packages->size(), 1u);
  auto deb = read_file(d + "/pool/k_1_amd64.deb", 1 << 20);
  ASSERT_TRUE(deb);
  EXPECT_EQ((*packages)[0].get_or("SHA256"), sha256_hex(*deb));
  EXPECT_EQ((*packages)[0].get_or("Filename"), "pool/k_1_amd64.deb");
}

constexpr const char* kBuildinfoV2 =
    "format = 2\npkgname = linux\npkgbase = linux\npkgver = 6.18.5.arch1-1\npkgarch = x86_64\n"
    "pkgbuild_sha256sum = 0000000000000000000000000000000000000000000000000000000000000000\n"
    "packager = Jan <jan@example.org>\nbuilddate = 1700000000\nbuilddir = /build\nstartdir = /startdir\n"
    "buildtool = devtools\nbuildtoolver = 1:1.2.1-1-any\nbuildenv = !distcc\nbuildenv = color\noptions = !strip\n"
    "installed = gcc-14.2.1-1-x86_64\ninstalled = make-4.4.1-2-x86_64\n";

TEST(ArchMeta, BuildinfoV1AndV2) {
  auto b = parse_buildinfo(kBuildinfoV2, ".BUILDINFO");
  ASSERT_TRUE(b) << b.error().to_string();
  EXPECT_EQ(b->format, 2);
  EXPECT_EQ(b->builddate, 1700000000);
  EXPECT_EQ(b->buildenv, (std::vector<std::string>{"!distcc", "color"}));
  EXPECT_EQ(b->installed.size(), 2u);
  EXPECT_EQ(b->buildtoolver, "1:1.2.1-1-any");
  std::string v1 = kBuildinfoV2;
  v1.replace(0, 10, "format = 1");
  EXPECT_EQ(parse_buildinfo(v1, ".BUILDINFO").error().message(), ".BUILDINFO: unknown key 'startdir' for format 1");
  std::string dup = std::string(kBuildinfoV2) + "packager = x\n";
  EXPECT_EQ(parse_buildinfo(dup, ".BUILDINFO").error().message(), ".BUILDINFO: key 'packager' repeated");
  std::string noeq = std::string(kBuildinfoV2) + "garbage\n";
  EXPECT_EQ(parse_buildinfo(noeq, ".BUILDINFO").error().message(), ".BUILDINFO: line 18: expected 'key = value'");
  std::string huge = std::string(kBuildinfoV2) + "installed = " + std::string(2 << 20, 'x') + "\n";
  EXPECT_EQ(parse_buildinfo(huge, ".BUILDINFO").error().message(), ".BUILDINFO: line 18 longer than 1048576 bytes");
  std::string bad_date = kBuildinfoV2;
  bad_date.replace(bad_date.find("1700000000"), 10, "17000x0000");
  EXPECT_EQ(parse_buildinfo(bad_date, ".BUILDINFO").error().message(),
            ".BUILDINFO: builddate: '17000x0000' is not a number");
  EXPECT_EQ(parse_buildinfo("pkgname = x\n", ".BUILDINFO").error().message(),
            ".BUILDINFO: first line must be 'format = N'");
  EXPECT_EQ(parse_buildinfo("format = 2\n", ".BUILDINFO").error().message(), ".BUILDINFO: missing pkgname");
}

TEST(ArchMeta, PkginfoDescMtree) {
  auto p = parse_pkginfo("# Generated by makepkg\npkgname = linux\npkgver = 6.18.5.arch1-1\nbuilddate = 5\n"
                         "depend = coreutils\ndepend = kmod\n",
                         ".PKGINFO");
  ASSERT_TRUE(p) << p.error().to_string();
  EXPECT_EQ(p->pkgname, "linux");
  EXPECT_EQ(p->all.size(), 5u);
  auto d = parse_desc("%FILENAME%\nlinux-6.18.5.arch1-1-x86_64.pkg.tar.zst\n\n%NAME%\nlinux\n\n%VERSION%\n6.18.5.arch1-1\n\n"
                      "%CSIZE%\n143000000\n\n%DEPENDS%\ncoreutils\nkmod\n\n",
                      "desc");
  ASSERT_TRUE(d) << d.error().to_string();
  auto rp = repo_package_from_desc(*d, "desc");
  ASSERT_TRUE(rp) << rp.error().to_string();
  EXPECT_EQ(rp->csize, 143000000u);
  EXPECT_EQ(d->at("DEPENDS").size(), 2u);
  EXPECT_EQ(parse_desc("%NAME%\na\n\n%NAME%\nb\n", "desc").error().message(), "desc: line 4: section %NAME% repeated");
  EXPECT_EQ(parse_desc("NAME\n", "desc").error().message(), "desc: line 1: expected '%SECTION%'");
  auto m = parse_mtree("#mtree\n/set type=file uid=0 gid=0 mode=644\n./.PKGINFO time=1.0 size=5 "
                       "sha256digest=0000000000000000000000000000000000000000000000000000000000000000\n"
                       "./usr time=1.0 mode=755 type=dir\n./usr/a\\040b time=1.0 size=0\n",
                       ".MTREE");
  ASSERT_TRUE(m) << m.error().to_string();
  ASSERT_EQ(m->size(), 3u);
  EXPECT_EQ((*m)[2].path, "usr/a b");
  EXPECT_EQ((*m)[1].type, "dir");
  EXPECT_EQ((*m)[1].mode, 0755u);
  EXPECT_EQ(parse_mtree("./../x size=1\n", ".MTREE").error().message(),
            ".MTREE: line 1: '..' component in path './../x'");
}

}  // namespace
}  // namespace kmr::archive

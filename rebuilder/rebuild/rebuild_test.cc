// Real rebuilds of small packages whose shipped build description is hostile:
// the distro's own tools build them on the host first (dpkg-buildpackage,
// rpmbuild, bsdtar+zstd for the Arch package), then `rebuild` runs in the
// sandbox. Each hostile value would run a command that creates a marker
// file; the tests assert that no marker exists anywhere (host /tmp, the
// sandbox's /tmp, the work directory) and that the value is recorded
// literally in the pinned environment JSON. The Debian build also lists the
// tree it can see: the shipped packages and their repository are not in it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "rebuilder/base/file.h"
#include "rebuilder/base/require.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/rebuild/rebuild.h"

namespace kmr::build {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using kmr::testing::test_tmpdir;

// Runs a bash script in `dir`; the test fails with its output when it fails.
void run_script(const std::string& dir, const std::string& script) {
  SubprocessOptions o;
  o.timeout = 300s;
  o.merge_stderr = true;
  o.cwd = dir;
  auto r = run_subprocess({"bash", "-euc", script}, o);
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_TRUE(r->success()) << script << "\n" << r->out;
}

// Every file under `root` whose name contains `needle`.
std::vector<std::string> files_named(const std::string& root, const std::string& needle) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->path().filename().string().find(needle) != std::string::npos) out.push_back(it->path().string());
  }
  return out;
}

RebuildOptions keep_options(const std::string& sources = "") {
  RebuildOptions o;
  o.work_root = test_tmpdir() + "/work";
  o.keep = true;
  o.sources = sources;
  o.timeout = 10min;
  o.memory_bytes = 4ull << 30;
  return o;
}

bool sandbox_or_skip_reason(std::string& reason) {
  auto sa = sandbox_available();
  if (!sa) reason = "sandbox unavailable: " + sa.error().message();
  return static_cast<bool>(sa);
}

// The marker must not exist on the host nor in the build's work directory.
void expect_no_marker(const RebuildReport& rep, const std::string& marker) {
  EXPECT_FALSE(fs::exists("/tmp/" + marker)) << "/tmp/" << marker;
  ASSERT_FALSE(rep.work_dir.empty());
  EXPECT_EQ(files_named(rep.work_dir, marker), std::vector<std::string>{});
  EXPECT_EQ(files_named(test_tmpdir(), marker), std::vector<std::string>{});
}

// ---- Debian: .buildinfo Environment carrying PERL5OPT --------------------------

constexpr const char* kDebianPackage = R"SH(
mkdir -p kmr-meta-1.0/debian/source
cd kmr-meta-1.0
cat > debian/control <<'EOF'
Source: kmr-meta
Section: misc
Priority: optional
Maintainer: Kmr Test <kmr@example.org>
Standards-Version: 4.6.2
Rules-Requires-Root: no

Package: kmr-meta
Architecture: all
Description: kmr metadata test package
 Lists what the build can see.
EOF
cat > debian/changelog <<'EOF'
kmr-meta (1.0) unstable; urgency=medium

  * Test.

 -- Kmr Test <kmr@example.org>  Tue, 14 Nov 2023 22:13:20 +0000
EOF
echo "3.0 (native)" > debian/source/format
printf '%s\n' '#!/usr/bin/make -f' \
  'build build-arch build-indep:' '	true' \
  'clean:' '	rm -rf debian/tmp debian/files' \
  'binary binary-arch binary-indep:' \
  '	find / -path /proc -prune -o -path /sys -prune -o -path /dev -prune -o -print > ../visible.txt 2>/dev/null || true' \
  '	mkdir -p debian/tmp/DEBIAN debian/tmp/usr/share/doc/kmr-meta' \
  '	echo hello > debian/tmp/usr/share/doc/kmr-meta/README' \
  '	dpkg-gencontrol -pkmr-meta -Pdebian/tmp' \
  '	dpkg-deb --root-owner-group -Zxz -b debian/tmp ..' \
  '	dpkg-distaddfile kmr-meta_1.0_all.deb misc optional' > debian/rules
chmod +x debian/rules
cd ..
dpkg-source -b kmr-meta-1.0 > /dev/null
cd kmr-meta-1.0
SOURCE_DATE_EPOCH=1700000000 dpkg-buildpackage -us -uc -b -d > ../host-build.log 2>&1
cd ..
rm -rf kmr-meta-1.0 visible.txt
# The hostile variable, as dpkg-genbuildinfo would record one.
sed -i 's|^ SOURCE_DATE_EPOCH=| PERL5OPT="-M5;system(q{touch},q{/tmp/kmr-perl5opt-marker})"\n SOURCE_DATE_EPOCH=|' kmr-meta_1.0_amd64.buildinfo
grep -q '^ PERL5OPT=' kmr-meta_1.0_amd64.buildinfo
)SH";

class DebianHostile : public ::testing::Test {
 protected:
  // The repository lies where the shipped packages of a real host would be
  // visible to a sandbox that binds host directories whole (/srv; /var/tmp is
  // always the sandbox's own): root can write there, else the test's tmp.
  static void SetUpTestSuite() {
    const bool srv = ::access("/srv", W_OK) == 0;
    repo_ = new std::string((srv ? std::string("/srv") : test_tmpdir()) + "/kmr-shipped-repo-deb-" + std::to_string(::getpid()));
    fs::remove_all(*repo_);
    fs::create_directories(*repo_);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*repo_, ec);
    delete repo_;
  }
  void SetUp() override {
    std::string why;
    if (!have_program("dpkg-buildpackage")) KMR_SKIP_OR_FAIL("dpkg-buildpackage not installed");
    if (!sandbox_or_skip_reason(why)) KMR_SKIP_OR_FAIL(why);
    if (!fs::exists(*repo_ + "/kmr-meta_1.0_all.deb")) {
      ASSERT_NO_FATAL_FAILURE(run_script(*repo_, kDebianPackage));
    }
    if (!report_) {
      report_ = std::make_unique<RebuildReport>(rebuild({*repo_ + "/kmr-meta_1.0_all.deb"}, keep_options()));
    }
  }
  static std::string* repo_;
  static std::unique_ptr<RebuildReport> report_;
};
std::string* DebianHostile::repo_ = nullptr;
std::unique_ptr<RebuildReport> DebianHostile::report_;

TEST_F(DebianHostile, Perl5optIsDroppedAndRecordedLiterally) {
  const RebuildReport& rep = *report_;
  ASSERT_EQ(rebuild_status_name(rep.status), "verdict") << rep.reason;
  // Nothing else varies: the rebuild is identical to the host's build.
  EXPECT_EQ(files_tier_name(rep.files.tier), "identical") << rep.to_json()["differing"].dump();
  expect_no_marker(rep, "kmr-perl5opt-marker");
  const auto j = rep.to_json();
  EXPECT_EQ(j["environment"]["dropped_env"]["PERL5OPT"], "-M5;system(q{touch},q{/tmp/kmr-perl5opt-marker})");
  EXPECT_FALSE(j["environment"]["env"].contains("PERL5OPT"));
  EXPECT_EQ(j["environment"]["env"]["SOURCE_DATE_EPOCH"], "1700000000");
}

TEST_F(DebianHostile, BuildSeesNoShippedArtifactsNorTheirRepository) {
  const RebuildReport& rep = *report_;
  ASSERT_EQ(rebuild_status_name(rep.status), "verdict") << rep.reason;
  auto listing = read_text_file(rep.work_dir + "/build/src/visible.txt", 256 << 20);
  ASSERT_TRUE(listing) << listing.error().to_string();
  std::size_t lines = 0;
  bool saw_sources = false;
  std::istringstream in(*listing);
  std::string line;
  while (std::getline(in, line)) {
    ++lines;
    saw_sources = saw_sources || line == "/build/src/kmr-meta_1.0.dsc";
    EXPECT_EQ(line.find("kmr-shipped-repo"), std::string::npos) << line;
    for (const char* shipped : {"kmr-meta_1.0_all.deb", ".buildinfo", ".changes", "host-build.log"}) {
      EXPECT_EQ(line.find(shipped), std::string::npos) << line;
    }
  }
  // The listing is real: it walked the tree and the copied sources are in it.
  EXPECT_GT(lines, 100u);
  EXPECT_TRUE(saw_sources);
}

// ---- Debian: the .buildinfo's Build-Path is where the rebuild unpacks ------------

// A package that records its build directory, as a host tool built with -g does
// (kbuild's objtool in linux-headers): only a rebuild in the same path is identical.
constexpr const char* kDebianPathPackage = R"SH(
mkdir -p tree/kmr-path-1.0/debian/source
cd tree/kmr-path-1.0
printf '%s\n' 'Source: kmr-path' 'Section: misc' 'Priority: optional' 'Maintainer: Kmr Test <kmr@example.org>' \
  'Standards-Version: 4.6.2' 'Rules-Requires-Root: no' '' 'Package: kmr-path' 'Architecture: all' \
  'Description: kmr build path test package' ' Records where it was built.' > debian/control
printf '%s\n' 'kmr-path (1.0) unstable; urgency=medium' '' '  * Test.' '' \
  ' -- Kmr Test <kmr@example.org>  Tue, 14 Nov 2023 22:13:20 +0000' > debian/changelog
echo "3.0 (native)" > debian/source/format
printf '%s\n' '#!/usr/bin/make -f' \
  'build build-arch build-indep:' '	true' \
  'clean:' '	rm -rf debian/tmp debian/files' \
  'binary binary-arch binary-indep:' \
  '	mkdir -p debian/tmp/DEBIAN debian/tmp/usr/share/doc/kmr-path' \
  '	pwd > debian/tmp/usr/share/doc/kmr-path/BUILT-IN' \
  '	dpkg-gencontrol -pkmr-path -Pdebian/tmp' \
  '	dpkg-deb --root-owner-group -Zxz -b debian/tmp ..' \
  '	dpkg-distaddfile kmr-path_1.0_all.deb misc optional' > debian/rules
chmod +x debian/rules
cd ..
dpkg-source -b kmr-path-1.0 > /dev/null
cd kmr-path-1.0
SOURCE_DATE_EPOCH=1700000000 dpkg-buildpackage -us -uc -b -d --buildinfo-option=--always-include-path > ../host-build.log 2>&1
cd ..
rm -rf kmr-path-1.0
grep -q '^Build-Path: /' kmr-path_1.0_amd64.buildinfo
)SH";

TEST(DebianBuildPath, RebuildUnpacksAtTheRecordedBuildPath) {
  std::string why;
  if (!have_program("dpkg-buildpackage")) KMR_SKIP_OR_FAIL("dpkg-buildpackage not installed");
  if (!sandbox_or_skip_reason(why)) KMR_SKIP_OR_FAIL(why);
  // Not below the test's own tmp (under /root, which a build path may not name).
  const std::string dir = "/var/tmp/kmr-test-build-path-" + std::to_string(::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  ASSERT_NO_FATAL_FAILURE(run_script(dir, kDebianPathPackage));
  const std::string tree = dir + "/tree";
  auto bi = read_text_file(tree + "/kmr-path_1.0_amd64.buildinfo", 1 << 20);
  ASSERT_TRUE(bi);
  ASSERT_NE(bi->find("\nBuild-Path: " + tree + "/kmr-path-1.0\n"), std::string::npos) << *bi;

  auto rep = rebuild({tree + "/kmr-path_1.0_all.deb"}, keep_options());
  ASSERT_EQ(rebuild_status_name(rep.status), "verdict") << rep.reason;
  EXPECT_EQ(files_tier_name(rep.files.tier), "identical") << rep.to_json()["differing"].dump();
  EXPECT_EQ(rep.to_json()["environment"]["build_path"], tree + "/kmr-path-1.0");

  // The same package without the record: the default path, and the recorded directory differs.
  ASSERT_NO_FATAL_FAILURE(run_script(tree, "sed -i '/^Build-Path: /d' kmr-path_1.0_amd64.buildinfo"));
  auto unrecorded = rebuild({tree + "/kmr-path_1.0_all.deb"}, keep_options());
  ASSERT_EQ(rebuild_status_name(unrecorded.status), "verdict") << unrecorded.reason;
  EXPECT_EQ(files_tier_name(unrecorded.files.tier), "different");
  auto built_in = read_text_file(unrecorded.work_dir + "/build/src/kmr-path-1.0/debian/tmp/usr/share/doc/kmr-path/BUILT-IN", 4096);
  ASSERT_TRUE(built_in) << built_in.error().to_string();
  EXPECT_EQ(*built_in, "/build/src/kmr-path-1.0\n");
  fs::remove_all(dir);
}

// ---- SUSE: an RPM header with PACKAGER=%(touch ...) ----------------------------

// The binary RPM carries the hostile PACKAGER (from its spec); the source RPM
// has no Packager tag, so the rebuild's --define packager is what rpmbuild
// expands, as for an OBS build.
constexpr const char* kRpmPackage = R"SH(
cat > a.spec <<'EOF'
Name: kmr-meta
Version: 1.0
Release: 1
Summary: kmr metadata test package
License: MIT
BuildArch: noarch

%description
Test.

%prep

%build

%install
mkdir -p %{buildroot}/usr/share/kmr-meta
echo hello > %{buildroot}/usr/share/kmr-meta/README

%files
/usr/share/kmr-meta/README
EOF
sed 's|^License: MIT|License: MIT\nPackager: %%(touch /tmp/kmr-rpm-marker)|' a.spec > b.spec
rpmbuild -bs --define "_topdir $PWD/top" a.spec > /dev/null
SOURCE_DATE_EPOCH=1700000000 rpmbuild -bb --define "_topdir $PWD/top" --define "use_source_date_epoch_as_buildtime 1" b.spec > rpmbuild.log 2>&1
mkdir -p kmr-shipped-repo-rpm/RPMS/noarch sources
cp top/RPMS/noarch/kmr-meta-1.0-1.noarch.rpm kmr-shipped-repo-rpm/RPMS/noarch/
cp top/SRPMS/kmr-meta-1.0-1.src.rpm sources/
test "$(rpm -qp --qf '%{PACKAGER}' kmr-shipped-repo-rpm/RPMS/noarch/kmr-meta-1.0-1.noarch.rpm)" = '%(touch /tmp/kmr-rpm-marker)'
)SH";

TEST(SuseHostile, PackagerMacroIsNotExpandedAndRecordedLiterally) {
  if (!have_program("rpmbuild")) KMR_SKIP_OR_FAIL("rpmbuild not installed");
  std::string why;
  if (!sandbox_or_skip_reason(why)) KMR_SKIP_OR_FAIL(why);
  const std::string dir = test_tmpdir() + "/suse";
  fs::remove_all(dir);
  fs::create_directories(dir);
  ASSERT_NO_FATAL_FAILURE(run_script(dir, kRpmPackage));
  const RebuildReport rep =
      rebuild({dir + "/kmr-shipped-repo-rpm/RPMS/noarch/kmr-meta-1.0-1.noarch.rpm"}, keep_options(dir + "/sources"));
  ASSERT_EQ(rebuild_status_name(rep.status), "verdict") << rep.reason;
  expect_no_marker(rep, "kmr-rpm-marker");
  EXPECT_EQ(rep.to_json()["environment"]["fields"]["packager"], "%(touch /tmp/kmr-rpm-marker)");
}

// A header string with a line break would forge the header lines after it.
TEST(SuseHostile, ForgedHeaderLineIsRefused) {
  if (!have_program("rpmbuild")) KMR_SKIP_OR_FAIL("rpmbuild not installed");
  const std::string dir = test_tmpdir() + "/suse-nl";
  fs::remove_all(dir);
  fs::create_directories(dir);
  // rpm itself writes no line break into a tag: the built header is patched
  // (same length; the header digest is not what `rpm -qp --nodigest` checks).
  ASSERT_NO_FATAL_FAILURE(run_script(dir, std::string(kRpmPackage).substr(0, std::string(kRpmPackage).find("sed ")) + R"SH(
sed 's|^License: MIT|License: MIT\nVendor: x~sourcerpm evil.src.rpm|' a.spec > c.spec
rpmbuild -bs --define "_topdir $PWD/top" a.spec > /dev/null
rpmbuild -bb --define "_topdir $PWD/top" c.spec > /dev/null 2>&1
perl -0777 -pi -e 's/x~sourcerpm evil/x\nsourcerpm evil/' top/RPMS/noarch/kmr-meta-1.0-1.noarch.rpm
)SH"));
  const RebuildReport rep = rebuild({dir + "/top/RPMS/noarch/kmr-meta-1.0-1.noarch.rpm"}, keep_options(dir + "/top/SRPMS"));
  EXPECT_EQ(rebuild_status_name(rep.status), "error");
  EXPECT_NE(rep.reason.find("RPM header tag 'sourcerpm' appears twice"), std::string::npos) << rep.reason;
}

// ---- Arch: .BUILDINFO packager = $(touch ...) -----------------------------------

constexpr const char* kArchPackage = R"SH(
mkdir -p kmr-shipped-repo-arch/os/x86_64 kmr-shipped-repo-arch/sources/kmr-meta pkg/usr/share/kmr-meta
cat > kmr-shipped-repo-arch/sources/kmr-meta/PKGBUILD <<'EOF'
pkgname=kmr-meta
pkgver=1.0
pkgrel=1
pkgdesc="kmr metadata test package"
arch=(any)
license=(MIT)
package() {
  mkdir -p "$pkgdir/usr/share/kmr-meta"
  echo hello > "$pkgdir/usr/share/kmr-meta/README"
}
EOF
sum=$(sha256sum kmr-shipped-repo-arch/sources/kmr-meta/PKGBUILD | cut -d' ' -f1)
echo hello > pkg/usr/share/kmr-meta/README
cat > pkg/.BUILDINFO <<EOF
format = 2
pkgname = kmr-meta
pkgbase = kmr-meta
pkgver = 1.0-1
pkgarch = any
pkgbuild_sha256sum = $sum
packager = \$(touch /tmp/kmr-arch-marker) \`touch /tmp/kmr-arch-marker2\`
builddate = 1700000000
builddir = /build
startdir = /startdir
buildenv = !distcc
options = strip
EOF
cat > pkg/.PKGINFO <<'EOF'
pkgname = kmr-meta
pkgbase = kmr-meta
pkgver = 1.0-1
pkgdesc = kmr metadata test package
builddate = 1700000000
size = 6
arch = any
license = MIT
EOF
(cd pkg && bsdtar --uid 0 --gid 0 -cf - .BUILDINFO .PKGINFO usr | zstd -q -c > ../kmr-shipped-repo-arch/os/x86_64/kmr-meta-1.0-1-any.pkg.tar.zst)
)SH";

TEST(ArchHostile, PackagerIsQuotedAndRecordedLiterally) {
  for (const char* t : {"makepkg", "bsdtar", "zstd", "fakeroot"}) {
    if (!have_program(t)) KMR_SKIP_OR_FAIL(std::string(t) + " not installed");
  }
  std::string why;
  if (!sandbox_or_skip_reason(why)) KMR_SKIP_OR_FAIL(why);
  const std::string dir = test_tmpdir() + "/arch";
  fs::remove_all(dir);
  fs::create_directories(dir);
  ASSERT_NO_FATAL_FAILURE(run_script(dir, kArchPackage));
  const RebuildReport rep = rebuild({dir + "/kmr-shipped-repo-arch/os/x86_64/kmr-meta-1.0-1-any.pkg.tar.zst"}, keep_options());
  ASSERT_EQ(rebuild_status_name(rep.status), "verdict") << rep.reason;
  expect_no_marker(rep, "kmr-arch-marker");
  const std::string literal = "$(touch /tmp/kmr-arch-marker) `touch /tmp/kmr-arch-marker2`";
  EXPECT_EQ(rep.to_json()["environment"]["fields"]["packager"], literal);
  // The generated makepkg.conf holds it as one single-quoted word.
  auto conf = read_text_file(rep.work_dir + "/conf/makepkg.conf", 1 << 20);
  ASSERT_TRUE(conf) << conf.error().to_string();
  EXPECT_NE(conf->find("\nPACKAGER='" + literal + "'\n"), std::string::npos) << *conf;
}

TEST(ArchHostile, SystemBuildDirIsRefused) {
  if (!have_program("bsdtar") || !have_program("zstd") || !have_program("makepkg")) KMR_SKIP_OR_FAIL("bsdtar, zstd or makepkg not installed");
  std::string why;
  if (!sandbox_or_skip_reason(why)) KMR_SKIP_OR_FAIL(why);
  const std::string dir = test_tmpdir() + "/arch-usr";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string script = kArchPackage;
  script.replace(script.find("builddir = /build"), 17, "builddir = /usr");
  ASSERT_NO_FATAL_FAILURE(run_script(dir, script));
  const RebuildReport rep = rebuild({dir + "/kmr-shipped-repo-arch/os/x86_64/kmr-meta-1.0-1-any.pkg.tar.zst"}, keep_options());
  EXPECT_EQ(rebuild_status_name(rep.status), "error");
  EXPECT_NE(rep.reason.find(".BUILDINFO builddir '/usr' refused: a system location"), std::string::npos) << rep.reason;
}

// ---- Nix: the shipped NAR is checked against its narinfo -----------------------

// A binary cache made by Nix; then the NAR's content is changed (same size),
// recompressed, and the unsigned FileHash/FileSize rewritten to match.
constexpr const char* kNixCache = R"SH(
export NIX_CONFIG="extra-experimental-features = nix-command" HOME=$PWD XDG_CACHE_HOME=$PWD/xdg
mkdir -p tree/lib/modules
head -c 3000 /dev/zero | tr '\0' k > tree/bzImage
echo module > tree/lib/modules/a.ko
nix-store --generate-binary-cache-key kmr-test-1 sk pk
p=$(nix store add-path --store "$PWD/root" "$PWD/tree")
nix copy --store "$PWD/root" --to "file://$PWD/cache?compression=xz&secret-key=$PWD/sk" "$p"
info=cache/$(basename "$p" | cut -c1-32).narinfo
url=$(sed -n 's/^URL: //p' "$info")
xz -dc "cache/$url" | sed '0,/kkkk/s//kkkK/' | xz -c > tampered.nar.xz
cp tampered.nar.xz "cache/$url"
sed -i "s|^FileHash: .*|FileHash: sha256:$(nix-hash --type sha256 --flat --base32 tampered.nar.xz)|; s|^FileSize: .*|FileSize: $(stat -c %s tampered.nar.xz)|" "$info"
echo "$info" > narinfo-path
)SH";

TEST(NixHostile, TamperedNarIsAnErrorNamingNarHash) {
  for (const char* t : {"nix", "nix-store", "nix-hash", "xz"}) {
    if (!have_program(t)) KMR_SKIP_OR_FAIL(std::string(t) + " not installed");
  }
  const std::string dir = test_tmpdir() + "/nix";
  fs::remove_all(dir);
  fs::create_directories(dir);
  ASSERT_NO_FATAL_FAILURE(run_script(dir, kNixCache));
  auto rel = read_text_file(dir + "/narinfo-path", 4096);
  ASSERT_TRUE(rel);
  const std::string narinfo = dir + "/" + rel->substr(0, rel->find('\n'));
  const RebuildReport rep = rebuild({narinfo}, keep_options());
  EXPECT_EQ(rebuild_status_name(rep.status), "error");
  EXPECT_NE(rep.reason.find(": NarHash mismatch: the NAR has sha256:"), std::string::npos) << rep.reason;
  EXPECT_EQ(rep.to_json()["files"], "error");
}

}  // namespace
}  // namespace kmr::build

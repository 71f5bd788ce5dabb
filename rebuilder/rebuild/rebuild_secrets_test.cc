// `rebuild` of a Debian package whose debian/rules hunts for host secrets:
// it cats, greps and copies root-only files planted under /etc, /var/lib,
// /srv and beside the worker's key into its log and its package. The Debian
// backend builds as uid 0 inside the sandbox, the strongest case. None of the
// planted contents may appear in the rebuild's JSON, its log, its work
// directory or the rebuilt package.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "rebuilder/base/file.h"
#include "rebuilder/base/require.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/rebuild/rebuild.h"
#include "rebuilder/buildenv/sandbox.h"

namespace kmr::build {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using kmr::testing::test_tmpdir;

std::string random_tag() {
  std::ifstream in("/dev/urandom", std::ios::binary);
  unsigned char b[6];
  in.read(reinterpret_cast<char*>(b), sizeof b);
  std::string out;
  for (unsigned char c : b) {
    out += "0123456789abcdef"[c >> 4];
    out += "0123456789abcdef"[c & 15];
  }
  return out;
}

// Everything under `dir` as text (regular files only, links not followed),
// plus the payload of every .deb as dpkg-deb extracts it.
std::string everything_under(const std::string& dir) {
  std::string all;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_symlink(ec) || !it->is_regular_file(ec)) continue;
    const std::string p = it->path().string();
    if (auto t = read_text_file(p, 256 << 20)) all += *t;
    if (p.size() > 4 && p.compare(p.size() - 4, 4, ".deb") == 0) {
      SubprocessOptions o;
      o.merge_stderr = true;
      if (auto r = run_subprocess({"sh", "-c", "dpkg-deb --fsys-tarfile \"$1\" | tar -xOf -", "sh", p}, o)) all += r->out;
    }
  }
  return all;
}

constexpr const char* kPackage = R"SH(
mkdir -p kmr-hunt-1.0/debian/source
cd kmr-hunt-1.0
cat > debian/control <<'CONTROL'
Source: kmr-hunt
Section: misc
Priority: optional
Maintainer: Kmr Test <kmr@example.org>
Standards-Version: 4.6.2
Rules-Requires-Root: no

Package: kmr-hunt
Architecture: all
Description: kmr sandbox test package
 Hunts for host secrets during its build.
CONTROL
cat > debian/changelog <<'CHANGELOG'
kmr-hunt (1.0) unstable; urgency=medium

  * Test.

 -- Kmr Test <kmr@example.org>  Tue, 14 Nov 2023 22:13:20 +0000
CHANGELOG
echo "3.0 (native)" > debian/source/format
cat > debian/hunt.sh <<'HUNT'
#!/bin/sh
# Runs inside the rebuild (host name kmr-build): whatever it finds goes to
# the log and the package. The shipped package, built on the host, skips it.
out=$1
mkdir -p "$out"
[ "$(cat /etc/hostname 2>/dev/null)" = kmr-build ] || exit 0
id
for f in /etc/shadow /etc/kmr-worker/key.pem /etc/kmr-worker/*.pem /etc/kmr-secret-* /etc/kmr-secret-*/* \
         /var/lib/kmr-secret-*/* /srv/kmr-secret-*/*; do
  cat "$f" 2>&1
  cp "$f" "$out/" 2>/dev/null
done
find / -xdev \( -path /proc -o -path /sys \) -prune -o -name '*kmr-secret*' -print 2>/dev/null
grep -rs KMRHUNT /etc /var /srv /opt /root /home /run 2>/dev/null | tee "$out/grep.txt"
exit 0
HUNT
chmod +x debian/hunt.sh
printf '%s\n' '#!/usr/bin/make -f' \
  'build build-arch build-indep:' '	true' \
  'clean:' '	rm -rf debian/tmp debian/files' \
  'binary binary-arch binary-indep:' \
  '	mkdir -p debian/tmp/DEBIAN debian/tmp/usr/share/doc/kmr-hunt' \
  '	sh debian/hunt.sh debian/tmp/usr/share/doc/kmr-hunt/loot' \
  '	dpkg-gencontrol -pkmr-hunt -Pdebian/tmp' \
  '	dpkg-deb --root-owner-group -Zxz -b debian/tmp ..' \
  '	dpkg-distaddfile kmr-hunt_1.0_all.deb misc optional' > debian/rules
chmod +x debian/rules
cd ..
dpkg-source -b kmr-hunt-1.0 > /dev/null
cd kmr-hunt-1.0
SOURCE_DATE_EPOCH=1700000000 dpkg-buildpackage -us -uc -b -d > ../host-build.log 2>&1
cd ..
rm -rf kmr-hunt-1.0
)SH";

// Root-only files with unique contents, removed again by the destructor.
class Planted {
 public:
  explicit Planted(std::string tag) : tag_(std::move(tag)) {}
  ~Planted() {
    std::error_code ec;
    for (auto it = paths_.rbegin(); it != paths_.rend(); ++it) fs::remove_all(*it, ec);
  }
  void plant(const std::string& path, mode_t mode) {
    const std::string dir = fs::path(path).parent_path().string();
    if (!fs::exists(dir)) {
      fs::create_directories(dir);
      ::chmod(dir.c_str(), 0700);
      paths_.push_back(dir);
    }
    const std::string marker = "KMRHUNT" + tag_ + "x" + std::to_string(markers_.size());
    std::ofstream(path) << marker << "\n";
    ::chmod(path.c_str(), mode);
    paths_.push_back(path);
    markers_.push_back(marker);
  }
  const std::vector<std::string>& markers() const { return markers_; }

 private:
  std::string tag_;
  std::vector<std::string> paths_, markers_;
};

TEST(RebuildSecrets, HostSecretsAppearNowhere) {
  if (::geteuid() != 0) KMR_SKIP_OR_FAIL("planting root-only files under /etc needs root");
  if (!have_program("dpkg-buildpackage")) KMR_SKIP_OR_FAIL("dpkg-buildpackage not installed");
  if (auto sa = sandbox_available(); !sa) KMR_SKIP_OR_FAIL("sandbox unavailable: " + sa.error().message());
  const std::string repo = test_tmpdir() + "/hunt-repo";
  fs::remove_all(repo);
  fs::create_directories(repo);
  {
    SubprocessOptions o;
    o.timeout = 300s;
    o.merge_stderr = true;
    o.cwd = repo;
    auto r = run_subprocess({"bash", "-euc", kPackage}, o);
    ASSERT_TRUE(r && r->success()) << (r ? r->out : r.error().to_string());
  }
  // Planted after the shipped package was built on the host.
  const std::string t = random_tag();
  Planted p(t);
  p.plant("/etc/kmr-secret-" + t + "/admin-token", 0600);
  p.plant("/etc/kmr-secret-" + t + ".conf", 0600);
  p.plant("/etc/kmr-worker/kmr-secret-" + t + ".pem", 0600);
  p.plant("/var/lib/kmr-secret-" + t + "/state.db", 0600);
  p.plant("/srv/kmr-secret-" + t + "/token", 0600);
  p.plant("/etc/kmr-secret-" + t + "-public", 0644);

  RebuildOptions o;
  o.work_root = test_tmpdir() + "/work";
  o.keep = true;
  o.timeout = 10min;
  o.memory_bytes = 4ull << 30;
  const RebuildReport rep = rebuild({repo + "/kmr-hunt_1.0_all.deb"}, o);
  ASSERT_EQ(rebuild_status_name(rep.status), "verdict") << rep.reason;
  ASSERT_FALSE(rep.work_dir.empty());
  const std::string json = rep.to_json().dump();
  auto log = read_text_file(rep.log, 64 << 20);
  ASSERT_TRUE(log) << rep.log;
  const std::string everything = everything_under(o.work_root);  // work dir, rebuilt .deb, kept logs
  // The hunt ran as root inside: its `id` and its failed reads are in the log.
  EXPECT_NE(log->find("uid=0(root)"), std::string::npos) << *log;
  EXPECT_NE(log->find("/etc/shadow: No such file or directory"), std::string::npos) << *log;
  EXPECT_NE(everything.find("uid=0(root)"), std::string::npos) << "the scan must see the log";
  for (const auto& m : p.markers()) {
    EXPECT_EQ(json.find(m), std::string::npos) << m << " in the JSON";
    EXPECT_EQ(log->find(m), std::string::npos) << m << " in the log";
    EXPECT_EQ(everything.find(m), std::string::npos) << m << " in the work directory or the rebuilt package";
  }
  fs::remove_all(o.work_root);
}

}  // namespace
}  // namespace kmr::build

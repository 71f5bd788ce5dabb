// The pinned set, the apt sources and the cache key, and the installed-set
// comparison against a real dpkg database (the host's, read by dpkg-query).
#include "rebuilder/distros/debian/buildroot.h"

#include <gtest/gtest.h>

#include <sstream>

#include "rebuilder/base/require.h"
#include "rebuilder/base/subprocess.h"

namespace kmr::debian {
namespace {

build::BuildEnvironment env_with(std::vector<std::string> installed) {
  build::BuildEnvironment e;
  e.installed = std::move(installed);
  return e;
}

TEST(PinnedPackages, ParsesSortsAndQualifies) {
  auto p = pinned_packages(env_with({"make=4.3-4.1", "gcc:amd64=4:12.2.0-3", "base-files=12.4+deb12u15"}));
  ASSERT_TRUE(p) << p.error().to_string();
  ASSERT_EQ(p->size(), 3u);
  EXPECT_EQ((*p)[0].spec(), "base-files=12.4+deb12u15");
  EXPECT_EQ((*p)[1].spec(), "gcc:amd64=4:12.2.0-3");
  EXPECT_EQ((*p)[1].arch, "amd64");
  EXPECT_EQ((*p)[2].name, "make");
}

TEST(PinnedPackages, RejectsHostileAndAmbiguousEntries) {
  for (const char* bad : {"--include=x=1", "make", "make=", "make=4.3 -o", "Make=1", "make=1;rm", "make=-1",
                          "make:=1", "make:AMD64=1", "m\nake=1", "make=$(id)"}) {
    EXPECT_FALSE(pinned_packages(env_with({bad}))) << bad;
  }
  EXPECT_FALSE(pinned_packages(env_with({"make=1", "make=2"})));
  EXPECT_FALSE(pinned_packages(env_with({})));
}

TEST(Sources, TemplatesSuiteAndSnapshotStamp) {
  ArchiveOptions o;
  o.mirror = "http://snapshot.example/archive/debian/{build_date}";
  const auto s = apt_sources(o, "bookworm", "Wed, 02 Dec 2026 10:04:33 +0200");
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0], "deb http://snapshot.example/archive/debian/20261202T080433Z bookworm main");
  EXPECT_EQ(s[1], "deb http://snapshot.example/archive/debian/20261202T080433Z bookworm-updates main");
  EXPECT_EQ(s[2], "deb http://deb.debian.org/debian-security bookworm-security main");
  const auto urls = packages_index_urls(s, "amd64");
  ASSERT_EQ(urls.size(), 3u);
  EXPECT_EQ(urls[2], "http://deb.debian.org/debian-security/dists/bookworm-security/main/binary-amd64/Packages.xz");
}

TEST(Suite, FromBaseFiles) {
  EXPECT_EQ(suite_for(*pinned_packages(env_with({"base-files=12.4+deb12u15"}))), "bookworm");
  EXPECT_EQ(suite_for(*pinned_packages(env_with({"base-files=13.8"}))), "trixie");
}

TEST(Key, DependsOnEveryInput) {
  const auto a = *pinned_packages(env_with({"make=4.3-4.1", "bash=5.2.15-2+b13"}));
  const auto b = *pinned_packages(env_with({"bash=5.2.15-2+b13", "make=4.3-4.1"}));
  const auto c = *pinned_packages(env_with({"make=4.3-4.2", "bash=5.2.15-2+b13"}));
  const std::vector<std::string> s = {"deb http://deb.debian.org/debian bookworm main"};
  EXPECT_EQ(root_key(a, s, "bookworm", "amd64"), root_key(b, s, "bookworm", "amd64"));
  EXPECT_NE(root_key(a, s, "bookworm", "amd64"), root_key(c, s, "bookworm", "amd64"));
  EXPECT_NE(root_key(a, s, "bookworm", "amd64"), root_key(a, s, "trixie", "amd64"));
  EXPECT_NE(root_key(a, s, "bookworm", "amd64"), root_key(a, {"deb http://other/debian bookworm main"}, "bookworm", "amd64"));
  EXPECT_EQ(root_key(a, s, "bookworm", "amd64").size(), 64u);
}

// The host's own dpkg database, listed by dpkg-query here, is a real root.
TEST(CompareInstalled, HostDatabase) {
  if (!have_program("dpkg-query")) KMR_SKIP_OR_FAIL("dpkg-query not installed");
  auto q = run_subprocess({"dpkg-query", "-W", "-f", "${Package}:${Architecture}=${Version} ${db:Status-Abbrev}\n"});
  ASSERT_TRUE(q && q->success());
  std::vector<std::string> all;
  std::istringstream in(q->out);
  for (std::string line; std::getline(in, line);) {
    if (line.size() > 3 && line.compare(line.size() - 3, 3, "ii ") == 0) all.push_back(line.substr(0, line.find(' ')));
  }
  ASSERT_GT(all.size(), 50u);
  auto pinned = pinned_packages(env_with(all));
  ASSERT_TRUE(pinned) << pinned.error().to_string();
  auto same = compare_installed("", *pinned, "amd64");
  ASSERT_TRUE(same) << same.error().to_string();
  EXPECT_TRUE(same->empty()) << (*same)[0];

  // One version changed, one package dropped from the pin, one added.
  auto edited = *pinned;
  const std::string dropped = edited.back().name;
  edited.pop_back();
  edited[0].version = "999:0";
  edited.push_back({"kmr-no-such-package", "1.0", ""});
  auto diff = compare_installed("", edited, "amd64");
  ASSERT_TRUE(diff);
  std::string all_diff;
  for (const auto& d : *diff) all_diff += d + "\n";
  EXPECT_NE(all_diff.find(edited[0].name + " installed at "), std::string::npos) << all_diff;
  EXPECT_NE(all_diff.find("missing kmr-no-such-package=1.0"), std::string::npos) << all_diff;
  EXPECT_NE(all_diff.find("extra " + dropped + "="), std::string::npos) << all_diff;
  EXPECT_EQ(diff->size(), 3u) << all_diff;
}

}  // namespace
}  // namespace kmr::debian

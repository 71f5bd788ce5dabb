// The offline parts of fetching a package's rebuild inputs: Release URLs,
// the .buildinfo bound to the shipped packages (a real kbuild deb-pkg
// .buildinfo from the real-kernel fixture), the Sources index choice and
// paragraph selection; hostile forms of each.
#include "rebuilder/distros/debian/fetch.h"

#include <gtest/gtest.h>

#include "rebuilder/archive/deb822.h"
#include "rebuilder/base/file.h"

namespace kmr::debian {
namespace {

std::string testdata(const std::string& name) {
  auto t = read_text_file("rebuilder/distros/debian/testdata/fetch_corpus/" + name, 1 << 20);
  EXPECT_TRUE(t) << name;
  return t ? *t : "";
}

TEST(ReleaseLocation, InReleaseAndRelease) {
  auto a = release_location("https://deb.example.org/debian/dists/bookworm/InRelease");
  ASSERT_TRUE(a) << a.error().to_string();
  EXPECT_EQ(a->dist_url, "https://deb.example.org/debian/dists/bookworm/");
  EXPECT_EQ(a->archive_root, "https://deb.example.org/debian/");
  EXPECT_TRUE(a->clearsigned);
  auto b = release_location("http://localhost:8080/pve/dists/bookworm-updates/Release");
  ASSERT_TRUE(b) << b.error().to_string();
  EXPECT_EQ(b->dist_url, "http://localhost:8080/pve/dists/bookworm-updates/");
  EXPECT_EQ(b->archive_root, "http://localhost:8080/pve/");
  EXPECT_FALSE(b->clearsigned);
}

TEST(ReleaseLocation, Hostile) {
  for (const char* url : {"https://h/debian/bookworm/InRelease", "https://h/debian/dists/InRelease",
                          "https://h/debian/dists/bookworm/Packages", "https://h/debian/dists/bookworm/InRelease?x=1",
                          "ftp://h/debian/dists/bookworm/InRelease", "https://user@h/debian/dists/bookworm/InRelease",
                          "file:///srv/debian/dists/bookworm/InRelease", "https://h/debian/dists/bookworm/InRelease#f",
                          "https://h/debian/dists/book worm/InRelease", ""}) {
    EXPECT_FALSE(release_location(url)) << url;
  }
}

ShippedDeb image() {
  ShippedDeb d;
  d.file_name = "linux-image-6.1.192-kmr_6.1.192-1kmr_amd64.deb";
  d.sha256 = "e660135ca7967ef4b4c4938a9ac49fc5f387b5cd23d249f2b6d9debdaddd7f4f";
  d.size = 2191696;
  return d;
}

distros::SourceFile dsc() {
  return {"linux-kmr_6.1.192-1kmr.dsc", "https://h/x.dsc",
          "22984b61d328361caf6ec5a6d9ac02da4c0b658abb22863b35300361d50b09a8", 1064, ".dsc"};
}

TEST(BuildinfoBinding, TheRealKernelBuildinfoListsItsPackageAndSource) {
  const std::string text = testdata("buildinfo");
  const auto d = dsc();
  EXPECT_TRUE(check_buildinfo_binding(text, "b", {image()}, &d));
  EXPECT_TRUE(check_buildinfo_binding(text, "b", {image()}, nullptr));
}

TEST(BuildinfoBinding, AnotherBuildIsRefused) {
  const std::string text = testdata("buildinfo");
  auto other = image();
  other.sha256[0] = other.sha256[0] == 'e' ? 'f' : 'e';
  auto r = check_buildinfo_binding(text, "b", {other}, nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kVerificationFailed);
  EXPECT_NE(r.error().message().find("lists linux-image-6.1.192-kmr_6.1.192-1kmr_amd64.deb as e660"), std::string::npos)
      << r.error().message();
  auto bigger = image();
  bigger.size += 1;
  EXPECT_FALSE(check_buildinfo_binding(text, "b", {bigger}, nullptr));
  auto absent = image();
  absent.file_name = "linux-image-6.1.192-kmr_6.1.192-2kmr_amd64.deb";
  r = check_buildinfo_binding(text, "b", {absent}, nullptr);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("does not list"), std::string::npos) << r.error().message();
  // A .dsc other than the one the Sources index gave.
  auto d = dsc();
  d.sha256[5] = d.sha256[5] == '0' ? '1' : '0';
  EXPECT_FALSE(check_buildinfo_binding(text, "b", {image()}, &d));
}

TEST(BuildinfoBinding, HostileBuildinfos) {
  const std::string name = image().file_name;
  const std::string sha = image().sha256;
  for (const std::string& text : {std::string(""), std::string("not deb822\n"),
                                  "Format: 1.0\nChecksums-Sha256:\n " + sha + " 2191696\n",
                                  "Format: 1.0\nChecksums-Sha256:\n " + sha + " 02191696 " + name + "\n",
                                  "Format: 1.0\nChecksums-Sha256:\n " + sha + " 2191696 ../" + name + "\n",
                                  "Format: 1.0\nChecksums-Sha256:\n " + sha.substr(1) + " 2191696 " + name + "\n",
                                  std::string(20 << 20, 'x')}) {
    EXPECT_FALSE(check_buildinfo_binding(text, "hostile", {image()}, nullptr)) << text.substr(0, 100);
  }
  EXPECT_TRUE(check_buildinfo_binding("Format: 1.0\nChecksums-Sha256:\n " + sha + " 2191696 " + name + "\n", "b",
                                      {image()}, nullptr));
}

TEST(SourcesIndex, BestCompressionPerComponent) {
  std::vector<archive::ReleaseFile> files = {{"x", 1, "main/source/Sources"},
                                             {"x", 1, "main/source/Sources.gz"},
                                             {"x", 1, "main/source/Sources.xz"},
                                             {"x", 1, "contrib/source/Sources"},
                                             {"x", 1, "contrib/source/Sources.gz"},
                                             {"x", 1, "main/binary-amd64/Packages.xz"},
                                             {"x", 1, "main/source/Sources.bz2"}};
  EXPECT_EQ(sources_index_paths(files), (std::vector<std::string>{"contrib/source/Sources.gz", "main/source/Sources.xz"}));
  EXPECT_TRUE(sources_index_paths({}).empty());
}

TEST(SourcesIndex, ParagraphsOfWantedPackagesOnly) {
  const std::string text =
      "Package: linux-kmr-extra\nVersion: 1\n\nPackage: linux-kmr\nVersion: 6.1.192-1kmr\n\n"
      "Binary: x\nPackage: linux-kmr\nVersion: 2\n\nPackage: linux\nVersion: 6.1.170-3\n";
  const std::string picked = paragraphs_of(text, {"linux-kmr"});
  auto paras = archive::parse_deb822(picked, "picked");
  ASSERT_TRUE(paras) << paras.error().to_string();
  ASSERT_EQ(paras->size(), 2u);
  EXPECT_EQ((*paras)[0].get_or("Version"), "6.1.192-1kmr");
  EXPECT_EQ((*paras)[1].get_or("Version"), "2");
  EXPECT_NE(find_source(*paras, "linux-kmr", "6.1.192-1kmr"), nullptr);
  EXPECT_EQ(find_source(*paras, "linux-kmr", "6.1.192-2kmr"), nullptr);
  EXPECT_EQ(paragraphs_of(testdata("sources-hostile"), {"linux-kmr"}).find("Package:  linux-kmr"), std::string::npos);
}

TEST(FetchRebuildInputs, RefusesWithoutKeyringOrPackages) {
  RepositoryOptions o;
  o.release_url = "https://localhost:1/debian/dists/bookworm/InRelease";
  auto r = fetch_rebuild_inputs(o, {"/nonexistent.deb"}, ::testing::TempDir() + "/f");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("no keyring"), std::string::npos) << r.error().message();
  o.keyring = "/nonexistent.gpg";
  EXPECT_FALSE(fetch_rebuild_inputs(o, {}, ::testing::TempDir() + "/f"));
  o.release_url = "https://localhost:1/debian/InRelease";
  r = fetch_rebuild_inputs(o, {"/nonexistent.deb"}, ::testing::TempDir() + "/f");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kMalformedInput) << r.error().to_string();
}

}  // namespace
}  // namespace kmr::debian

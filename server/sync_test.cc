#include "server/sync.h"

#include <filesystem>

#include <gtest/gtest.h>

#include "rebuilder/base/file.h"
#include "rebuilder/base/subprocess.h"

namespace kmr::server {
namespace {

Bytes b(const std::string& s) { return Bytes(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); }

TEST(SyncTest, ImportDocumentFiltersByPatternAndArch) {
  RepositoryConfig rc;
  rc.name = "r";
  rc.distro = "arch";
  rc.url = "http://mirror.test/repo/index.json";
  rc.packages = {"linux", "linux-*"};
  rc.architectures = {"x86_64"};
  std::string doc = R"({"artifacts":[
    {"set":"a","name":"linux","version":"1","arch":"x86_64","url":"linux.pkg","sha256":")" + std::string(64, 'a') + R"("},
    {"set":"a","name":"linux-headers","version":"1","arch":"x86_64","url":"h.pkg","sha256":")" + std::string(64, 'b') + R"("},
    {"set":"b","name":"linux","version":"1","arch":"aarch64","url":"l2.pkg","sha256":")" + std::string(64, 'c') + R"("},
    {"set":"c","name":"firefox","version":"1","arch":"x86_64","url":"f.pkg","sha256":")" + std::string(64, 'd') + R"("}]})";
  auto arts = parse_index(rc, doc);
  ASSERT_TRUE(arts.has_value()) << arts.error().to_string();
  ASSERT_EQ(arts->size(), 2u);
  EXPECT_EQ((*arts)[0].url, "http://mirror.test/repo/linux.pkg");
  EXPECT_EQ((*arts)[1].name, "linux-headers");
}

TEST(SyncTest, ImportDocumentRejectsBadHash) {
  RepositoryConfig rc;
  rc.url = "file:///x/index.json";
  auto arts = parse_index(rc, R"({"artifacts":[{"set":"a","name":"linux","version":"1","arch":"x","url":"l","sha256":"XYZ"}]})");
  ASSERT_FALSE(arts.has_value());
  EXPECT_EQ(arts.error().message(), "file:///x/index.json: artifacts[0]: sha256 is not 64 lowercase hex digits");
  EXPECT_FALSE(parse_index(rc, "[1,2]").has_value());
}

TEST(SyncTest, ArchRepoDbOneJobPerPkgbase) {
  auto t = TempDir::create("sync-test");
  ASSERT_TRUE(t.has_value());
  std::string dir = t->path() + "/db";
  auto desc = [&](const std::string& entry, const std::string& name, const std::string& base, char hash) {
    std::filesystem::create_directories(dir + "/" + entry);
    std::string d = "%FILENAME%\n" + entry + "-x86_64.pkg.tar.zst\n\n%NAME%\n" + name + "\n\n%BASE%\n" + base +
                    "\n\n%VERSION%\n6.8.1-1\n\n%ARCH%\nx86_64\n\n%SHA256SUM%\n" + std::string(64, hash) + "\n\n";
    ASSERT_TRUE(write_file_atomic(dir + "/" + entry + "/desc", b(d)).has_value());
  };
  desc("linux-6.8.1-1", "linux", "linux", 'a');
  desc("linux-headers-6.8.1-1", "linux-headers", "linux", 'b');
  desc("firefox-6.8.1-1", "firefox", "firefox", 'c');
  std::string db = t->path() + "/core.db";
  auto r = run_subprocess({"tar", "-czf", db, "-C", dir, "linux-6.8.1-1", "linux-headers-6.8.1-1", "firefox-6.8.1-1"});
  ASSERT_TRUE(r.has_value() && r->success());
  auto store = Store::open(t->path() + "/state");
  ASSERT_TRUE(store.has_value());
  RepositoryConfig rc;
  rc.name = "core";
  rc.distro = "arch";
  rc.format = "arch";
  rc.url = "file://" + db;
  rc.packages = {"linux", "linux-headers"};
  auto n = sync_repository(**store, rc, 100, std::chrono::seconds(5));
  ASSERT_TRUE(n.has_value()) << n.error().to_string();
  EXPECT_EQ(*n, 1);
  auto a = (*store)->artifact_by_sha256(std::string(64, 'b'));
  ASSERT_TRUE(a.has_value() && a->has_value());
  EXPECT_EQ((**a)["url"], "file://" + t->path() + "/linux-headers-6.8.1-1-x86_64.pkg.tar.zst");
  auto fx = (*store)->artifact_by_sha256(std::string(64, 'c'));
  EXPECT_FALSE(fx->has_value());
  // A configured keyring makes the detached signature mandatory.
  rc.trusted_keys = {t->path() + "/missing-keyring.pgp"};
  EXPECT_FALSE(sync_repository(**store, rc, 200, std::chrono::seconds(5)).has_value());
}

}  // namespace
}  // namespace kmr::server

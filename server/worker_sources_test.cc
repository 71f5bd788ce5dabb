// kmr-worker's source fetching on local inputs: file:// sources checked
// against sha256 and size (a mismatch is listed as missing and nothing is
// left behind), a packaging git repository made with the git CLI cloned at
// its tag (not at the branch head), a missing tag and a missing file listed
// with their URLs, a hostile source list refused before anything is fetched.
// The HTTPS path runs end to end in sync_sources_e2e_test.
#include "server/worker_sources.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/require.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/subprocess.h"

namespace kmr::server {
namespace {

namespace fs = std::filesystem;

std::string sha_of(const std::string& s) { return to_hex(sha256(as_bytes(s))); }

class WorkerSources : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = TempDir::create("kmr-ws-test");
    ASSERT_TRUE(t);
    tmp_ = t->path();
    dir_.emplace(std::move(*t));
    ASSERT_TRUE(write_file_atomic(tmp_ + "/x.dsc", as_bytes(std::string("Format: 3.0 (quilt)\n"))));
  }
  std::string tmp_;
  std::optional<TempDir> dir_;
};

TEST_F(WorkerSources, FilesCheckedAgainstTheIndex) {
  const std::string body = "Format: 3.0 (quilt)\n";
  distros::SourceList l;
  l.files.push_back({"good.dsc", "file://" + tmp_ + "/x.dsc", sha_of(body), body.size(), ".dsc"});
  l.files.push_back({"badhash.dsc", "file://" + tmp_ + "/x.dsc", std::string(64, 'a'), std::nullopt, ".dsc"});
  l.files.push_back({"badsize.dsc", "file://" + tmp_ + "/x.dsc", "", 5, ".dsc"});
  l.files.push_back({"none.buildinfo", "file://" + tmp_ + "/none.buildinfo", "", std::nullopt, "buildinfo"});
  auto got = fetch_sources(l, tmp_ + "/out", std::chrono::seconds(30));
  ASSERT_TRUE(got) << got.error().to_string();
  ASSERT_EQ(got->missing.size(), 3u);
  EXPECT_EQ(got->missing[0], ".dsc (badhash.dsc): file://" + tmp_ + "/x.dsc: sha256 " + sha_of(body) +
                                 ", the index says " + std::string(64, 'a'));
  EXPECT_EQ(got->missing[1], ".dsc (badsize.dsc): file://" + tmp_ + "/x.dsc: size 20, the index says 5");
  EXPECT_EQ(got->missing[2], "buildinfo (none.buildinfo): file://" + tmp_ + "/none.buildinfo: " + tmp_ +
                                 "/none.buildinfo: no such regular file");
  EXPECT_EQ(*read_text_file(tmp_ + "/out/good.dsc", 1024), body);
  EXPECT_FALSE(fs::exists(tmp_ + "/out/badhash.dsc"));
  EXPECT_FALSE(fs::exists(tmp_ + "/out/badsize.dsc"));
}

TEST_F(WorkerSources, GitAtTheTag) {
  if (!have_program("git")) KMR_SKIP_OR_FAIL("git is not installed");
  const std::string repo = tmp_ + "/work";
  const std::string script =
      "set -e\nmkdir -p '" + repo + "'\ncd '" + repo +
      "'\ng() { git -c user.name=t -c user.email=t@t.invalid -c commit.gpgsign=false -c tag.gpgsign=false \"$@\"; }\n"
      "g init -q -b main\necho tagged > PKGBUILD\ng add PKGBUILD\ng commit -qm a\ng tag 1.0-1\n"
      "echo later > PKGBUILD\ng commit -qam b\ngit clone -q --bare . '" + tmp_ + "/pkg.git'\n";
  auto r = run_subprocess({"bash", "-c", script});
  ASSERT_TRUE(r && r->success()) << (r ? r->err : r.error().to_string());
  distros::SourceList l;
  l.git.push_back({"file://" + tmp_ + "/pkg.git", "1.0-1", "pkg", "PKGBUILD"});
  l.git.push_back({"file://" + tmp_ + "/pkg.git", "2.0-1", "other", "PKGBUILD"});
  auto got = fetch_sources(l, tmp_ + "/out", std::chrono::seconds(60));
  ASSERT_TRUE(got);
  EXPECT_EQ(*read_text_file(tmp_ + "/out/pkg/PKGBUILD", 1024), "tagged\n");
  ASSERT_EQ(got->missing.size(), 1u);
  EXPECT_EQ(got->missing[0].rfind("PKGBUILD (other): file://" + tmp_ + "/pkg.git: git clone at 2.0-1 failed", 0), 0u)
      << got->missing[0];
}

TEST_F(WorkerSources, HostileListsAreRefused) {
  for (const char* bad : {R"({"kmr_sources":1,"files":[{"name":"../../etc/x","url":"file:///etc/passwd"}]})",
                          R"({"kmr_sources":1,"git":[{"url":"https://h/x","ref":"--upload-pack=touch /tmp/p","dir":"d"}]})",
                          R"({"kmr_sources":1,"git":[{"url":"ext::sh -c id","ref":"t","dir":"d"}]})", "not json"}) {
    auto got = fetch_job_sources(bad, tmp_ + "/hostile", std::chrono::seconds(5));
    EXPECT_FALSE(got) << bad;
  }
  EXPECT_FALSE(fs::exists(tmp_ + "/hostile"));
}

}  // namespace
}  // namespace kmr::server

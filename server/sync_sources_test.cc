// What sync attaches to jobs, read back from the claimed job, for the real
// fixture repositories (tests/fixtures/repos) synced through their native
// indexes: the Proxmox set's .dsc and files from the Sources index with the
// sha256 `sha256sum` computes and the sizes on disk, the .buildinfo from the
// template; the Arch set's packaging repository and tag; the SUSE set's
// source RPM with the sha256 and size of a source repository indexed by createrepo_c. A Sources
// index that no longer matches the Release fails the sync and imports nothing.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "rebuilder/base/file.h"
#include "rebuilder/base/require.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/distros/common/source_list.h"
#include "rebuilder/distros/source_templates.h"
#include "server/sync.h"
#include "tests/lib/fixtures.h"

namespace kmr::server {
namespace {

namespace fs = std::filesystem;

RepositoryConfig repo(const std::string& distro, const std::string& format, const std::string& url,
                      const std::map<std::string, std::string>& sources = {}) {
  RepositoryConfig rc;
  rc.name = distro;
  rc.distro = distro;
  rc.format = format;
  rc.url = url;
  auto t = distros::resolve_source_templates(distro, sources, "test");
  EXPECT_TRUE(t) << t.error().to_string();
  if (t) rc.sources = *t;
  return rc;
}

// Syncs `rc` into a fresh store and returns the source list of the one job.
Result<distros::SourceList> synced_sources(const std::string& state, const RepositoryConfig& rc) {
  KMR_ASSIGN_OR_RETURN(auto store, Store::open(state));
  KMR_ASSIGN_OR_RETURN(std::int64_t n, sync_repository(*store, rc, 100, std::chrono::seconds(60)));
  if (n != 1) return internal_error("expected one job, got " + std::to_string(n));
  KMR_ASSIGN_OR_RETURN(std::int64_t wid, store->register_worker("w", std::string(64, 'a'), {"default"}, 100));
  Worker w;
  w.id = wid;
  w.name = "w";
  w.public_key = std::string(64, 'a');
  w.resource_classes = {"default"};
  KMR_ASSIGN_OR_RETURN(auto job, store->claim_job(w, 101, QueuePolicy{}));
  if (!job || !(*job)["sources"].is_string()) return not_found("the job carries no sources");
  return distros::parse_source_list((*job)["sources"].get<std::string>());
}

std::string sha256sum(const std::string& path) {
  auto r = run_subprocess({"sha256sum", path});
  return r && r->success() ? r->out.substr(0, 64) : "";
}

TEST(SyncSources, ProxmoxDscFromSourcesAndBuildinfoTemplate) {
  KMR_REQUIRE_FIXTURE_REPOS();
  auto t = TempDir::create("sync-sources");
  ASSERT_TRUE(t);
  const std::string root = kmr::testing::fixture_repos().dir + "/proxmox/pristine";
  const std::string pool = root + "/pool/pve-no-subscription/p/proxmox-kernel-6.18";
  auto rc = repo("proxmox", "apt", "file://" + root + "/dists/bookworm/Release",
                 {{"buildinfo", "https://buildinfos.example/{source_c}/{source}/{source}_{version}_{arch}.buildinfo"}});
  auto list = synced_sources(t->path() + "/s", rc);
  ASSERT_TRUE(list) << list.error().to_string();
  ASSERT_EQ(list->files.size(), 4u);
  EXPECT_EQ(list->files[0].name, "proxmox-kernel-6.18_6.18.0-1.dsc");
  std::set<std::string> names;
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& f = list->files[i];
    names.insert(f.name);
    EXPECT_EQ(f.url, "file://" + pool + "/" + f.name);
    EXPECT_EQ(f.sha256, sha256sum(pool + "/" + f.name)) << f.name;
    EXPECT_EQ(f.size, fs::file_size(pool + "/" + f.name)) << f.name;
  }
  EXPECT_EQ(names, (std::set<std::string>{"proxmox-kernel-6.18_6.18.0-1.dsc", "proxmox-kernel-6.18_6.18.0.orig.tar.gz",
                                          "proxmox-kernel-6.18_6.18.0-1.debian.tar.xz"}));
  EXPECT_EQ(list->files[3].url, "https://buildinfos.example/p/proxmox-kernel-6.18/proxmox-kernel-6.18_6.18.0-1_amd64.buildinfo");
  EXPECT_EQ(list->files[3].sha256, "");
  EXPECT_TRUE(list->git.empty());
}

TEST(SyncSources, SourcesIndexMustMatchTheRelease) {
  KMR_REQUIRE_FIXTURE_REPOS();
  auto t = TempDir::create("sync-sources");
  ASSERT_TRUE(t);
  const std::string copy = t->path() + "/pve";
  fs::copy(kmr::testing::fixture_repos().dir + "/proxmox/pristine", copy, fs::copy_options::recursive);
  const std::string idx = copy + "/dists/bookworm/pve-no-subscription/source/Sources.gz";
  auto r = run_subprocess({"bash", "-c", "printf 'Package: x\\n' | gzip -n > '" + idx + "'"});
  ASSERT_TRUE(r && r->success());
  auto st = Store::open(t->path() + "/s");
  ASSERT_TRUE(st);
  auto n = sync_repository(**st, repo("proxmox", "apt", "file://" + copy + "/dists/bookworm/Release"), 100,
                           std::chrono::seconds(30));
  ASSERT_FALSE(n);
  EXPECT_NE(n.error().message().find("pve-no-subscription/source/Sources.gz"), std::string::npos) << n.error().message();
  EXPECT_NE(n.error().message().find("proxmox: attaching sources: "), std::string::npos) << n.error().message();
  auto q = (*st)->queue(101);
  ASSERT_TRUE(q);
  EXPECT_EQ((*q)["queued"], 0);
}

TEST(SyncSources, ArchPackagingRepositoryAtTheTag) {
  KMR_REQUIRE_FIXTURE_REPOS();
  auto t = TempDir::create("sync-sources");
  ASSERT_TRUE(t);
  auto list = synced_sources(t->path() + "/s",
                             repo("arch", "arch", "file://" + kmr::testing::fixture_repos().dir + "/arch/pristine/os/x86_64/kmrfix.db"));
  ASSERT_TRUE(list) << list.error().to_string();
  ASSERT_EQ(list->git.size(), 1u);
  EXPECT_EQ(list->git[0].url, "https://gitlab.archlinux.org/archlinux/packaging/packages/linux-kmrfix.git");
  EXPECT_EQ(list->git[0].ref, "6.18.0-1");
  EXPECT_EQ(list->git[0].dir, "linux-kmrfix");
  EXPECT_TRUE(list->files.empty());
}

TEST(SyncSources, SuseSourceRpmWithItsHashFromTheSourceIndex) {
  KMR_REQUIRE_FIXTURE_REPOS();
  if (!have_program("createrepo_c")) KMR_SKIP_OR_FAIL("createrepo_c is not installed");
  auto t = TempDir::create("sync-sources");
  ASSERT_TRUE(t);
  // A source repository laid out as download.opensuse.org's (src/ under an rpm-md root), indexed by createrepo_c.
  const std::string src_repo = t->path() + "/source";
  fs::create_directories(src_repo + "/src");
  std::string srpm;
  for (const auto& e : fs::directory_iterator(kmr::testing::fixture_repos().dir + "/suse/pristine/sources")) {
    srpm = e.path().filename().string();
    fs::copy_file(e.path(), src_repo + "/src/" + srpm);
  }
  auto cr = run_subprocess({"createrepo_c", "-q", src_repo});
  ASSERT_TRUE(cr && cr->success()) << (cr ? cr->err : cr.error().to_string());
  const std::string bin = "file://" + kmr::testing::fixture_repos().dir + "/suse/pristine/repo/";
  auto list = synced_sources(t->path() + "/s", repo("suse", "rpm-md", bin, {{"srpm_index", "file://" + src_repo + "/"}}));
  ASSERT_TRUE(list) << list.error().to_string();
  ASSERT_EQ(list->files.size(), 1u);
  EXPECT_EQ(list->files[0].name, srpm);
  EXPECT_EQ(list->files[0].url, "https://download.opensuse.org/source/tumbleweed/repo/oss/src/" + srpm);
  EXPECT_EQ(list->files[0].sha256, sha256sum(src_repo + "/src/" + srpm));
  EXPECT_EQ(list->files[0].size, fs::file_size(src_repo + "/src/" + srpm));
  // Without the index: the URL only.
  auto bare = synced_sources(t->path() + "/s2", repo("suse", "rpm-md", bin, {{"srpm_index", ""}}));
  ASSERT_TRUE(bare) << bare.error().to_string();
  EXPECT_EQ(bare->files[0].sha256, "");
}

}  // namespace
}  // namespace kmr::server

// Import from a rebuilderd instance: against kmrd's own rebuilderd-compatible API served by
// the real HTTP server (the v1 packages/binary shape, paging with `after`, the `name` filter),
// against a JSON document laid out as rebuilderd's answer, and with hostile answers (huge or
// negative totals, wrong types, oversized strings, cursors that do not advance, endless paging).
#include "server/sync_rebuilderd.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "rebuilder/base/file.h"
#include "rebuilder/base/require.h"
#include "server/api.h"
#include "server/http_client.h"
#include "server/http_server.h"
#include "server/sync.h"
#include "tests/lib/fixtures.h"

namespace kmr::server {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// The fixture kernels (Arch linux + headers, the Proxmox kernel) as a kmrd would hold them.
std::vector<json> fixture_artifacts() {
  std::ifstream in(kmr::testing::fixture_repos().dir + "/manifest.json");
  json m = json::parse(in, nullptr, false);
  std::vector<json> out;
  if (m.is_discarded()) return out;
  for (const json& a : m["artifacts"])
    if (a["set"] == "arch/pristine" || a["set"] == "proxmox/pristine") out.push_back(a);
  return out;
}

// kmrd (store + API + the real HTTP server on a loopback port) serving the fixture kernels.
class Upstream {
 public:
  explicit Upstream(const std::string& dir) {
    config_.origin = "http://127.0.0.1";
    config_.state_dir = dir + "/upstream";
    config_.http.listen = "127.0.0.1:0";
    store_ = std::move(Store::open(config_.state_dir)).value();
    for (const std::string distro : {"arch", "proxmox"}) {
      auto repo = store_->upsert_repository(distro + "-core", distro, "file:///x");
      std::vector<ImportArtifact> arts;
      for (const json& a : fixture_artifacts()) {
        if (a["distro"] != distro) continue;
        ImportArtifact ia;
        ia.set_key = a["set"];
        ia.name = a["name"];
        ia.version = a["version"];
        ia.arch = a["arch"];
        ia.url = "file://" + kmr::testing::fixture_repos().dir + "/" + a["path"].get<std::string>();
        ia.filename = ia.url.substr(ia.url.rfind('/') + 1);
        ia.sha256 = a["sha256"];
        arts.push_back(ia);
      }
      EXPECT_TRUE(repo && store_->import_artifacts(*repo, distro, arts, 1700000000));
    }
    api_ = std::make_unique<Api>(*store_, config_, metrics_, nullptr, StaticFiles::load(""));
    server_ = std::move(HttpServer::create(*api_, config_.http)).value();
    thread_ = std::thread([this] { server_->run([] {}); });
  }
  ~Upstream() {
    server_->stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }

 private:
  Config config_;
  Metrics metrics_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

RepositoryConfig rc_for(const std::string& url, std::vector<std::string> packages) {
  RepositoryConfig rc;
  rc.name = "fleet";
  rc.distro = "arch";
  rc.url = url;
  rc.format = "rebuilderd";
  rc.packages = std::move(packages);
  rc.insecure_unsigned = true;
  return rc;
}

PageFetcher counting_fetch(std::vector<std::string>& urls) {
  return [&urls](const std::string& url) {
    urls.push_back(url);
    return fetch_url(url, 10s, 64 << 20);
  };
}

TEST(SyncRebuilderd, FollowsKmrdsOwnRebuilderdApi) {
  KMR_REQUIRE_FIXTURE_REPOS();
  auto tmp = TempDir::create("sync-rbd");
  ASSERT_TRUE(tmp);
  Upstream up(tmp->path());
  // Glob patterns: every page of the unfiltered list, one record per page.
  std::vector<std::string> urls;
  RebuilderdLimits small;
  small.page_size = 1;
  auto recs = list_rebuilderd(rc_for(up.url(), {"linux-kmrfix*"}), counting_fetch(urls), small);
  ASSERT_TRUE(recs) << recs.error().to_string();
  EXPECT_EQ(recs->size(), 2u);  // linux-kmrfix and its headers; the Proxmox kernel is filtered out
  EXPECT_EQ(urls.size(), 4u);   // three records one by one, then an empty page
  EXPECT_NE(urls[1].find("&after="), std::string::npos) << urls[1];
  // Exact names go to rebuilderd's name filter.
  urls.clear();
  recs = list_rebuilderd(rc_for(up.url(), {"proxmox-kernel-6.18.0-kmrfix"}), counting_fetch(urls));
  ASSERT_TRUE(recs) << recs.error().to_string();
  ASSERT_EQ(recs->size(), 1u);
  EXPECT_NE(urls[0].find("name=proxmox-kernel-6.18.0-kmrfix"), std::string::npos) << urls[0];

  // A full sync: the artifacts' sha256 (computed from their URLs) are the manifest's
  // (sha256sum at fixture build time); Arch linux + headers share kmrd's source name.
  auto store = Store::open(tmp->path() + "/follower");
  ASSERT_TRUE(store);
  auto rc = rc_for(up.url(), {"linux-kmrfix", "linux-kmrfix-headers"});
  auto n = sync_repository(**store, rc, 1700000100, 60s);
  ASSERT_TRUE(n) << n.error().to_string();
  EXPECT_EQ(*n, 1);  // one job: one set
  for (const json& a : fixture_artifacts()) {
    if (a["distro"] != "arch") continue;
    auto got = (*store)->artifact_by_sha256(a["sha256"]);
    ASSERT_TRUE(got && *got) << a["path"];
    EXPECT_EQ((**got)["package"]["name"], a["name"]);
    EXPECT_EQ((**got)["insecure_unsigned"], true);
  }
  // Again: nothing new.
  n = sync_repository(**store, rc, 1700000200, 60s);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0);
  // A remote instance without insecure_unsigned is refused: rebuilderd's API is unsigned.
  rc.insecure_unsigned = false;
  EXPECT_FALSE(sync_repository(**store, rc, 1700000300, 60s));
}

TEST(SyncRebuilderd, JsonDocumentAsTheSpecShows) {
  KMR_REQUIRE_FIXTURE_REPOS();
  auto tmp = TempDir::create("sync-rbd-doc");
  ASSERT_TRUE(tmp);
  const json a = fixture_artifacts()[0];
  // The package beside the document (a link into the fixture cache), named relative to it.
  const std::string file = a["path"].get<std::string>().substr(a["path"].get<std::string>().rfind('/') + 1);
  std::filesystem::create_directories(tmp->path() + "/pkgs");
  std::filesystem::create_symlink(kmr::testing::fixture_repos().dir + "/" + a["path"].get<std::string>(), tmp->path() + "/pkgs/" + file);
  // The binary record shape of rebuilderd's v1 API, URL relative to the document.
  json doc = {{"total", 2},
              {"records",
               {{{"id", 7}, {"name", a["name"]}, {"version", a["version"]}, {"distribution", "archlinux"},
                 {"release", "core"}, {"component", "core"}, {"architecture", a["arch"]},
                 {"url", "pkgs/" + file}, {"status", "GOOD"}, {"build_id", 3}, {"artifact_id", 4},
                 {"diffoscope_log_id", nullptr}, {"attestation_log_id", 3}, {"last_seen", "2026-06-01T00:00:00"},
                 {"seen_in_last_sync", true}},
                {{"id", 9}, {"name", "firefox"}, {"version", "1"}, {"architecture", "x86_64"},
                 {"url", "https://example.invalid/firefox.pkg.tar.zst"}}}}};
  const std::string path = tmp->path() + "/packages-binary.json";
  ASSERT_TRUE(write_file_atomic(path, as_bytes(doc.dump())));
  auto store = Store::open(tmp->path() + "/s");
  ASSERT_TRUE(store);
  auto rc = rc_for("file://" + path, {"linux-*"});
  auto n = sync_repository(**store, rc, 1700000000, 60s);
  ASSERT_TRUE(n) << n.error().to_string();
  EXPECT_EQ(*n, 1);
  auto got = (*store)->artifact_by_sha256(a["sha256"]);
  ASSERT_TRUE(got && *got);
  EXPECT_EQ((**got)["url"], "file://" + tmp->path() + "/pkgs/" + file);
}

TEST(SyncRebuilderd, HostileAnswers) {
  auto bad = [](const std::string& text) { return !parse_rebuilderd_page(text, "t").has_value(); };
  const std::string rec = R"({"id":1,"name":"linux","version":"1","architecture":"x86_64","url":"https://h/l.pkg"})";
  EXPECT_FALSE(bad(R"({"total":0,"records":[]})"));
  // A huge total allocates nothing: it is informational only.
  auto huge = parse_rebuilderd_page(R"({"total":9223372036854775807,"records":[)" + rec + "]}", "t");
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->records.size(), 1u);
  EXPECT_TRUE(bad(R"({"total":-1,"records":[]})"));
  EXPECT_TRUE(bad(R"({"total":1.5,"records":[]})"));
  EXPECT_TRUE(bad(R"({"total":"1","records":[]})"));
  EXPECT_TRUE(bad(R"({"records":[]})"));
  EXPECT_TRUE(bad(R"({"total":1,"records":{}})"));
  EXPECT_TRUE(bad(R"({"total":1,"records":[1]})"));
  EXPECT_TRUE(bad(R"([])"));
  EXPECT_TRUE(bad("not json"));
  EXPECT_TRUE(bad(R"({"total":1,"records":[{"id":"1","name":"l","version":"1","architecture":"x","url":"u"}]})"));
  EXPECT_TRUE(bad(R"({"total":1,"records":[{"id":-4,"name":"l","version":"1","architecture":"x","url":"u"}]})"));
  EXPECT_TRUE(bad(R"({"total":1,"records":[{"id":1,"name":7,"version":"1","architecture":"x","url":"u"}]})"));
  EXPECT_TRUE(bad(R"({"total":1,"records":[{"id":1,"name":"l","version":"1","architecture":"x"}]})"));
  EXPECT_TRUE(bad(R"({"total":1,"records":[{"id":1,"name":"","version":"1","architecture":"x","url":"u"}]})"));
  EXPECT_TRUE(bad(R"({"total":1,"records":[{"id":1,"name":")" + std::string(5000, 'a') +
                  R"(","version":"1","architecture":"x","url":"u"}]})"));

  RepositoryConfig rc = rc_for("https://fleet.invalid", {"linux"});
  RebuilderdLimits limits;
  limits.page_size = 1;
  limits.max_pages = 50;
  // The same full page again and again: the cursor does not advance.
  int calls = 0;
  auto same = [&](const std::string&) -> Result<std::string> {
    ++calls;
    return R"({"total":1,"records":[)" + rec + "]}";
  };
  auto r = list_rebuilderd(rc, same, limits);
  EXPECT_FALSE(r);
  EXPECT_EQ(calls, 2);
  // Ever new pages: stopped at max_pages.
  std::int64_t next = 0;
  auto endless = [&](const std::string&) -> Result<std::string> {
    ++next;
    return R"({"total":1,"records":[{"id":)" + std::to_string(next) +
           R"(,"name":"linux","version":"1","architecture":"x86_64","url":"https://h/l.pkg"}]})";
  };
  r = list_rebuilderd(rc, endless, limits);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("more than 50 pages"), std::string::npos) << r.error().to_string();
  // Ids going backwards inside one page.
  limits.page_size = 10;
  auto backwards = [&](const std::string&) -> Result<std::string> {
    return std::string(R"({"total":2,"records":[{"id":5,"name":"linux","version":"1","architecture":"x","url":"https://h/a"},)"
                       R"({"id":3,"name":"linux","version":"1","architecture":"x","url":"https://h/b"}]})");
  };
  EXPECT_FALSE(list_rebuilderd(rc, backwards, limits));
  // More records than allowed in total.
  limits.max_records = 3;
  limits.page_size = 1;
  limits.max_pages = 100;
  next = 0;
  r = list_rebuilderd(rc, endless, limits);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("more than 3 records"), std::string::npos) << r.error().to_string();
}

}  // namespace
}  // namespace kmr::server

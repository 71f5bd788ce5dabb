#include "server/api.h"

#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "attest/keys.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "server/auth.h"

namespace kmr::server {
namespace {

using nlohmann::json;

std::string hexof(int i) { return sha256_hex(Bytes(reinterpret_cast<const std::uint8_t*>(&i), sizeof i)); }

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = TempDir::create("api-test");
    ASSERT_TRUE(t.has_value());
    dir_.emplace(std::move(t).value());
    config_.admin_token = "secret-token";
    config_.state_dir = dir_->path() + "/state";
    auto s = Store::open(config_.state_dir);
    ASSERT_TRUE(s.has_value());
    store_ = std::move(s).value();
    auto at = Attestor::open(config_.state_dir, "", "https://test.invalid/kmr", "http://127.0.0.1");
    ASSERT_TRUE(at.has_value()) << at.error().to_string();
    attestor_ = std::move(at).value();
    // Like Bazel runfiles: the served files are symlinks to files elsewhere.
    std::filesystem::create_directories(dir_->path() + "/web");
    std::filesystem::create_directories(dir_->path() + "/src");
    ASSERT_TRUE(write_file_atomic(dir_->path() + "/src/index.html",
                                  Bytes(reinterpret_cast<const std::uint8_t*>("<html></html>"), 13)).has_value());
    std::filesystem::create_symlink(dir_->path() + "/src/index.html", dir_->path() + "/web/index.html");
    api_ = std::make_unique<Api>(*store_, config_, metrics_, attestor_.get(), StaticFiles::load(dir_->path() + "/web"),
                                 [this] { return now_; });
    api_->on_report = [this](const ReportOutcome& o, const Report&) {
      (void)attestor_->attest_rebuild(*store_, o.rebuild_id, now_);
    };
    auto repo = store_->upsert_repository("arch", "arch", "file:///x");
    ASSERT_TRUE(repo.has_value());
    std::vector<ImportArtifact> arts = {
        {"linux-1", "linux", "1", "x86_64", "linux-1.pkg.tar.zst", "file:///x/l", hexof(1), 1},
        {"linux-1", "linux-headers", "1", "x86_64", "linux-headers-1.pkg.tar.zst", "file:///x/h", hexof(2), 1}};
    ASSERT_TRUE(store_->import_artifacts(*repo, "arch", arts, now_).has_value());
    auto k = attest::Ed25519Key::generate();
    ASSERT_TRUE(k.has_value());
    key_.emplace(std::move(k).value());
    auto other = attest::Ed25519Key::generate();
    other_.emplace(std::move(other).value());
    HttpResponse reg = admin("/api/v1/admin/workers",
                             json{{"name", "w1"}, {"public_key", to_hex(key_->raw_public())}}.dump());
    ASSERT_EQ(reg.status, 201) << reg.body;
  }

  HttpResponse get(const std::string& target, std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpRequest r{"GET", target, std::move(headers), "", "127.0.0.1"};
    return api_->handle(r);
  }
  HttpResponse admin(const std::string& target, const std::string& body, const std::string& token = "secret-token") {
    HttpRequest r{"POST", target, {{"authorization", "Bearer " + token}}, body, "127.0.0.1"};
    return api_->handle(r);
  }
  HttpRequest signed_req(const attest::Ed25519Key& k, const std::string& target, const std::string& body) {
    auto h = sign_request(k, "POST", target, body, now_);
    EXPECT_TRUE(h.has_value());
    HttpRequest r{"POST", target, {}, body, "10.0.0.7"};
    for (auto& [name, v] : h->as_list()) {
      std::string lower = name;
      for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers.emplace_back(lower, v);
    }
    return r;
  }
  json body(const HttpResponse& r) { return json::parse(r.body); }
  std::string error_code(const HttpResponse& r) { return body(r)["error"]["code"]; }
  json claim() {
    HttpResponse r = api_->handle(signed_req(*key_, "/api/v1/worker/claim", "{}"));
    EXPECT_EQ(r.status, 200) << r.body;
    return body(r)["job"];
  }
  std::size_t blob_count() {
    std::size_t n = 0;
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(config_.state_dir + "/blobs", ec);
         it != std::filesystem::recursive_directory_iterator(); ++it)
      if (it->is_regular_file()) ++n;
    return n;
  }

  std::int64_t now_ = 1'700'000'000;
  std::optional<TempDir> dir_;
  Config config_;
  Metrics metrics_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Attestor> attestor_;
  std::unique_ptr<Api> api_;
  std::optional<attest::Ed25519Key> key_, other_;
};

TEST_F(ApiTest, UnknownHashIs404Json) {
  HttpResponse r = get("/api/v1/artifacts/sha256/" + std::string(64, 'a'));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(error_code(r), "not_found");
  EXPECT_EQ(r.content_type, "application/json");
}

TEST_F(ApiTest, BadInputsAreJson4xx) {
  EXPECT_EQ(error_code(get("/api/v1/artifacts/sha256/xyz")), "invalid_hex");
  EXPECT_EQ(error_code(get("/api/v1/artifacts/sha256/" + std::string(64, 'A'))), "invalid_hex");
  EXPECT_EQ(get("/api/v1/../etc/passwd").status, 400);
  EXPECT_EQ(error_code(get("/ui/../../etc/passwd")), "bad_path");
  EXPECT_EQ(error_code(get("/ui/%2e%2e/secret")), "bad_path");
  EXPECT_EQ(error_code(get("/api/v1/artifacts?bogus=1")), "unknown_parameter");
  EXPECT_EQ(error_code(get("/api/v1/artifacts?cursor=abc")), "invalid_cursor");
  EXPECT_EQ(error_code(get("/api/v1/builds/12x")), "invalid_id");
  EXPECT_EQ(error_code(get("relative")), "bad_target");
  HttpRequest del{"DELETE", "/api/v1/queue", {}, "", ""};
  EXPECT_EQ(api_->handle(del).status, 405);
  HttpRequest head{"HEAD", "/api/v1/stats", {}, "", ""};
  EXPECT_EQ(api_->handle(head).status, 200);
}

TEST_F(ApiTest, SecurityHeadersEverywhere) {
  for (const auto& r : {get("/"), get("/api/v1/stats"), get("/nope")}) {
    bool csp = false, nosniff = false;
    for (auto& [k, v] : r.headers) {
      if (k == "Content-Security-Policy" && v == "default-src 'self'") csp = true;
      if (k == "X-Content-Type-Options" && v == "nosniff") nosniff = true;
    }
    EXPECT_TRUE(csp && nosniff);
  }
  EXPECT_EQ(get("/").body, "<html></html>");
}

TEST_F(ApiTest, WorkerAuthRejectsUnsignedForgedReplayedStale) {
  HttpRequest unsigned_req{"POST", "/api/v1/worker/claim", {}, "{}", ""};
  EXPECT_EQ(error_code(api_->handle(unsigned_req)), "unsigned");
  // Signed by an unregistered key.
  EXPECT_EQ(error_code(api_->handle(signed_req(*other_, "/api/v1/worker/claim", "{}"))), "unknown_worker");
  // Forged: registered key id, signature by another key.
  HttpRequest forged = signed_req(*other_, "/api/v1/worker/claim", "{}");
  for (auto& [k, v] : forged.headers)
    if (k == "x-kmr-key") v = to_hex(key_->raw_public());
  EXPECT_EQ(error_code(api_->handle(forged)), "bad_signature");
  // Body swapped after signing.
  HttpRequest swapped = signed_req(*key_, "/api/v1/worker/claim", "{}");
  swapped.body = "{\"resource_classes\":[]}";
  EXPECT_EQ(error_code(api_->handle(swapped)), "bad_signature");
  // Replay.
  HttpRequest once = signed_req(*key_, "/api/v1/worker/claim", "{}");
  EXPECT_EQ(api_->handle(once).status, 200);
  EXPECT_EQ(error_code(api_->handle(once)), "replayed");
  // Stale.
  HttpRequest old = signed_req(*key_, "/api/v1/worker/claim", "{}");
  now_ += 3600;
  EXPECT_EQ(error_code(api_->handle(old)), "stale_timestamp");
}

TEST_F(ApiTest, ReportFlowWithAttestationAndLeaseChecks) {
  json job = claim();
  ASSERT_TRUE(job.is_object());
  std::string target = "/api/v1/worker/jobs/" + std::to_string(job["id"].get<int>()) + "/report";
  json rep = {{"lease", job["lease"]}, {"status", "verified"}, {"module_root", "match"}, {"files", "identical"},
              {"shipped_root", "ab12"}, {"rebuilt_root", "ab12"}, {"log", "build log\nline 2\n"},
              {"rebuilt", {{{"name", "linux-1.pkg.tar.zst"}, {"sha256", hexof(1)}}}}};
  std::size_t blobs_before = blob_count();
  // Wrong lease token: 409 and nothing written.
  json wrong = rep;
  wrong["lease"] = "deadbeef";
  EXPECT_EQ(error_code(api_->handle(signed_req(*key_, target, wrong.dump()))), "lease_not_held");
  EXPECT_EQ(blob_count(), blobs_before);
  // Unknown field / invalid JSON.
  json unknown = rep;
  unknown["surprise"] = 1;
  EXPECT_EQ(error_code(api_->handle(signed_req(*key_, target, unknown.dump()))), "unknown_field");
  EXPECT_EQ(error_code(api_->handle(signed_req(*key_, target, "{not json"))), "invalid_json");
  json badhex = rep;
  badhex["rebuilt"][0]["sha256"] = "zz";
  EXPECT_EQ(error_code(api_->handle(signed_req(*key_, target, badhex.dump()))), "invalid_hex");
  EXPECT_TRUE(body(get("/api/v1/artifacts/sha256/" + hexof(1)))["verdicts"].is_null());

  HttpResponse ok = api_->handle(signed_req(*key_, target, rep.dump()));
  ASSERT_EQ(ok.status, 200) << ok.body;
  // Second report for the same lease: refused, no duplicate.
  EXPECT_EQ(error_code(api_->handle(signed_req(*key_, target, rep.dump()))), "lease_not_held");

  HttpResponse a = get("/api/v1/artifacts/sha256/" + hexof(1));
  ASSERT_EQ(a.status, 200);
  json aj = body(a);
  EXPECT_EQ(aj["sha256"], hexof(1));
  EXPECT_EQ(aj["distro"], "arch");
  EXPECT_EQ(aj["package"]["name"], "linux");
  EXPECT_EQ(aj["package"]["version"], "1");
  EXPECT_EQ(aj["verdicts"]["module_root"], "match");
  EXPECT_EQ(aj["verdicts"]["files"], "identical");
  EXPECT_EQ(aj["history"].size(), 1u);
  EXPECT_EQ(aj["attestations"].size(), 1u);
  ASSERT_TRUE(aj["log"].is_string());
  HttpResponse log = get(aj["log"]);
  EXPECT_EQ(log.body, "build log\nline 2\n");
  HttpResponse tail = get(aj["log"], {{"range", "bytes=-7"}});
  EXPECT_EQ(tail.status, 206);
  EXPECT_EQ(tail.body, "line 2\n");
  HttpResponse env = get(aj["attestations"][0]);
  ASSERT_EQ(env.status, 200);
  json ej = body(env);
  EXPECT_EQ(ej["payloadType"], "application/vnd.in-toto+json");
  EXPECT_EQ(ej["signatures"].size(), 1u);
  // ETag revalidation.
  std::string etag;
  for (auto& [k, v] : a.headers)
    if (k == "ETag") etag = v;
  ASSERT_FALSE(etag.empty());
  EXPECT_EQ(get("/api/v1/artifacts/sha256/" + hexof(1), {{"if-none-match", etag}}).status, 304);
  // Listing and stats.
  json list = body(get("/api/v1/artifacts?distro=arch&verdict=identical"));
  EXPECT_EQ(list["items"].size(), 2u);
  EXPECT_TRUE(list["next"].is_null());
  json stats = body(get("/api/v1/stats"));
  EXPECT_EQ(stats["distros"][0]["reproducible"], 2);
  EXPECT_NE(get("/metrics").body.find("kmrd_http_requests_total{route=\"/api/v1/artifacts/sha256/{hex}\",status=\"200\"}"),
            std::string::npos);
}

TEST_F(ApiTest, AdminNeedsTokenAndWorkerAddressesAdminOnly) {
  EXPECT_EQ(error_code(admin("/api/v1/admin/requeue", "{\"failed\":true}", "wrong-token-")), "unauthorized");
  EXPECT_EQ(error_code(admin("/api/v1/admin/workers", "{\"name\":\"x\",\"public_key\":\"zz\"}")), "invalid_hex");
  EXPECT_EQ(error_code(admin("/api/v1/admin/requeue", "{\"job\":1,\"failed\":true}")), "invalid_field");
  claim();  // records the worker's address
  json pub = body(get("/api/v1/workers"));
  ASSERT_EQ(pub["items"].size(), 1u);
  EXPECT_FALSE(pub["items"][0].contains("address"));
  json adm = body(get("/api/v1/workers", {{"authorization", "Bearer secret-token"}}));
  EXPECT_EQ(adm["items"][0]["address"], "10.0.0.7");
}

TEST_F(ApiTest, ExpiredLeaseReportRefused) {
  config_.queue.lease_seconds = 10;
  json job = claim();
  now_ += 11;
  // Another claim reaps the expired lease and hands the job out again.
  json again = claim();
  EXPECT_EQ(again["id"], job["id"]);
  std::string target = "/api/v1/worker/jobs/" + std::to_string(job["id"].get<int>()) + "/report";
  json rep = {{"lease", job["lease"]}, {"status", "error"}, {"reason", "late"}};
  EXPECT_EQ(error_code(api_->handle(signed_req(*key_, target, rep.dump()))), "lease_not_held");
}

}  // namespace
}  // namespace kmr::server

#include "server/api.h"

#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "attest/base64.h"
#include "attest/keys.h"
#include "attest/statement.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "server/api_test_fixture.h"
#include "server/auth.h"

namespace kmr::server {
namespace {

using nlohmann::json;

std::string hexof(int i) { return sha256_hex(Bytes(reinterpret_cast<const std::uint8_t*>(&i), sizeof i)); }

class ApiTest : public ApiFixture {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(open_store("api-test"));
    config_.admin_token = "secret-token";
    // Like Bazel runfiles: the served files are symlinks to files elsewhere.
    std::filesystem::create_directories(dir_->path() + "/web");
    std::filesystem::create_directories(dir_->path() + "/src");
    ASSERT_TRUE(write_file_atomic(dir_->path() + "/src/index.html",
                                  Bytes(reinterpret_cast<const std::uint8_t*>("<html></html>"), 13)).has_value());
    std::filesystem::create_symlink(dir_->path() + "/src/index.html", dir_->path() + "/web/index.html");
    start_api();
    api_->set_reply_key(&attestor_->key());
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
  HttpRequest signed_req(const attest::Ed25519Key& k, const std::string& target, const std::string& body,
                         const std::string& origin = "http://kmrd.test:8080") {
    auto h = sign_request(k, origin, "POST", target, body, now_);
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

// The attestation service's routes are served by kmrd's router: kmrd's error shape, metrics
// labels, method check, conditional requests and security headers.
TEST_F(ApiTest, LogRoutesGoThroughTheOneRouter) {
  attest::StatementInput in;
  in.subjects = {{"linux-1.pkg.tar.zst", hexof(1)}};
  in.verifier_id = "https://test.invalid/kmr";
  in.resource_uri = "pkg:arch/linux@1";
  in.module_root = "match";
  in.files = "identical";
  ASSERT_TRUE(attestor_->service().attest(in).has_value());
  HttpResponse cp = get("/api/v1/log/checkpoint");
  EXPECT_EQ(cp.status, 200);
  EXPECT_EQ(cp.content_type, "text/plain; charset=utf-8");
  EXPECT_EQ(cp.route, "/api/v1/log");
  EXPECT_EQ(cp.header("Content-Security-Policy"), "default-src 'self'");
  EXPECT_EQ(get("/checkpoint").body, cp.body);
  EXPECT_EQ(get("/api/v1/keys").route, "/api/v1/keys");
  HttpResponse entry = get("/api/v1/log/entries/0");
  ASSERT_EQ(entry.status, 200) << entry.body;
  const std::string etag(entry.header("ETag"));
  ASSERT_EQ(etag.size(), 66u);
  EXPECT_EQ(get("/api/v1/log/entries/0", {{"if-none-match", etag}}).status, 304);
  HttpResponse tile = get("/tile/0/000.p/1");
  EXPECT_EQ(tile.status, 200);
  EXPECT_EQ(tile.route, "/tile");
  struct Case {
    std::string target;
    int status;
    std::string code, message;
  } cases[] = {
      {"/api/v1/log/entries/x", 400, "invalid_id", "entry index must be a decimal number"},
      {"/api/v1/log/entries/5", 404, "not_found", "log entry 5 does not exist"},
      {"/api/v1/log/proof/inclusion?hash=zz", 400, "invalid_hex", "hash must be 64 hex digits"},
      {"/api/v1/log/proof/inclusion?index=%41", 400, "bad_query", "index must be a decimal number"},
      {"/api/v1/log/proof/inclusion?index=%4", 400, "bad_query", "query string has a bad percent-escape"},
      {"/api/v1/log/proof/consistency?old=1", 400, "bad_query", "new must be a decimal number"},
      {"/api/v1/log/nothing", 404, "not_found", "no such endpoint"},
      {"/tile/9/000", 404, "not_found", "tile path: bad level '9'"},
  };
  for (const auto& c : cases) {
    HttpResponse r = get(c.target);
    EXPECT_EQ(r.status, c.status) << c.target;
    EXPECT_EQ(body(r), json({{"error", {{"code", c.code}, {"message", c.message}}}})) << c.target;
  }
  HttpRequest post{"POST", "/api/v1/log/checkpoint", {}, "", "127.0.0.1"};
  HttpResponse refused = api_->handle(post);
  EXPECT_EQ(refused.status, 405);
  EXPECT_EQ(error_code(refused), "method_not_allowed");
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
              {"rebuilt", {{{"name", "linux-1.pkg.tar.zst"}, {"sha256", hexof(1)}},
                           {{"name", "linux-headers-1.pkg.tar.zst"}, {"sha256", hexof(2)}}}}};
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

std::string header_of(const HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

// The in-toto statement inside an attestation envelope served by the API.
json statement_of(const std::string& envelope) {
  json env = json::parse(envelope);
  auto payload = attest::base64_decode(env["payload"].get<std::string>());
  EXPECT_TRUE(payload.has_value());
  return json::parse(std::string(payload->begin(), payload->end()));
}

TEST_F(ApiTest, IdenticalClaimWithDifferentHashIsDowngraded) {
  json job = claim();
  std::string target = "/api/v1/worker/jobs/" + std::to_string(job["id"].get<int>()) + "/report";
  // The worker claims identical and a matching root, but its own hashes and roots disagree.
  json rep = {{"lease", job["lease"]}, {"status", "verified"}, {"module_root", "match"}, {"files", "identical"},
              {"shipped_root", "ab12"}, {"rebuilt_root", "cd34"},
              {"rebuilt", {{{"name", "linux-1.pkg.tar.zst"}, {"sha256", hexof(1)}},
                           {{"name", "linux-headers-1.pkg.tar.zst"}, {"sha256", hexof(77)}}}}};
  HttpResponse ok = api_->handle(signed_req(*key_, target, rep.dump()));
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_FALSE(body(ok)["reproducible"]);
  EXPECT_NE(body(ok)["downgraded"].get<std::string>().find("linux-headers-1.pkg.tar.zst"), std::string::npos);
  json headers = body(get("/api/v1/artifacts/sha256/" + hexof(2)));
  EXPECT_EQ(headers["verdicts"]["files"], "different");
  EXPECT_EQ(headers["verdicts"]["module_root"], "mismatch");
  EXPECT_FALSE(headers["verdicts"]["reproducible"]);
  EXPECT_NE(headers["verdicts"]["downgraded"].get<std::string>().find("roots differ"), std::string::npos);
  // The bit-identical package stays identical per artifact; the root claim is still refused.
  json linux_art = body(get("/api/v1/artifacts/sha256/" + hexof(1)));
  EXPECT_EQ(linux_art["verdicts"]["files"], "identical");
  EXPECT_EQ(linux_art["verdicts"]["module_root"], "mismatch");
  json build = body(get("/api/v1/builds/" + std::to_string(body(ok)["build"].get<int>())));
  EXPECT_EQ(build["files"], "different");
  EXPECT_TRUE(build["downgraded"].is_string());
  // The signed attestation carries the downgraded verdict, never PASSED.
  ASSERT_EQ(headers["attestations"].size(), 1u);
  json st = statement_of(get(headers["attestations"][0]).body);
  EXPECT_EQ(st["predicate"]["verificationResult"], "FAILED") << st.dump();
}

TEST_F(ApiTest, IdenticalWithoutRebuiltHashesIsNotAccepted) {
  json job = claim();
  std::string target = "/api/v1/worker/jobs/" + std::to_string(job["id"].get<int>()) + "/report";
  json rep = {{"lease", job["lease"]}, {"status", "verified"}, {"module_root", "absent"}, {"files", "identical"}};
  HttpResponse ok = api_->handle(signed_req(*key_, target, rep.dump()));
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_FALSE(body(ok)["reproducible"]);
  EXPECT_EQ(body(get("/api/v1/artifacts/sha256/" + hexof(1)))["verdicts"]["files"], "different");
}

TEST_F(ApiTest, RepliesAreSignedAndBoundToTheRequestNonce) {
  HttpRequest req = signed_req(*key_, "/api/v1/worker/claim", "{}");
  HttpResponse r = api_->handle(req);
  ASSERT_EQ(r.status, 200);
  std::string sig = header_of(r, "X-Kmr-Reply-Signature");
  ASSERT_EQ(sig.size(), 128u);
  std::string nonce(req.header("x-kmr-nonce"));
  const attest::Ed25519Key& kmrd_key = attestor_->key();
  EXPECT_TRUE(verify_reply(kmrd_key, config_.origin, nonce, r.status, r.body, sig).has_value());
  // A swapped job, another request's nonce, another origin, another status or key: rejected.
  std::string swapped = r.body;
  swapped[swapped.size() / 2] ^= 1;
  EXPECT_FALSE(verify_reply(kmrd_key, config_.origin, nonce, r.status, swapped, sig).has_value());
  EXPECT_FALSE(verify_reply(kmrd_key, config_.origin, std::string(32, 'a'), r.status, r.body, sig).has_value());
  EXPECT_FALSE(verify_reply(kmrd_key, "http://evil.test", nonce, r.status, r.body, sig).has_value());
  EXPECT_FALSE(verify_reply(kmrd_key, config_.origin, nonce, 500, r.body, sig).has_value());
  EXPECT_FALSE(verify_reply(*other_, config_.origin, nonce, r.status, r.body, sig).has_value());
  EXPECT_FALSE(verify_reply(kmrd_key, config_.origin, nonce, r.status, r.body, "").has_value());
  // Refusals are signed too.
  HttpResponse refused = api_->handle(req);
  EXPECT_EQ(error_code(refused), "replayed");
  EXPECT_TRUE(verify_reply(kmrd_key, config_.origin, nonce, refused.status, refused.body,
                           header_of(refused, "X-Kmr-Reply-Signature")).has_value());
  // A request signed for another kmrd origin is refused, and the origin is inside the signature.
  EXPECT_EQ(error_code(api_->handle(signed_req(*key_, "/api/v1/worker/claim", "{}", "http://other.test"))),
            "wrong_origin");
  HttpRequest moved = signed_req(*key_, "/api/v1/worker/claim", "{}", "http://other.test");
  for (auto& [k, v] : moved.headers)
    if (k == "x-kmr-origin") v = config_.origin;
  EXPECT_EQ(error_code(api_->handle(moved)), "bad_signature");
}

TEST_F(ApiTest, LeaseExpiryIsCheckedOnHeartbeatAndReport) {
  config_.queue.lease_seconds = 10;
  json job = claim();
  std::string base = "/api/v1/worker/jobs/" + std::to_string(job["id"].get<int>());
  json hb = {{"lease", job["lease"]}};
  EXPECT_EQ(api_->handle(signed_req(*key_, base + "/heartbeat", hb.dump())).status, 200);
  now_ += 11;  // past the lease, not yet reaped
  HttpResponse h = api_->handle(signed_req(*key_, base + "/heartbeat", hb.dump()));
  EXPECT_EQ(h.status, 410);
  EXPECT_EQ(error_code(h), "lease_expired");
  std::size_t blobs_before = blob_count();
  json rep = {{"lease", job["lease"]}, {"status", "error"}, {"reason", "late"}, {"log", "late log"}};
  HttpResponse r = api_->handle(signed_req(*key_, base + "/report", rep.dump()));
  EXPECT_EQ(r.status, 410);
  EXPECT_EQ(error_code(r), "lease_expired");
  EXPECT_EQ(blob_count(), blobs_before);
  EXPECT_TRUE(body(get("/api/v1/artifacts/sha256/" + hexof(1)))["history"].empty());
}

TEST_F(ApiTest, RunningLeasesPerWorkerAreCapped) {
  auto repo = store_->upsert_repository("more", "arch", "file:///y");
  ASSERT_TRUE(repo.has_value());
  std::vector<ImportArtifact> arts;
  for (int i = 10; i < 13; ++i)
    arts.push_back({"set-" + std::to_string(i), "linux", std::to_string(i), "x86_64", "l" + std::to_string(i) + ".pkg",
                    "file:///y/l", hexof(i), 1});
  ASSERT_TRUE(store_->import_artifacts(*repo, "arch", arts, now_).has_value());
  config_.queue.max_leases_per_worker = 2;
  claim();
  claim();
  HttpResponse third = api_->handle(signed_req(*key_, "/api/v1/worker/claim", "{}"));
  EXPECT_EQ(third.status, 429);
  EXPECT_EQ(error_code(third), "too_many_leases");
  EXPECT_EQ(body(get("/api/v1/queue"))["running"], 2);
}

TEST_F(ApiTest, DeepJsonIsRefusedBeforeItIsStored) {
  json job = claim();
  std::string target = "/api/v1/worker/jobs/" + std::to_string(job["id"].get<int>()) + "/report";
  std::string deep = std::string(65, '[') + std::string(65, ']');
  std::string rep = R"({"lease":")" + job["lease"].get<std::string>() +
                    R"(","status":"error","reason":"x","details":{"d":)" + deep + "}}";
  std::size_t blobs_before = blob_count();
  HttpResponse r = api_->handle(signed_req(*key_, target, rep));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(error_code(r), "json_too_deep");
  EXPECT_EQ(blob_count(), blobs_before);
  EXPECT_EQ(error_code(admin("/api/v1/admin/requeue", deep)), "json_too_deep");
  // 62 levels inside the two outer objects: accepted.
  std::string ok_rep = R"({"lease":")" + job["lease"].get<std::string>() + R"(","status":"error","reason":"x","details":{"d":)" +
                       std::string(62, '[') + std::string(62, ']') + "}}";
  EXPECT_EQ(api_->handle(signed_req(*key_, target, ok_rep)).status, 200);
}

TEST_F(ApiTest, SecondKeyUnderAKnownNameIsAConflict) {
  HttpResponse r = admin("/api/v1/admin/workers", json{{"name", "w1"}, {"public_key", to_hex(other_->raw_public())}}.dump());
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(error_code(r), "conflict");
  // The original key still works; the other key is still unknown.
  claim();
  EXPECT_EQ(error_code(api_->handle(signed_req(*other_, "/api/v1/worker/claim", "{}"))), "unknown_worker");
  // Re-registering the same key under its name is idempotent.
  EXPECT_EQ(admin("/api/v1/admin/workers", json{{"name", "w1"}, {"public_key", to_hex(key_->raw_public())}}.dump()).status,
            201);
}

TEST_F(ApiTest, DisabledWorkerGets403OnEveryCall) {
  json job = claim();
  HttpResponse d = admin("/api/v1/admin/workers/disable", R"({"name":"w1"})");
  ASSERT_EQ(d.status, 200) << d.body;
  EXPECT_EQ(error_code(admin("/api/v1/admin/workers/disable", R"({"name":"nobody"})")), "not_found");
  std::string base = "/api/v1/worker/jobs/" + std::to_string(job["id"].get<int>());
  for (const auto& [target, b] : std::vector<std::pair<std::string, std::string>>{
           {"/api/v1/worker/claim", "{}"},
           {base + "/heartbeat", json{{"lease", job["lease"]}}.dump()},
           {base + "/report", json{{"lease", job["lease"]}, {"status", "error"}}.dump()}}) {
    HttpRequest req = signed_req(*key_, target, b);
    HttpResponse r = api_->handle(req);
    EXPECT_EQ(r.status, 403) << target;
    EXPECT_EQ(error_code(r), "worker_disabled");
    req.body.clear();  // checked from the headers alone, before any body is read
    auto pre = api_->precheck(req);
    ASSERT_TRUE(pre.has_value());
    EXPECT_EQ(pre->status, 403);
  }
  // Its job went back to the queue.
  EXPECT_EQ(body(get("/api/v1/queue"))["running"], 0);
  ASSERT_EQ(admin("/api/v1/admin/workers/enable", R"({"name":"w1"})").status, 200);
  claim();
}

TEST_F(ApiTest, PrecheckRefusesFromHeadersAlone) {
  HttpRequest head = signed_req(*other_, "/api/v1/worker/jobs/1/report", "x");
  head.body.clear();
  auto r = api_->precheck(head);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(error_code(*r), "unknown_worker");
  HttpRequest good = signed_req(*key_, "/api/v1/worker/jobs/1/report", "x");
  good.body.clear();
  EXPECT_FALSE(api_->precheck(good).has_value());
  HttpRequest stale = good;
  now_ += 3600;
  EXPECT_EQ(error_code(*api_->precheck(stale)), "stale_timestamp");
  HttpRequest adm{"POST", "/api/v1/admin/requeue", {{"authorization", "Bearer nope"}}, "", ""};
  EXPECT_EQ(api_->precheck(adm)->status, 401);
  HttpRequest pub{"GET", "/api/v1/stats", {}, "", ""};
  EXPECT_FALSE(api_->precheck(pub).has_value());
}

TEST_F(ApiTest, StoreErrorsGiveAGenericMessage) {
  ASSERT_TRUE(store_->writer().exec("DROP TABLE verdicts").has_value());
  HttpResponse r = get("/api/v1/artifacts/sha256/" + hexof(1));
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(error_code(r), "internal");
  for (const char* leak : {"verdicts", "SQL", "sqlite", "no such", "kmrd.sqlite"})
    EXPECT_EQ(r.body.find(leak), std::string::npos) << leak << " in " << r.body;
  EXPECT_EQ(r.body.find(config_.state_dir), std::string::npos);
  HttpResponse l = get("/api/v1/artifacts");
  EXPECT_EQ(l.status, 500);
  EXPECT_EQ(l.body.find("verdicts"), std::string::npos) << l.body;
}

TEST_F(ApiTest, ConfirmationsFromDistinctWorkersBeforeAVerdictIsSigned) {
  config_.queue.confirmations = 2;
  auto k2 = attest::Ed25519Key::generate();
  ASSERT_TRUE(k2.has_value());
  ASSERT_EQ(admin("/api/v1/admin/workers", json{{"name", "w2"}, {"public_key", to_hex(k2->raw_public())}}.dump()).status,
            201);
  auto report_as = [&](const attest::Ed25519Key& k, const json& job) {
    std::string target = "/api/v1/worker/jobs/" + std::to_string(job["id"].get<int>()) + "/report";
    json rep = {{"lease", job["lease"]}, {"status", "verified"}, {"module_root", "match"}, {"files", "identical"},
                {"shipped_root", "ab12"}, {"rebuilt_root", "ab12"},
                {"rebuilt", {{{"name", "linux-1.pkg.tar.zst"}, {"sha256", hexof(1)}},
                             {{"name", "linux-headers-1.pkg.tar.zst"}, {"sha256", hexof(2)}}}}};
    return api_->handle(signed_req(k, target, rep.dump()));
  };
  json job = claim();
  HttpResponse first = report_as(*key_, job);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(body(first)["job_state"], "queued");
  EXPECT_EQ(body(first)["awaiting_confirmation"]["confirmed_by"], 1);
  json a = body(get("/api/v1/artifacts/sha256/" + hexof(1)));
  EXPECT_TRUE(a["verdicts"].is_null());  // one worker's word is not a verdict yet
  EXPECT_TRUE(a["attestations"].empty());
  EXPECT_EQ(a["history"].size(), 1u);
  // The same worker cannot confirm itself.
  EXPECT_TRUE(claim().is_null());
  HttpResponse c2 = api_->handle(signed_req(*k2, "/api/v1/worker/claim", "{}"));
  json job2 = body(c2)["job"];
  ASSERT_TRUE(job2.is_object()) << c2.body;
  HttpResponse second = report_as(*k2, job2);
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(body(second)["job_state"], "done");
  EXPECT_FALSE(body(second).contains("awaiting_confirmation"));
  a = body(get("/api/v1/artifacts/sha256/" + hexof(1)));
  EXPECT_EQ(a["verdicts"]["files"], "identical");
  ASSERT_EQ(a["attestations"].size(), 1u);
  EXPECT_EQ(statement_of(get(a["attestations"][0]).body)["predicate"]["verificationResult"], "PASSED");
}

}  // namespace
}  // namespace kmr::server

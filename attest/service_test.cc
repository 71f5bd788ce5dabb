#include "attest/service.h"

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "attest/base64.h"
#include "attest/dsse.h"
#include "attest/tlog_proof.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/net/router.h"

namespace kmr::attest {
namespace {

using Published = AttestationService::Published;

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.emplace(std::move(TempDir::create("attest-svc")).value());
    log_ = std::move(TransparencyLog::open(dir_->path() + "/log")).value();
    KeySet keys;
    keys.add({key_.keyid(), key_.public_pem(), make_vkey("kmr.test/log", key_), "2026-01-01T00:00:00Z", "", true});
    svc_ = std::make_unique<AttestationService>(*log_, key_, "kmr.test/log", keys);
    svc_->add_routes(router_);
  }
  Published publish(const std::string& files) {
    StatementInput in;
    in.subjects = {{"linux.deb", sha256_hex(as_bytes("deb"))}};
    in.verifier_id = "https://kmr.test";
    in.resource_uri = "pkg:deb/debian/linux@" + std::to_string(++counter_);
    in.module_root = "match";
    in.files = files;
    return *svc_->attest(in);
  }
  // Through the router kmrd uses; a path that is not the service's answers 418 here.
  net::HttpResponse call(std::string method, std::string target, std::string if_none_match = "") {
    net::HttpRequest req;
    req.method = std::move(method);
    req.target = std::move(target);
    if (!if_none_match.empty()) req.headers.emplace_back("if-none-match", if_none_match);
    auto r = router_.handle(req);
    if (r) return *r;
    net::HttpResponse unrouted;
    unrouted.status = 418;
    return unrouted;
  }
  net::HttpResponse get(const std::string& path, const std::string& query = "") {
    return call("GET", query.empty() ? path : path + "?" + query);
  }

  int counter_ = 0;
  Ed25519Key key_ = std::move(Ed25519Key::generate()).value();
  std::optional<TempDir> dir_;
  std::unique_ptr<TransparencyLog> log_;
  std::unique_ptr<AttestationService> svc_;
  net::Router router_;
};

TEST_F(ServiceTest, AttestAppendsVerifiableEnvelopes) {
  auto p0 = publish("identical");
  auto p1 = publish("different");  // negative results are attested and logged too
  EXPECT_EQ(p0.log_index, 0u);
  EXPECT_EQ(p1.log_index, 1u);
  auto v = verify_envelope(p1.envelope, {&key_});
  ASSERT_TRUE(v);
  EXPECT_EQ(std::string(v->payload.begin(), v->payload.end()), p1.statement);
  auto e = get("/api/v1/log/entries/1");
  EXPECT_EQ(e.status, 200);
  EXPECT_EQ(e.body, p1.envelope);
  EXPECT_EQ(e.route, "/api/v1/log");
  EXPECT_EQ(e.header("Cache-Control"), "public, max-age=31536000, immutable");
  EXPECT_EQ(e.header("ETag"), "\"" + p1.leaf_hash + "\"");
  auto again = call("GET", "/api/v1/log/entries/1", "\"" + p1.leaf_hash + "\"");
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  EXPECT_EQ(call("GET", "/api/v1/log/entries/1", "\"" + p0.leaf_hash + "\"").status, 200);
}

TEST_F(ServiceTest, CheckpointAndProofEndpoints) {
  std::vector<Published> ps;
  for (int i = 0; i < 5; ++i) ps.push_back(publish(i % 2 ? "identical" : "different"));
  auto cp = get("/api/v1/log/checkpoint");
  EXPECT_EQ(cp.status, 200);
  EXPECT_EQ(cp.content_type, "text/plain; charset=utf-8");
  EXPECT_EQ(cp.header("Cache-Control"), "no-cache");
  auto vk = parse_vkey(svc_->vkey());
  ASSERT_TRUE(vk);
  auto parsed = verify_checkpoint(cp.body, *vk);
  ASSERT_TRUE(parsed) << parsed.error().to_string();
  EXPECT_EQ(parsed->size, 5u);
  EXPECT_EQ(get("/checkpoint").body, cp.body);

  auto inc = get("/api/v1/log/proof/inclusion", "index=3&size=5");
  ASSERT_EQ(inc.status, 200) << inc.body;
  auto j = nlohmann::json::parse(inc.body);
  std::vector<Hash> proof;
  for (const auto& h : j["hashes"]) {
    auto raw = base64_decode(h.get<std::string>());
    Hash x;
    std::copy(raw->begin(), raw->end(), x.begin());
    proof.push_back(x);
  }
  EXPECT_TRUE(verify_inclusion(3, 5, leaf_hash(as_bytes(ps[3].envelope)), proof, parsed->root));
  EXPECT_EQ(j["leaf_hash"], ps[3].leaf_hash);
  auto byhash = get("/api/v1/log/proof/inclusion", "hash=" + ps[3].leaf_hash);
  EXPECT_EQ(nlohmann::json::parse(byhash.body)["index"], 3);
  EXPECT_EQ(byhash.header("Cache-Control"), "no-cache");
  EXPECT_EQ(inc.header("Cache-Control"), "public, max-age=31536000, immutable");

  auto old_root = *log_->root(2);
  publish("identical");
  auto cons = get("/api/v1/log/proof/consistency", "old=2&new=6");
  ASSERT_EQ(cons.status, 200);
  auto cj = nlohmann::json::parse(cons.body);
  proof.clear();
  for (const auto& h : cj["hashes"]) {
    auto raw = base64_decode(h.get<std::string>());
    Hash x;
    std::copy(raw->begin(), raw->end(), x.begin());
    proof.push_back(x);
  }
  EXPECT_TRUE(verify_consistency(2, 6, old_root, *log_->root(6), proof));
  // A new size gives a new checkpoint.
  EXPECT_NE(get("/api/v1/log/checkpoint").body, cp.body);

  auto tile = get("/tile/0/000.p/6");
  EXPECT_EQ(tile.status, 200);
  EXPECT_EQ(tile.content_type, "application/octet-stream");
  EXPECT_EQ(tile.route, "/tile");
  EXPECT_EQ(tile.body.size(), 6u * 32);
  EXPECT_EQ(to_hex(as_bytes(tile.body.substr(32 * 3, 32))), ps[3].leaf_hash);
  auto bundle = get("/tile/entries/000.p/2");
  EXPECT_EQ(bundle.status, 200);
  EXPECT_EQ(bundle.body.substr(2, ps[0].envelope.size()), ps[0].envelope);
  EXPECT_EQ(get("/tile/0/000").status, 404);  // full tile not yet complete

  EXPECT_EQ(get("/api/v1/keys").route, "/api/v1/keys");
  auto keys = nlohmann::json::parse(get("/api/v1/keys").body);
  EXPECT_EQ(keys["keys"][0]["keyid"], key_.keyid());
  EXPECT_EQ(keys["keys"][0]["vkey"], svc_->vkey());
}

TEST_F(ServiceTest, TlogProofVerifiesOfflineAndRejectsTampering) {
  std::vector<Published> ps;
  for (int i = 0; i < 7; ++i) ps.push_back(publish("identical"));
  auto r = get("/api/v1/log/proof/tlog", "hash=" + ps[4].leaf_hash);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body.rfind("c2sp.org/tlog-proof@v1\nindex 4\n", 0), 0u) << r.body;
  auto cp = verify_tlog_proof(r.body, as_bytes(ps[4].envelope), {&key_});
  ASSERT_TRUE(cp) << cp.error().to_string();
  EXPECT_EQ(cp->size, 7u);
  // Another entry's bytes, another key, a reordered proof: rejected.
  EXPECT_FALSE(verify_tlog_proof(r.body, as_bytes(ps[3].envelope), {&key_}));
  auto other = std::move(Ed25519Key::generate()).value();
  auto wrong = verify_tlog_proof(r.body, as_bytes(ps[4].envelope), {&other});
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().to_string().find("not signed by the given key"), std::string::npos);
  auto parsed = parse_tlog_proof(r.body);
  ASSERT_TRUE(parsed);
  ASSERT_GE(parsed->hashes.size(), 2u);
  std::swap(parsed->hashes[0], parsed->hashes[1]);
  EXPECT_FALSE(verify_tlog_proof(make_tlog_proof(4, parsed->hashes, parsed->checkpoint_note),
                                 as_bytes(ps[4].envelope), {&key_}));
  struct Case {
    std::string text, msg;
  } bad[] = {
      {"c2sp.org/tlog-proof@v2\n", "tlog-proof: first line is not c2sp.org/tlog-proof@v1"},
      {"c2sp.org/tlog-proof@v1\nindex 01\n\nx", "tlog-proof: index is not a decimal without leading zeros"},
      {"c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\nx", "tlog-proof: proof line is not a base64 SHA-256 hash"},
      {"c2sp.org/tlog-proof@v1\nindex 1\n", "tlog-proof: missing blank line before the checkpoint"},
      {"c2sp.org/tlog-proof@v1\nindex 1\n\n", "tlog-proof: missing checkpoint"},
      {"c2sp.org/tlog-proof@v1\nextra AA==\n", "tlog-proof: missing index line"},
  };
  for (const auto& c : bad) {
    auto p = parse_tlog_proof(c.text);
    ASSERT_FALSE(p) << c.text;
    EXPECT_EQ(p.error().message(), c.msg);
  }
}

TEST_F(ServiceTest, ErrorsAndRouting) {
  publish("identical");
  struct Case {
    std::string path, query;
    int status;
    std::string code, message;
  } cases[] = {
      {"/api/v1/log/entries/abc", "", 400, "invalid_id", "entry index must be a decimal number"},
      {"/api/v1/log/entries/7", "", 404, "not_found", "log entry 7 does not exist"},
      {"/api/v1/log/entries/01", "", 400, "invalid_id", "entry index must be a decimal number"},
      {"/api/v1/log/proof/inclusion", "", 400, "bad_query", "index or hash is required"},
      {"/api/v1/log/proof/inclusion", "index=1&size=1", 404, "not_found", "index 1 is not below tree size 1"},
      {"/api/v1/log/proof/inclusion", "index=0&size=9", 404, "not_found", "tree size 9 is larger than the log (1)"},
      {"/api/v1/log/proof/inclusion", "index=0&size=x", 400, "bad_query", "size must be a decimal number"},
      {"/api/v1/log/proof/inclusion", "hash=zz", 400, "invalid_hex", "hash must be 64 hex digits"},
      {"/api/v1/log/proof/tlog", "index=-1", 400, "bad_query", "index must be a decimal number"},
      {"/api/v1/log/proof/consistency", "old=1", 400, "bad_query", "new must be a decimal number"},
      {"/api/v1/log/proof/consistency", "old=2&new=1", 400, "bad_query", "old size 2 is larger than new size 1"},
      {"/tile/9/000", "", 404, "not_found", "tile path: bad level '9'"},
      {"/api/v1/log/nothing", "", 404, "not_found", "no such endpoint"},
  };
  for (const auto& c : cases) {
    auto r = get(c.path, c.query);
    EXPECT_EQ(r.status, c.status) << c.path << "?" << c.query;
    EXPECT_EQ(r.header("Cache-Control"), "no-store") << c.path << "?" << c.query;
    auto j = nlohmann::json::parse(r.body);
    // kmrd's one error shape: {"error":{"code","message"}} and nothing else.
    EXPECT_EQ(j.size(), 1u);
    EXPECT_EQ(j["error"].size(), 2u);
    EXPECT_EQ(j["error"]["code"], c.code) << c.path << "?" << c.query;
    EXPECT_EQ(j["error"]["message"], c.message) << c.path << "?" << c.query;
  }
  EXPECT_EQ(get("/api/v1/artifacts/sha256/00").status, 418);  // not the service's: left to kmrd's other routes
  auto post = call("POST", "/api/v1/keys");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(nlohmann::json::parse(post.body)["error"]["code"], "method_not_allowed");
  auto head = call("HEAD", "/api/v1/log/checkpoint");  // answered as GET; the HTTP layer drops the body
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, get("/api/v1/log/checkpoint").body);
}

TEST_F(ServiceTest, StorageErrorsGiveAGenericMessage) {
  publish("identical");
  // The entry's bytes vanish under the open log: reading it fails inside the storage layer.
  ASSERT_EQ(::truncate((dir_->path() + "/log/entries.dat").c_str(), 0), 0);
  auto r = get("/api/v1/log/entries/0");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body.find(dir_->path()), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("entries.dat"), std::string::npos) << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["error"]["code"], "internal");
  EXPECT_NE(r.body.find("internal error"), std::string::npos) << r.body;
}

}  // namespace
}  // namespace kmr::attest

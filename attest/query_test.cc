// End to end: two fake rebuilders (real AttestationService + log + keys
// behind a Beast HTTP server) queried by run_query and by the kmr binary.
#include "attest/query.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <tuple>
#include <variant>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "attest/dsse.h"
#include "attest/http_client.h"
#include "attest/merkle.h"
#include "attest/service.h"
#include "attest/statement.h"
#include "attest/test_http_server.h"
#include "attest/tlog.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/net/router.h"

namespace kmr::attest {
namespace {

const std::string kArtifact = "linux-image-6.1.0-18-amd64_6.1.76-1_amd64.deb";
const std::string kContent = "pretend this is a kernel package";

std::string http_get_body(const std::string& url) {
  auto r = http_get(url);
  KMR_CHECK(r.has_value() && r->status == 200);
  return r->body;
}

std::string artifact_hex() { return sha256_hex(as_bytes(kContent)); }

StatementInput input_for(const std::string& hex, const std::string& verifier, const std::string& files) {
  StatementInput in;
  in.subjects = {{kArtifact, hex}};
  in.verifier_id = verifier;
  in.resource_uri = "pkg:deb/debian/linux-image-6.1.0-18-amd64@6.1.76-1?arch=amd64";
  in.module_root = "match";
  in.files = files;
  in.build_environment_sha256 = sha256_hex(as_bytes("env"));
  return in;
}

class FakeRebuilder {
 public:
  FakeRebuilder(const std::string& root, const std::string& name)
      : root_(root + "/" + name), name_(name), key_(std::move(Ed25519Key::generate()).value()) {
    open_log("log");
    server_ = std::make_unique<testing::TestHttpServer>(
        [this](const net::HttpRequest& req) { return handle(req); });
  }
  ~FakeRebuilder() { server_.reset(); }

  std::string url() const { return server_->url(); }
  const Ed25519Key& key() const { return key_; }
  std::string pub_pem_path() {
    std::string p = root_ + ".pub.pem";
    KMR_CHECK(write_file_atomic(p, as_bytes(key_.public_pem())).has_value());
    return p;
  }

  void publish(const std::string& hex, const std::string& files) {
    std::lock_guard<std::mutex> lock(mu_);
    StatementInput in = input_for(hex, "https://" + name_ + ".example/kmr", files);
    // Each publication is a distinct statement even within one second: identical envelopes
    // share one leaf hash, so the log could not tell a re-publication from the first one.
    char when[32];
    std::snprintf(when, sizeof when, "2026-01-01T00:%02u:%02uZ", (published_ / 60) % 60, published_ % 60);
    ++published_;
    in.time_verified = when;
    auto p = svc_->attest(in);
    KMR_CHECK(p.has_value());
    envelopes_.push_back(p->envelope);
    by_digest_[hex].push_back(envelopes_.size() - 1);
  }
  // Signed by the right key but never appended to the log.
  void publish_unlogged(const std::string& hex) {
    std::lock_guard<std::mutex> lock(mu_);
    auto st = make_statement(input_for(hex, "https://" + name_ + ".example/kmr", "identical"));
    auto env = sign_envelope(kInTotoPayloadType, as_bytes(*st), {&key_});
    envelopes_.push_back(*env);
    by_digest_[hex].push_back(envelopes_.size() - 1);
  }
  // The member index: `member` is shipped in the artifact `artifact` at `path` (as kind).
  // A lying index lists the attestations of `listed` under `artifact`.
  void add_member(const std::string& member, const std::string& artifact, const std::string& path,
                  const std::string& kind, const std::string& listed = "") {
    std::lock_guard<std::mutex> lock(mu_);
    members_[member].push_back({artifact, path, kind, listed.empty() ? artifact : listed});
  }
  // A store path's hash part names this artifact.
  void add_store_path(const std::string& hash_part, const std::string& artifact) {
    std::lock_guard<std::mutex> lock(mu_);
    store_paths_[hash_part] = artifact;
  }
  void tamper_all() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& e : envelopes_) {
      auto j = nlohmann::json::parse(e);
      std::string payload = j["payload"];
      payload[10] = payload[10] == 'A' ? 'B' : 'A';
      j["payload"] = payload;
      e = j.dump();
    }
  }
  // The same key, a fresh log under another origin holding the same envelopes.
  void move_origin(const std::string& origin) {
    std::lock_guard<std::mutex> lock(mu_);
    open_log("moved", origin);
    for (auto& e : envelopes_) KMR_CHECK(log_->append(as_bytes(e)).has_value());
  }
  // The operator rewrites history: a fresh log with different entries,
  // signed by the same key.
  void fork_log() {
    std::lock_guard<std::mutex> lock(mu_);
    open_log("fork");
    for (int i = 0; i < 5; ++i) KMR_CHECK(log_->append(as_bytes("rewritten " + std::to_string(i))).has_value());
    for (auto& e : envelopes_) KMR_CHECK(log_->append(as_bytes(e)).has_value());
  }

 private:
  void open_log(const std::string& sub, const std::string& origin = "") {
    ::mkdir(root_.c_str(), 0755);
    router_.reset();
    svc_.reset();
    log_ = std::move(TransparencyLog::open(root_ + "/" + sub)).value();
    svc_ = std::make_unique<AttestationService>(*log_, key_, origin.empty() ? name_ + ".example/log" : origin, KeySet());
    router_ = std::make_unique<net::Router>();
    svc_->add_routes(*router_);
  }

  // The log's routes through the router kmrd uses, then a stand-in for kmrd's artifact routes.
  net::HttpResponse handle(const net::HttpRequest& req) {
    std::lock_guard<std::mutex> lock(mu_);
    auto parsed = net::parse_target(req.target);
    if (auto* refused = std::get_if<net::HttpResponse>(&parsed)) return *refused;
    const std::string& path = std::get<net::Target>(parsed).path;
    if (auto answer = router_->route(req, std::get<net::Target>(parsed))) return *answer;
    net::HttpResponse r;
    constexpr std::string_view kArt = "/api/v1/artifacts/sha256/";
    constexpr std::string_view kAtt = "/api/v1/attestations/";
    constexpr std::string_view kStore = "/api/v1/artifacts/store-path/";
    std::string digest;
    if (path.rfind(kArt, 0) == 0) digest = std::string(path.substr(kArt.size()));
    if (path.rfind(kStore, 0) == 0) {
      auto sp = store_paths_.find(std::string(path.substr(kStore.size(), 32)));
      if (sp != store_paths_.end()) digest = sp->second;
    }
    if (!digest.empty()) {
      auto list_of = [&](const std::string& d) {
        nlohmann::json list = nlohmann::json::array();
        for (auto i : by_digest_[d]) list.push_back("/api/v1/attestations/" + std::to_string(i));
        return list;
      };
      if (auto m = members_.find(digest); m != members_.end() && !by_digest_.count(digest)) {
        nlohmann::json of = nlohmann::json::array();
        for (const auto& [art, p, kind, listed] : m->second)
          of.push_back({{"sha256", art}, {"path", p}, {"kind", kind}, {"attestations", list_of(listed)}});
        r.body = nlohmann::json({{"sha256", digest}, {"match", "member"}, {"member_of", of},
                                 {"attestations", nlohmann::json::array()}}).dump();
        return r;
      }
      auto it = by_digest_.find(digest);
      if (it == by_digest_.end()) {
        r.status = 404;
        r.body = "{}";
        return r;
      }
      r.body = nlohmann::json({{"sha256", it->first}, {"attestations", list_of(it->first)}}).dump();
      return r;
    }
    if (path.rfind(kAtt, 0) == 0) {
      std::size_t i = std::stoul(std::string(path.substr(kAtt.size())));
      if (i < envelopes_.size()) {
        r.body = envelopes_[i];
        return r;
      }
    }
    r.status = 404;
    r.body = "{}";
    return r;
  }

  std::string root_;
  std::string name_;
  Ed25519Key key_;
  std::mutex mu_;
  std::unique_ptr<TransparencyLog> log_;
  std::unique_ptr<AttestationService> svc_;
  std::unique_ptr<net::Router> router_;
  std::vector<std::string> envelopes_;
  unsigned published_ = 0;
  std::map<std::string, std::vector<std::size_t>> by_digest_;
  std::map<std::string, std::vector<std::tuple<std::string, std::string, std::string, std::string>>> members_;
  std::map<std::string, std::string> store_paths_;
  std::unique_ptr<testing::TestHttpServer> server_;
};

class QueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.emplace(std::move(TempDir::create("attest-query")).value());
    a_ = std::make_unique<FakeRebuilder>(dir_->path(), "a");
    b_ = std::make_unique<FakeRebuilder>(dir_->path(), "b");
  }
  QueryOptions opts(std::size_t k) {
    QueryOptions o;
    o.sha256 = artifact_hex();
    o.threshold = k;
    o.cache_dir = dir_->path() + "/cache";
    o.timeout = std::chrono::seconds(5);
    o.rebuilders.push_back({a_->url(), {}});
    o.rebuilders.back().keys.push_back(a_->key().public_only());
    o.rebuilders.push_back({b_->url(), {}});
    o.rebuilders.back().keys.push_back(b_->key().public_only());
    return o;
  }
  SubprocessResult kmr(std::vector<std::string> args) {
    std::vector<std::string> argv = {std::string(std::getenv("TEST_SRCDIR")) + "/kmr/rebuilder/cli/kmr"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run_subprocess(argv);
    KMR_CHECK(r.has_value());
    return *r;
  }
  std::optional<TempDir> dir_;
  std::unique_ptr<FakeRebuilder> a_;
  std::unique_ptr<FakeRebuilder> b_;
};

TEST_F(QueryTest, TwoIndependentPassesMeetThresholdTwo) {
  a_->publish(artifact_hex(), "identical");
  b_->publish(sha256_hex(as_bytes("something else")), "identical");
  b_->publish(artifact_hex(), "identical-modulo-signatures");
  auto r = run_query(opts(2));
  EXPECT_TRUE(r.verified) << r.to_text();
  EXPECT_EQ(r.independent_passes, 2u);
  EXPECT_EQ(r.rebuilders[1].attestations[0].log_index, 1u);
  // The CLI agrees, from a file and from sha256:HEX, text and JSON.
  std::string file = dir_->path() + "/" + kArtifact;
  ASSERT_TRUE(write_file_atomic(file, as_bytes(kContent)));
  std::string cache = dir_->path() + "/cli-cache";
  auto res = kmr({"query", "--rebuilder", a_->url(), "--key", a_->pub_pem_path(), "--rebuilder", b_->url(), "--key",
                  b_->pub_pem_path(), "--threshold", "2", "--cache-dir", cache, file});
  EXPECT_EQ(res.exit_code, 0) << res.out << res.err;
  EXPECT_NE(res.out.find("VERIFIED: sha256:" + artifact_hex()), std::string::npos) << res.out;
  res = kmr({"query", "--json", "--rebuilder", a_->url(), "--key", a_->pub_pem_path(), "--rebuilder", b_->url(),
             "--key", b_->pub_pem_path(), "--threshold", "2", "--cache-dir", cache, "sha256:" + artifact_hex()});
  EXPECT_EQ(res.exit_code, 0) << res.out << res.err;
  auto j = nlohmann::json::parse(res.out);
  EXPECT_EQ(j["verified"], true);
  EXPECT_EQ(j["independent_passes"], 2);
  // The cache now holds one checkpoint per pinned rebuilder key, named by the key alone.
  EXPECT_TRUE(read_file(cache + "/checkpoints/" + a_->key().keyid(), 4096));
}

// A file the package ships (here: a vmlinuz) resolves through the member index to the
// package, whose attestations are checked against the package's digest.
TEST_F(QueryTest, MemberHashResolvesToTheArtifactsShippingIt) {
  const std::string vmlinuz = "pretend this is a vmlinuz";
  const std::string member = sha256_hex(as_bytes(vmlinuz));
  a_->publish(artifact_hex(), "identical");
  a_->add_member(member, artifact_hex(), "boot/vmlinuz-6.1.0-18-amd64", "file");
  QueryOptions o = opts(1);
  o.sha256 = member;
  auto r = run_query(o);
  EXPECT_TRUE(r.verified) << r.to_text();
  ASSERT_EQ(r.rebuilders[0].resolved.size(), 1u);
  EXPECT_EQ(r.rebuilders[0].resolved[0].sha256, artifact_hex());
  EXPECT_EQ(r.rebuilders[0].attestations[0].status, "passed");
  EXPECT_NE(r.rebuilders[0].reason.find("member index (not signed)"), std::string::npos) << r.rebuilders[0].reason;
  EXPECT_EQ(r.rebuilders[1].status, "no-attestation");
  // kmr query --file hashes the local file and asks; the text names the package it was found in.
  std::string file = dir_->path() + "/vmlinuz";
  ASSERT_TRUE(write_file_atomic(file, as_bytes(vmlinuz)));
  auto res = kmr({"query", "--rebuilder", a_->url(), "--key", a_->pub_pem_path(), "--cache-dir",
                  dir_->path() + "/cm", "--file", file});
  EXPECT_EQ(res.exit_code, 0) << res.out << res.err;
  EXPECT_NE(res.out.find("in sha256:" + artifact_hex() + " as boot/vmlinuz-6.1.0-18-amd64 (file)"), std::string::npos)
      << res.out;
  EXPECT_NE(res.out.find("VERIFIED: sha256:" + member), std::string::npos) << res.out;
  // A rebuilder whose member index points at an artifact attested as different: not verified.
  b_->publish(artifact_hex(), "different");
  b_->add_member(member, artifact_hex(), "boot/vmlinuz-6.1.0-18-amd64", "file");
  o.threshold = 2;
  r = run_query(o);
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(r.rebuilders[1].status, "failed");
}

// A lying member index cannot borrow another artifact's attestations: each listed
// attestation must name the artifact it is listed under.
TEST_F(QueryTest, MemberIndexCannotBorrowAttestations) {
  const std::string other = sha256_hex(as_bytes("another package"));
  const std::string member = sha256_hex(as_bytes("an evil module"));
  a_->publish(artifact_hex(), "identical");
  // The index says `other` ships the member, and lists artifact_hex()'s attestations for it.
  a_->add_member(member, other, "lib/modules/evil.ko", "file", artifact_hex());
  QueryOptions o = opts(1);
  o.sha256 = member;
  auto r = run_query(o);
  EXPECT_FALSE(r.verified) << r.to_text();
  EXPECT_EQ(r.rebuilders[0].status, "no-attestation");
  ASSERT_EQ(r.rebuilders[0].attestations.size(), 1u);
  EXPECT_EQ(r.rebuilders[0].attestations[0].status, "rejected");
  EXPECT_NE(r.rebuilders[0].attestations[0].reason.find("subject digest is not sha256:" + other), std::string::npos)
      << r.rebuilders[0].attestations[0].reason;
}

// A Nix store path asks for that output's narinfo artifact; a NarHash in nix32 is converted.
TEST_F(QueryTest, StorePathAndNarHashTargets) {
  a_->publish(artifact_hex(), "identical");
  const std::string hash_part = "bgdqn4ac7iypjgjfvxsn0ya2gb0za672";
  a_->add_store_path(hash_part, artifact_hex());
  auto res = kmr({"query", "--json", "--rebuilder", a_->url(), "--key", a_->pub_pem_path(), "--cache-dir",
                  dir_->path() + "/cs", "/nix/store/" + hash_part + "-linux-6.18.0"});
  EXPECT_EQ(res.exit_code, 0) << res.out << res.err;
  auto j = nlohmann::json::parse(res.out, nullptr, false);
  EXPECT_EQ(j["subject"], "/nix/store/" + hash_part + "-linux-6.18.0");
  EXPECT_EQ(j["verified"], true);
  // NarHash: the same 32 bytes as nix32, sha256:nix32, SRI base64 and hex all ask for one digest.
  const std::string nar_hex = sha256_hex(as_bytes("a NAR"));
  a_->add_member(nar_hex, artifact_hex(), "/nix/store/" + hash_part + "-linux-6.18.0", "nar");
  auto nix32 = run_subprocess({"sh", "-c", "command -v nix-hash >/dev/null && nix-hash --type sha256 --to-base32 $0 && "
                                           "nix-hash --type sha256 --to-sri $0 2>/dev/null || true", nar_hex});
  ASSERT_TRUE(nix32);
  std::vector<std::string> forms = {"sha256:" + nar_hex, nar_hex};
  for (std::size_t p = 0; p < nix32->out.size();) {
    auto nl = nix32->out.find('\n', p);
    std::string line = nix32->out.substr(p, nl - p);
    if (!line.empty()) forms.push_back(line);
    if (line.size() == 52) forms.push_back("sha256:" + line);
    p = nl == std::string::npos ? nix32->out.size() : nl + 1;
  }
  for (const auto& f : forms) {
    res = kmr({"query", "--json", "--rebuilder", a_->url(), "--key", a_->pub_pem_path(), "--cache-dir",
               dir_->path() + "/cs", f});
    EXPECT_EQ(res.exit_code, 0) << f << ": " << res.out << res.err;
    j = nlohmann::json::parse(res.out, nullptr, false);
    EXPECT_EQ(j["subject"], "sha256:" + nar_hex) << f;
  }
  EXPECT_EQ(kmr({"query", "--rebuilder", a_->url(), "--key", a_->pub_pem_path(), "sha256:nothex"}).exit_code, 2);
}

TEST_F(QueryTest, FailedResultOrUnpinnedKeyFailsThresholdTwo) {
  a_->publish(artifact_hex(), "identical");
  b_->publish(artifact_hex(), "different");
  auto r = run_query(opts(2));
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(r.independent_passes, 1u);
  EXPECT_EQ(r.rebuilders[1].status, "failed");
  auto res = kmr({"query", "--rebuilder", a_->url(), "--key", a_->pub_pem_path(), "--rebuilder", b_->url(), "--key",
                  b_->pub_pem_path(), "--threshold", "2", "--cache-dir", dir_->path() + "/c2", "sha256:" + artifact_hex()});
  EXPECT_EQ(res.exit_code, 1) << res.out << res.err;
  EXPECT_NE(res.out.find("NOT VERIFIED"), std::string::npos);

  // B passes now, but we pin a different key for B.
  b_->publish(artifact_hex(), "identical");
  auto o = opts(2);
  EXPECT_TRUE(run_query(o).verified);
  o.rebuilders[1].keys.clear();
  o.rebuilders[1].keys.push_back(std::move(Ed25519Key::generate()).value().public_only());
  r = run_query(o);
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(r.rebuilders[1].status, "error");
  EXPECT_NE(r.rebuilders[1].reason.find("checkpoint not signed by the pinned key"), std::string::npos) << r.rebuilders[1].reason;
}

TEST_F(QueryTest, SameKeyTwiceCountsOnce) {
  a_->publish(artifact_hex(), "identical");
  auto o = opts(2);
  o.rebuilders[1] = {a_->url(), {}};
  o.rebuilders[1].keys.push_back(a_->key().public_only());
  auto r = run_query(o);
  EXPECT_EQ(r.rebuilders[0].status, "passed");
  EXPECT_EQ(r.rebuilders[1].status, "passed");
  EXPECT_EQ(r.independent_passes, 1u);
  EXPECT_FALSE(r.verified);
}

TEST_F(QueryTest, UnloggedTamperedAndWrongSubjectAreRejected) {
  a_->publish_unlogged(artifact_hex());
  auto r = run_query(opts(1));
  EXPECT_FALSE(r.verified);
  ASSERT_EQ(r.rebuilders[0].attestations.size(), 1u);
  EXPECT_EQ(r.rebuilders[0].attestations[0].status, "rejected");
  EXPECT_NE(r.rebuilders[0].attestations[0].reason.find("not in the log"), std::string::npos);

  b_->publish(artifact_hex(), "identical");
  EXPECT_TRUE(run_query(opts(1)).verified);
  b_->tamper_all();
  r = run_query(opts(1));
  EXPECT_FALSE(r.verified);
  EXPECT_NE(r.rebuilders[1].attestations[0].reason.find("no signature verifies under a trusted key"), std::string::npos)
      << r.rebuilders[1].attestations[0].reason;
}

TEST_F(QueryTest, ForkedLogIsRejectedAgainstCachedCheckpoint) {
  a_->publish(artifact_hex(), "identical");
  a_->publish(sha256_hex(as_bytes("x")), "identical");
  auto o = opts(1);
  ASSERT_TRUE(run_query(o).verified);  // caches A's checkpoint (size 2)
  a_->fork_log();                       // same key, rewritten history (size 7)
  auto r = run_query(o);
  EXPECT_EQ(r.rebuilders[0].status, "error");
  EXPECT_NE(r.rebuilders[0].reason.find("inconsistent with the cached checkpoint"), std::string::npos)
      << r.rebuilders[0].reason;
  // Without the cache the forked log looks fine: the cache is what catches it.
  o.cache_dir = dir_->path() + "/fresh-cache";
  EXPECT_EQ(run_query(o).rebuilders[0].status, "passed");
}

TEST_F(QueryTest, LatestAttestationOfARebuilderCounts) {
  // A PASSED, later withdrawn by a FAILED for the same digest: A does not count.
  a_->publish(artifact_hex(), "identical");
  a_->publish(artifact_hex(), "different");
  b_->publish(artifact_hex(), "identical");
  auto r = run_query(opts(2));
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(r.rebuilders[0].status, "failed") << r.to_text();
  EXPECT_NE(r.rebuilders[0].reason.find("latest attestation (log entry 1) is FAILED"), std::string::npos)
      << r.rebuilders[0].reason;
  EXPECT_NE(r.rebuilders[0].attestations[0].reason.find("superseded"), std::string::npos);
  EXPECT_EQ(r.independent_passes, 1u);
  // A rebuilds again and passes: the newest entry wins.
  a_->publish(artifact_hex(), "identical");
  r = run_query(opts(2));
  EXPECT_TRUE(r.verified) << r.to_text();
  EXPECT_EQ(r.rebuilders[0].status, "passed");
}

TEST_F(QueryTest, OriginChangeUnderTheSameKeyFailsClosed) {
  a_->publish(artifact_hex(), "identical");
  auto o = opts(1);
  ASSERT_TRUE(run_query(o).verified);  // caches A's checkpoint under A's key
  // Same key, new origin, a log that need not be consistent with the old one.
  a_->move_origin("a.example/other-log");
  auto r = run_query(o);
  EXPECT_EQ(r.rebuilders[0].status, "error");
  EXPECT_NE(r.rebuilders[0].reason.find("log origin changed"), std::string::npos) << r.rebuilders[0].reason;
  EXPECT_FALSE(r.verified && r.rebuilders[0].status == "passed");
}

TEST_F(QueryTest, UnreadableOrForgedCacheFailsClosed) {
  a_->publish(artifact_hex(), "identical");
  auto o = opts(1);
  ASSERT_TRUE(run_query(o).verified);
  const std::string entry = o.cache_dir + "/checkpoints/" + a_->key().keyid();
  // Not a checkpoint signed by the pinned key.
  ASSERT_TRUE(write_file_atomic(entry, as_bytes("a.example/log\n1\nAAAA\n\n")).has_value());
  auto r = run_query(o);
  EXPECT_EQ(r.rebuilders[0].status, "error");
  EXPECT_NE(r.rebuilders[0].reason.find("does not verify under the pinned key"), std::string::npos) << r.rebuilders[0].reason;
  // Unreadable (a directory where the file should be).
  ASSERT_EQ(::unlink(entry.c_str()), 0);
  ASSERT_EQ(::mkdir(entry.c_str(), 0700), 0);
  r = run_query(o);
  EXPECT_EQ(r.rebuilders[0].status, "error");
  EXPECT_NE(r.rebuilders[0].reason.find("cannot be read"), std::string::npos) << r.rebuilders[0].reason;
}

TEST_F(QueryTest, AttestVerifyCli) {
  a_->publish(artifact_hex(), "identical");
  auto env = http_get_body(a_->url() + "/api/v1/attestations/0");
  std::string env_path = dir_->path() + "/env.json";
  ASSERT_TRUE(write_file_atomic(env_path, as_bytes(env)));
  std::string file = dir_->path() + "/artifact";
  ASSERT_TRUE(write_file_atomic(file, as_bytes(kContent)));
  auto res = kmr({"attest", "verify", "--key", a_->pub_pem_path(), "--file", file, env_path});
  EXPECT_EQ(res.exit_code, 0) << res.out << res.err;
  // Offline log inclusion with a C2SP tlog-proof from the rebuilder.
  auto leaf = leaf_hash(as_bytes(env));
  std::string proof_path = dir_->path() + "/env.tlog-proof";
  ASSERT_TRUE(write_file_atomic(proof_path, as_bytes(http_get_body(a_->url() + "/api/v1/log/proof/tlog?hash=" +
                                                                  to_hex(Bytes(leaf.data(), leaf.size()))))));
  res = kmr({"attest", "verify", "--json", "--key", a_->pub_pem_path(), "--tlog-proof", proof_path, env_path});
  EXPECT_EQ(res.exit_code, 0) << res.out << res.err;
  EXPECT_EQ(nlohmann::json::parse(res.out)["log"]["checkpoint_size"], 1);
  // The proof does not cover a different envelope.
  a_->publish(sha256_hex(as_bytes("second")), "identical");
  std::string env2_path = dir_->path() + "/env2.json";
  ASSERT_TRUE(write_file_atomic(env2_path, as_bytes(http_get_body(a_->url() + "/api/v1/attestations/1"))));
  res = kmr({"attest", "verify", "--json", "--key", a_->pub_pem_path(), "--tlog-proof", proof_path, env2_path});
  EXPECT_EQ(res.exit_code, 1) << res.out << res.err;
  EXPECT_EQ(nlohmann::json::parse(res.out)["verdict"], "not-logged");
  res = kmr({"attest", "verify", "--key", b_->pub_pem_path(), env_path});
  EXPECT_EQ(res.exit_code, 1) << res.out << res.err;
  res = kmr({"attest", "verify", "--key", a_->pub_pem_path(), "--sha256", sha256_hex(as_bytes("other")), env_path});
  EXPECT_EQ(res.exit_code, 1);
  EXPECT_NE(res.out.find("subject-mismatch"), std::string::npos) << res.out;
  res = kmr({"attest", "verify", "--key", a_->pub_pem_path(), dir_->path() + "/missing.json"});
  EXPECT_EQ(res.exit_code, 2);
  EXPECT_NE(res.err.find("missing.json"), std::string::npos) << res.err;
  b_->publish(artifact_hex(), "build-failed");
  ASSERT_TRUE(write_file_atomic(env_path, as_bytes(http_get_body(b_->url() + "/api/v1/attestations/0"))));
  res = kmr({"attest", "verify", "--json", "--key", b_->pub_pem_path(), env_path});
  EXPECT_EQ(res.exit_code, 1);
  EXPECT_EQ(nlohmann::json::parse(res.out)["verdict"], "failed");
}

}  // namespace
}  // namespace kmr::attest

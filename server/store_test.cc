#include "server/store.h"

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "rebuilder/base/file.h"
#include "rebuilder/base/sha256.h"

namespace kmr::server {
namespace {

std::string hexof(int i) { return sha256_hex(Bytes(reinterpret_cast<const std::uint8_t*>(&i), sizeof i)); }

// A report for a claimed job, by the given worker.
Report report_for(const nlohmann::json& job, const Worker& w, const std::string& status,
                  std::optional<std::string> files = std::nullopt) {
  Report r;
  r.job_id = job["id"];
  r.lease_token = job["lease"];
  r.worker_id = w.id;
  r.status = status;
  r.files = std::move(files);
  return r;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = TempDir::create("store-test");
    ASSERT_TRUE(t.has_value());
    dir_.emplace(std::move(t).value());
    auto s = Store::open(dir_->path() + "/state");
    ASSERT_TRUE(s.has_value()) << s.error().to_string();
    store_ = std::move(s).value();
    auto r = store_->upsert_repository("arch-core", "arch", "file:///x");
    ASSERT_TRUE(r.has_value());
    repo_ = *r;
  }
  Worker worker(const std::string& name, const std::string& key) {
    auto id = store_->register_worker(name, key, {"default"}, 100);
    EXPECT_TRUE(id.has_value());
    auto w = store_->worker_by_key(key);
    EXPECT_TRUE(w.has_value() && w->has_value());
    return **w;
  }
  std::vector<ImportArtifact> linux_set() {
    return {{"linux-6.1", "linux", "6.1", "x86_64", "linux-6.1.pkg.tar.zst", "file:///x/linux", hexof(1), 10},
            {"linux-6.1", "linux-headers", "6.1", "x86_64", "linux-headers-6.1.pkg.tar.zst", "file:///x/h", hexof(2), 20}};
  }
  std::optional<TempDir> dir_;
  std::unique_ptr<Store> store_;
  std::int64_t repo_ = 0;
  QueuePolicy policy_;
};

TEST_F(StoreTest, MigrationsAppliedOnceAndReopen) {
  EXPECT_EQ(store_->schema_version(), 4);
  store_.reset();
  auto s = Store::open(dir_->path() + "/state");
  ASSERT_TRUE(s.has_value()) << s.error().to_string();
  EXPECT_EQ((*s)->schema_version(), 4);
}

TEST_F(StoreTest, ImportIsIdempotentOneJobPerSet) {
  auto n = store_->import_artifacts(repo_, "arch", linux_set(), 100);
  ASSERT_TRUE(n.has_value()) << n.error().to_string();
  EXPECT_EQ(*n, 1);
  auto again = store_->import_artifacts(repo_, "arch", linux_set(), 200);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, 0);
  auto q = store_->queue(100);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ((*q)["queued"], 1);
}

TEST_F(StoreTest, ClaimReportOnlyByLeaseHolder) {
  ASSERT_TRUE(store_->import_artifacts(repo_, "arch", linux_set(), 100).has_value());
  Worker a = worker("a", std::string(64, 'a'));
  Worker b = worker("b", std::string(64, 'b'));
  auto job = store_->claim_job(a, 100, policy_);
  ASSERT_TRUE(job.has_value() && job->has_value());
  EXPECT_EQ((**job)["artifacts"].size(), 2u);
  auto none = store_->claim_job(b, 100, policy_);
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE(none->has_value());

  Report r = report_for(**job, b, "verified", "identical");
  r.module_root = "match";
  r.shipped_root = r.rebuilt_root = "ab12";
  r.rebuilt = {{"linux-6.1.pkg.tar.zst", hexof(1)}, {"linux-headers-6.1.pkg.tar.zst", hexof(2)}};
  auto bad = store_->report(r, 110, policy_);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), ErrorCode::kPermissionDenied);
  auto art = store_->artifact_by_sha256(hexof(1));
  ASSERT_TRUE(art.has_value() && art->has_value());
  EXPECT_TRUE((**art)["verdicts"].is_null());

  r.worker_id = a.id;
  auto good = store_->report(r, 110, policy_);
  ASSERT_TRUE(good.has_value()) << good.error().to_string();
  EXPECT_EQ(good->job_state, "done");
  EXPECT_TRUE(good->reproducible);
  // A second report with the same lease is refused: nothing duplicated.
  EXPECT_FALSE(store_->report(r, 111, policy_).has_value());
  art = store_->artifact_by_sha256(hexof(2));
  ASSERT_TRUE(art.has_value() && art->has_value());
  EXPECT_EQ((**art)["verdicts"]["files"], "identical");
  EXPECT_EQ((**art)["history"].size(), 1u);
  EXPECT_EQ((**art)["package"]["name"], "linux-headers");
}

TEST_F(StoreTest, FilesTierIsPerArtifact) {
  ASSERT_TRUE(store_->import_artifacts(repo_, "arch", linux_set(), 100).has_value());
  Worker a = worker("a", std::string(64, 'a'));
  auto job = store_->claim_job(a, 100, policy_);
  ASSERT_TRUE(job.has_value() && job->has_value());
  Report r = report_for(**job, a, "verified", "different");
  r.module_root = "match";
  // linux rebuilt differently, linux-headers bit-identical.
  r.rebuilt = {{"linux-6.1.pkg.tar.zst", hexof(9)}, {"linux-headers-6.1.pkg.tar.zst", hexof(2)}};
  ASSERT_TRUE(store_->report(r, 110, policy_).has_value());
  auto linux_art = store_->artifact_by_sha256(hexof(1));
  auto headers = store_->artifact_by_sha256(hexof(2));
  ASSERT_TRUE(linux_art.has_value() && linux_art->has_value() && headers.has_value() && headers->has_value());
  EXPECT_EQ((**linux_art)["verdicts"]["files"], "different");
  EXPECT_EQ((**headers)["verdicts"]["files"], "identical");
  EXPECT_EQ(artifact_files_tier({"build-failed", std::string("build-failed"), hexof(2), hexof(2)}), "build-failed");
  // Nix outputs: bit-identical only with the rebuilt NAR's hash equal to the NarHash, even
  // when the differing list (members named by store path) does not name the output.
  const nlohmann::json differing = {"aimz-linux-6.18:bzImage", "baqi-linux-6.18-dev:vmlinux"};
  EXPECT_EQ(artifact_files_tier({"verified", std::string("different"), hexof(3), std::nullopt, "85cv.narinfo", 3,
                                 differing}),
            "different");
  EXPECT_EQ(artifact_files_tier({"verified", std::string("different"), hexof(3), hexof(3), "85cv.narinfo", 3,
                                 differing}),
            "identical");
  // A set claimed identical: only artifacts whose hashes match are.
  EXPECT_EQ(artifact_files_tier({"verified", std::string("identical"), hexof(3), hexof(4), "l.deb", 1}), "different");
  EXPECT_EQ(artifact_files_tier({"verified", std::string("different"), hexof(3), std::nullopt, "aimz.narinfo", 3,
                                 differing}),
            "different");
  // A package file none of whose members differ: only its container does.
  EXPECT_EQ(artifact_files_tier({"verified", std::string("different"), hexof(3), hexof(4), "h.pkg.tar.zst", 2,
                                 nlohmann::json{"l.pkg.tar.zst:usr/lib/modules/x/vmlinuz"}}),
            "content-identical");
  // Members not attributed to a package file keep the set's tier.
  EXPECT_EQ(artifact_files_tier({"verified", std::string("different"), hexof(3), hexof(4), "h.pkg.tar.zst", 2,
                                 nlohmann::json{"lib/modules/x/seed.ko"}}),
            "different");
  // A single package keeps the set's tier.
  EXPECT_EQ(artifact_files_tier({"verified", std::string("different"), hexof(3), hexof(4), "l.deb", 1,
                                 nlohmann::json{"boot/vmlinuz"}}),
            "different");
}

TEST_F(StoreTest, ExpiredLeaseIsReclaimedAndOldHolderRefused) {
  ASSERT_TRUE(store_->import_artifacts(repo_, "arch", linux_set(), 100).has_value());
  Worker a = worker("a", std::string(64, 'a'));
  Worker b = worker("b", std::string(64, 'b'));
  auto job = store_->claim_job(a, 100, policy_);
  ASSERT_TRUE(job.has_value() && job->has_value());
  std::string token_a = (**job)["lease"];
  ASSERT_TRUE(store_->heartbeat((**job)["id"], a.id, token_a, 150, policy_).has_value());
  auto job_b = store_->claim_job(b, 150 + policy_.lease_seconds + 1, policy_);
  ASSERT_TRUE(job_b.has_value() && job_b->has_value());
  EXPECT_EQ((**job_b)["id"], (**job)["id"]);
  EXPECT_FALSE(store_->heartbeat((**job)["id"], a.id, token_a, 800, policy_).has_value());
  Report r;
  r.job_id = (**job)["id"];
  r.lease_token = token_a;
  r.worker_id = a.id;
  r.status = "verified";
  EXPECT_FALSE(store_->report(r, 800, policy_).has_value());
}

TEST_F(StoreTest, SeparateRetryBudgets) {
  policy_.max_build_attempts = 2;
  policy_.max_repro_attempts = 1;
  policy_.retry_backoff_seconds = 10;
  ASSERT_TRUE(store_->import_artifacts(repo_, "arch", linux_set(), 100).has_value());
  Worker a = worker("a", std::string(64, 'a'));
  std::int64_t now = 100;
  auto run = [&](const std::string& status, std::optional<std::string> files) {
    auto job = store_->claim_job(a, now, policy_);
    EXPECT_TRUE(job.has_value() && job->has_value());
    Report r = report_for(**job, a, status, files);
    auto o = store_->report(r, now, policy_);
    EXPECT_TRUE(o.has_value());
    return o->job_state;
  };
  EXPECT_EQ(run("build-failed", std::nullopt), "queued");
  // Backoff: not claimable before next_try.
  auto early = store_->claim_job(a, now + 5, policy_);
  ASSERT_TRUE(early.has_value());
  EXPECT_FALSE(early->has_value());
  now += 11;
  EXPECT_EQ(run("verified", "different"), "done");  // repro budget 1: no retry
  ASSERT_TRUE(store_->requeue(std::nullopt, std::nullopt, true, now).value_or(0) == 1);
  EXPECT_EQ(run("verified", "content-identical"), "done");
  auto art = store_->artifact_by_sha256(hexof(1));
  EXPECT_EQ((**art)["history"].size(), 3u);
  EXPECT_TRUE((**art)["verdicts"]["reproducible"].get<bool>());
}

TEST(CheckVerdict, ClaimsAreCheckedAgainstTheWorkersOwnEvidence) {
  const std::vector<ExpectedHash> same = {{"a.pkg", hexof(1), hexof(1)}, {"b.pkg", hexof(2), hexof(2)}};
  const std::vector<ExpectedHash> one_differs = {{"a.pkg", hexof(1), hexof(1)}, {"b.pkg", hexof(2), hexof(9)}};
  const std::vector<ExpectedHash> missing = {{"a.pkg", hexof(1), std::nullopt}};
  const std::optional<std::string> root = std::string("ab"), other_root = std::string("cd"), none;
  auto c = check_verdict("verified", std::string("identical"), std::string("match"), root, root, same);
  EXPECT_EQ(c.files, "identical");
  EXPECT_EQ(c.module_root, "match");
  EXPECT_TRUE(c.reason.empty());
  c = check_verdict("verified", std::string("identical"), std::string("match"), root, root, one_differs);
  EXPECT_EQ(c.files, "different");
  EXPECT_NE(c.reason.find("b.pkg"), std::string::npos) << c.reason;
  c = check_verdict("verified", std::string("identical"), std::string("absent"), none, none, missing);
  EXPECT_EQ(c.files, "different");
  EXPECT_NE(c.reason.find("no rebuilt sha256"), std::string::npos);
  c = check_verdict("verified", std::string("content-identical"), std::string("match"), root, other_root, one_differs);
  EXPECT_EQ(c.files, "content-identical");
  EXPECT_EQ(c.module_root, "mismatch");
  c = check_verdict("verified", std::string("different"), std::string("match"), none, root, same);
  EXPECT_EQ(c.module_root, "mismatch");
  c = check_verdict("verified", std::string("different"), std::string("absent"), root, none, same);
  EXPECT_EQ(c.module_root, "mismatch");
  c = check_verdict("build-failed", std::nullopt, std::nullopt, none, none, {});
  EXPECT_TRUE(c.reason.empty());
  // Nix: the rebuilt NAR "<hash>-<name>.nar" answers for "<hash>.narinfo".
  EXPECT_EQ(rebuilt_hash_for({{"85cv-linux-6.18.nar", hexof(5)}}, "85cv.narinfo", "linux-6.18"), hexof(5));
  EXPECT_EQ(rebuilt_hash_for({{"85cvx-linux-6.18.nar", hexof(5)}}, "85cv.narinfo", "linux-6.18"), std::nullopt);
  EXPECT_EQ(rebuilt_hash_for({{"linux-headers", hexof(6)}}, "h.pkg", "linux-headers"), hexof(6));
}

TEST_F(StoreTest, NixIdenticalNeedsTheNarHash) {
  const std::string narhash = hexof(40);
  std::vector<ImportArtifact> nix = {{"drv-1", "linux-6.18", "6.18", "x86_64-linux", "85cv.narinfo", "file:///c/85cv.narinfo",
                                      hexof(41), 100}};
  nix[0].content_sha256 = narhash;
  ASSERT_TRUE(store_->import_artifacts(repo_, "nixos", nix, 100).has_value());
  Worker a = worker("a", std::string(64, 'a'));
  std::int64_t t = 100;
  for (const std::string& rebuilt : {hexof(41), narhash}) {
    auto job = store_->claim_job(a, t, policy_);
    ASSERT_TRUE(job.has_value() && job->has_value());
    Report r = report_for(**job, a, "verified", "identical");
    r.module_root = "absent";
    r.rebuilt = {{"85cv-linux-6.18.nar", rebuilt}};
    auto o = store_->report(r, t, policy_);
    ASSERT_TRUE(o.has_value()) << o.error().to_string();
    t += 10000;  // past the retry backoff
    // The narinfo's own sha256 is not the NAR's: refused; the NarHash: accepted.
    EXPECT_EQ(o->reproducible, rebuilt == narhash);
    EXPECT_EQ(o->downgraded.empty(), rebuilt == narhash) << o->downgraded;
  }
}

TEST_F(StoreTest, NoncesRejectReplay) {
  Worker a = worker("a", std::string(64, 'a'));
  EXPECT_TRUE(store_->use_nonce(a.id, "n1", 100, 0).value());
  EXPECT_FALSE(store_->use_nonce(a.id, "n1", 101, 0).value());
  EXPECT_TRUE(store_->use_nonce(a.id, "n2", 101, 0).value());
}

TEST_F(StoreTest, KeysetPaginationOver10000Rows) {
  std::vector<ImportArtifact> many;
  for (int i = 0; i < 10000; ++i)
    many.push_back({"set" + std::to_string(i), i % 2 ? "linux" : "linux-lts", std::to_string(i), "x86_64",
                    "f" + std::to_string(i), "file:///f", hexof(1000 + i), 1});
  ASSERT_TRUE(store_->import_artifacts(repo_, "arch", many, 100).has_value());
  ListQuery q;
  q.limit = 1000;
  q.name = "linux";
  int total = 0, pages = 0;
  for (;;) {
    auto page = store_->list_artifacts(q);
    ASSERT_TRUE(page.has_value()) << page.error().to_string();
    total += static_cast<int>((*page)["items"].size());
    ++pages;
    if ((*page)["next"].is_null()) break;
    q.after_id = std::stoll((*page)["next"].get<std::string>());
  }
  EXPECT_EQ(total, 5000);
  EXPECT_EQ(pages, 5);
  ListQuery pending;
  pending.verdict = "pending";
  pending.limit = 10;
  auto p = store_->list_artifacts(pending);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ((*p)["items"].size(), 10u);
}

}  // namespace
}  // namespace kmr::server

namespace kmr::server {
namespace {

// What each write tells the document caches: the artifacts whose answer changed.
TEST_F(StoreTest, ChangeNoticesNameTheAffectedArtifacts) {
  std::vector<DocChange> seen;
  auto id = store_->add_change_listener([&seen](const DocChange& c) { seen.push_back(c); });
  auto last = [&seen]() { return seen.empty() ? DocChange{} : seen.back(); };
  using Names = std::vector<std::string>;

  ASSERT_TRUE(store_->import_artifacts(repo_, "arch", linux_set(), 100).has_value());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(last().artifacts, (Names{hexof(1), hexof(2)}));
  EXPECT_TRUE(last().members);  // a new artifact's hash may have been answered as a member
  ASSERT_TRUE(store_->import_artifacts(repo_, "arch", linux_set(), 100).has_value());
  EXPECT_EQ(seen.size(), 1u);  // nothing new, nothing to drop

  Worker a = worker("a", std::string(64, 'a'));
  auto job = store_->claim_job(a, 100, policy_);
  ASSERT_TRUE(job.has_value() && job->has_value());
  EXPECT_EQ(last().artifacts, (Names{hexof(1), hexof(2)}));  // the job is running now
  EXPECT_FALSE(last().everything);

  std::size_t before = seen.size();
  ASSERT_TRUE(store_->heartbeat((**job)["id"], a.id, (**job)["lease"], 120, policy_).has_value());
  ASSERT_TRUE(store_->use_nonce(a.id, "n1", 120, 0).has_value());
  ASSERT_TRUE(store_->touch_worker(a.id, "10.0.0.1", 120).has_value());
  ASSERT_TRUE(store_->record_sync(repo_, 120, std::nullopt).has_value());
  EXPECT_EQ(seen.size(), before);  // none of these show in an artifact answer

  Report r = report_for(**job, a, "build-failed");
  ASSERT_TRUE(store_->report(r, 130, policy_).has_value());
  EXPECT_EQ(last().artifacts, (Names{hexof(1), hexof(2)}));

  ASSERT_TRUE(store_->add_attestation_for_sha(std::string(64, 'e'), hexof(2), 1, std::nullopt, 140).has_value());
  EXPECT_EQ(last().artifacts, (Names{hexof(2)}));

  ASSERT_TRUE(store_->store_members(1, {{hexof(9), "boot/vmlinuz", "file"}}, false, std::nullopt, 150).has_value());
  EXPECT_TRUE(last().members);

  ASSERT_TRUE(store_->set_repository_insecure(repo_, true).has_value());
  EXPECT_TRUE(last().everything);
  before = seen.size();
  ASSERT_TRUE(store_->set_repository_insecure(repo_, true).has_value());  // unchanged
  EXPECT_EQ(seen.size(), before);
  ASSERT_TRUE(store_->upsert_repository("arch-core", "arch", "file:///moved").has_value());
  EXPECT_EQ(seen.size(), before);  // the URL is not in the answers
  ASSERT_TRUE(store_->upsert_repository("arch-core", "archlinux", "file:///moved").has_value());
  EXPECT_TRUE(last().everything);

  store_->remove_change_listener(id);
  before = seen.size();
  ASSERT_TRUE(store_->set_repository_insecure(repo_, false).has_value());
  EXPECT_EQ(seen.size(), before);
}

}  // namespace
}  // namespace kmr::server

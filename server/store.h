#pragma once

// kmrd's persistent state: SQLite (WAL, one writer connection behind a mutex,
// one read-only connection per thread) plus content-addressed blobs on disk
// (logs, diff reports, attestation envelopes) referenced by sha256.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "rebuilder/base/result.h"
#include "rebuilder/distros/common/indexed_package.h"
#include "server/queue_policy.h"
#include "server/sqlite.h"

namespace kmr::server {

// One artifact found by sync (or the import document): what a distro's
// repository reader lists (rebuilder/distros/common/repository.h).
using ImportArtifact = distros::IndexedPackage;

struct Worker {
  std::int64_t id = 0;
  std::string name;
  std::string public_key;  // hex
  std::vector<std::string> resource_classes;
  bool disabled = false;
};

struct Report {
  std::int64_t job_id = 0;
  std::string lease_token;
  std::int64_t worker_id = 0;
  std::string status;  // verified | build-failed | environment-unavailable | error
  std::optional<std::string> module_root, files, reason, shipped_root, rebuilt_root;
  std::string differing_json = "[]";
  std::string environment_json = "{}";
  std::vector<std::pair<std::string, std::string>> rebuilt;  // artifact filename or name -> sha256
  // Optional sha512s (rebuilderd's in-toto links carry both): rebuilt file name -> sha512, and
  // shipped file sha256 -> sha512 (the worker hashed the file after checking its sha256).
  std::vector<std::pair<std::string, std::string>> rebuilt_sha512;
  std::vector<std::pair<std::string, std::string>> shipped_sha512;
  std::optional<std::string> log_sha256, diff_json_sha256, diff_html_sha256;
  std::optional<std::int64_t> duration_ms;
  std::optional<std::string> details_json;  // the engine's JSON result, kept for the UI
};

struct ReportOutcome {
  std::int64_t rebuild_id = 0;
  // Why kmrd stored a weaker verdict than the worker reported (its claim contradicted its
  // own hashes or roots); empty when the report was stored as sent.
  std::string downgraded;
  std::string job_state;  // done | queued (retry)
  std::vector<std::int64_t> artifact_ids;
  bool reproducible = false;
  // Reproducible, but fewer than policy.confirmations distinct workers agree yet: the verdict
  // is not stored (nor attested) and the job is queued for another worker.
  bool awaiting_confirmation = false;
  std::int64_t confirmed_by = 0;  // distinct enabled workers with a reproducible result this round
};

struct ListQuery {
  std::optional<std::string> distro, name, verdict, q;
  std::int64_t after_id = 0;
  std::int64_t limit = 100;
};

bool is_good_files_tier(const std::string& files);
bool is_reproducible(const std::string& status, const std::optional<std::string>& module_root,
                     const std::optional<std::string>& files,
                     const std::optional<std::string>& module_content_root = std::nullopt);
// The files tier of one artifact of a set (the engine reports one tier for
// the whole set, naming differing members as "<package file>:<member>", Nix
// "<store path>:<member>"). A package whose rebuilt file is bit-identical is
// `identical`; a package of a multi-package set none of whose members is named
// is `identical` for a Nix output (same NAR) or `content-identical` (only its
// container differs); otherwise the set's tier.
struct ArtifactTierInput {
  std::string status;
  std::optional<std::string> set_tier;
  std::string shipped_sha256;
  std::optional<std::string> rebuilt_sha256;
  std::string filename;
  std::size_t set_size = 1;
  nlohmann::json differing = nlohmann::json::array();
};
std::optional<std::string> artifact_files_tier(const ArtifactTierInput& in);

// The verdict kmrd is willing to store for a report, checked against the worker's own evidence:
// `identical` needs every artifact's rebuilt hash equal to its shipped hash (Nix: NarHash),
// `match` needs equal shipped and rebuilt roots, `absent` needs no shipped root. A claim the
// evidence contradicts is downgraded (files -> different, module_root -> mismatch); `reason`
// says why. `expected` pairs each artifact's shipped hash with its reported rebuilt hash.
struct VerdictCheck {
  std::optional<std::string> files, module_root;
  std::string reason;  // empty: accepted as reported
};
struct ExpectedHash {
  std::string filename, shipped;
  std::optional<std::string> rebuilt;
};
VerdictCheck check_verdict(const std::string& status, const std::optional<std::string>& files,
                           const std::optional<std::string>& module_root, const std::optional<std::string>& shipped_root,
                           const std::optional<std::string>& rebuilt_root, const std::vector<ExpectedHash>& expected);
// The rebuilt hash a report names for an artifact: by file name or package name, for Nix
// (filename "<hash>.narinfo") by the rebuilt NAR "<hash>-<name>.nar".
std::optional<std::string> rebuilt_hash_for(const std::vector<std::pair<std::string, std::string>>& rebuilt,
                                            const std::string& filename, const std::string& name);

// The member index (server/members.h computes it): a hash (or Nix store path) -> the artifacts
// that ship it, with the member's path and what was hashed.
struct IndexJob {
  std::int64_t artifact_id = 0;
  std::string sha256, filename, url;
};
struct MemberRow {
  std::string key, path, kind;
};
struct MemberMatch {
  std::string artifact_sha256, path, kind;
};

enum class LeaseState { kHeld, kExpired, kNotHeld };

// What a committed write changed in the documents kmrd serves (the artifact
// answer of /api/v1/artifacts/sha256/{hex}): listeners drop what they cached.
struct DocChange {
  std::vector<std::string> artifacts;  // sha256 of the artifacts whose answer changed
  bool members = false;                // member lookups may answer differently
  bool everything = false;             // anything may have changed
  bool empty() const { return artifacts.empty() && !members && !everything; }
};

class BlobStore {
 public:
  explicit BlobStore(std::string root) : root_(std::move(root)) {}
  // Writes data under sha256/<2 hex>/<62 hex>; returns the hex digest.
  Result<std::string> put(std::string_view data);
  std::string path(const std::string& hex) const;
  Result<std::string> get(const std::string& hex, std::uint64_t max_bytes) const;
  // Size of a stored blob, and `length` bytes from `offset` read with pread (only the range
  // is read; short when the blob ends first).
  Result<std::uint64_t> size(const std::string& hex) const;
  Result<std::string> read_range(const std::string& hex, std::uint64_t offset, std::uint64_t length) const;

 private:
  std::string root_;
};

class Store {
 public:
  static Result<std::unique_ptr<Store>> open(const std::string& state_dir, int busy_timeout_ms = 10000);
  ~Store();

  BlobStore& blobs() { return blobs_; }
  // Bumped on every write; readers use it to invalidate caches.
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  std::int64_t schema_version() const { return schema_version_; }
  // Called after every committed write that changes an artifact answer (on the writing
  // thread, the write lock held: keep it short, never call back into the Store).
  using ChangeListener = std::function<void(const DocChange&)>;
  std::uint64_t add_change_listener(ChangeListener fn);
  void remove_change_listener(std::uint64_t id);

  // --- writes (serialised on the writer connection) ---
  Result<std::int64_t> upsert_repository(const std::string& name, const std::string& distro,
                                         const std::string& url);
  Result<void> record_sync(std::int64_t repo_id, std::int64_t now, const std::optional<std::string>& error);
  // Idempotent: known sha256s and set keys are skipped. Returns the number of new jobs.
  Result<std::int64_t> import_artifacts(std::int64_t repo_id, const std::string& distro,
                                        const std::vector<ImportArtifact>& artifacts, std::int64_t now);
  // A new name, or the same name with the same key (classes updated). Another key under a
  // known name, or a key known under another name: a conflict (kMalformedInput).
  Result<std::int64_t> register_worker(const std::string& name, const std::string& public_key_hex,
                                       const std::vector<std::string>& resource_classes, std::int64_t now);
  // Disables (or re-enables) a worker by name; disabling requeues the jobs it holds.
  // false when no such worker.
  Result<bool> set_worker_disabled(const std::string& name, bool disabled, std::int64_t now);
  // Records whether the repository's index was read without a verified signature.
  Result<void> set_repository_insecure(std::int64_t repo_id, bool insecure);
  // The sha256 and size of the artifact stored with this URL (the first), if any.
  Result<std::optional<std::pair<std::string, std::optional<std::int64_t>>>> artifact_by_url(const std::string& url);
  // True when an artifact with this sha256 is already stored.
  Result<bool> artifact_known(const std::string& sha256);
  // Records the nonce; false when it was seen before (replay). Prunes nonces older than min_ts.
  Result<bool> use_nonce(std::int64_t worker_id, const std::string& nonce, std::int64_t ts, std::int64_t min_ts);
  Result<void> touch_worker(std::int64_t worker_id, const std::string& address, std::int64_t now);
  // Requeues expired leases, then leases the best job for the worker. nullopt: nothing to do.
  // kLimitExceeded when the worker already holds policy.max_leases_per_worker running leases.
  Result<std::optional<nlohmann::json>> claim_job(const Worker& worker, std::int64_t now, const QueuePolicy& policy);
  // Heartbeat and report need the lease held and not expired: kPermissionDenied when not
  // held, kTimeout when held but expired (nothing written).
  Result<std::int64_t> heartbeat(std::int64_t job_id, std::int64_t worker_id, const std::string& lease_token,
                                 std::int64_t now, const QueuePolicy& policy);
  Result<ReportOutcome> report(const Report& r, std::int64_t now, const QueuePolicy& policy);
  Result<std::int64_t> reap_expired(std::int64_t now);
  // Requeue by job id, by artifact sha256, or every done job whose verdict is not reproducible.
  Result<std::int64_t> requeue(std::optional<std::int64_t> job_id, std::optional<std::string> sha256,
                               bool all_failed, std::int64_t now);
  Result<void> add_attestation_for_sha(const std::string& envelope_sha256, const std::string& artifact_sha256,
                               std::int64_t rebuild_id, std::optional<std::int64_t> log_index, std::int64_t now);
  Result<void> snapshot_stats(std::int64_t now);

  // --- reads (per-thread read-only connection) ---
  Result<bool> lease_held(std::int64_t job_id, std::int64_t worker_id, const std::string& lease_token);
  // Held and not expired at `now`, held but past its expiry, or not held.
  Result<LeaseState> lease_state(std::int64_t job_id, std::int64_t worker_id, const std::string& lease_token,
                                 std::int64_t now);
  Result<std::optional<Worker>> worker_by_key(const std::string& public_key_hex);
  // The end-user answer; nullopt when the hash is unknown.
  Result<std::optional<nlohmann::json>> artifact_by_sha256(const std::string& sha256);
  Result<nlohmann::json> list_artifacts(const ListQuery& q);
  Result<std::optional<nlohmann::json>> build(std::int64_t id);
  // Blob references of a build: log, diff_json, diff_html.
  Result<std::optional<std::string>> build_blob(std::int64_t id, const std::string& which);
  Result<nlohmann::json> queue(std::int64_t now);
  Result<nlohmann::json> workers(bool admin, std::int64_t now, std::int64_t online_window);
  Result<nlohmann::json> stats(std::int64_t now);
  Result<bool> attestation_exists(const std::string& sha256);
  Result<bool> attested(std::int64_t rebuild_id, const std::string& artifact_sha256);
  // True when the rebuild is the current verdict of its artifacts (only those are attested).
  Result<bool> rebuild_is_current(std::int64_t rebuild_id);
  // Latest rebuilds (current verdicts) with a module_root verdict but no attestation
  // (e.g. kmrd was killed between storing the verdict and signing).
  Result<std::vector<std::int64_t>> unattested_rebuilds();
  // The highest transparency-log index an attestation row references (nullopt: none).
  Result<std::optional<std::int64_t>> max_log_index();
  // --- member index ---
  // Artifacts with a stored verdict whose members are not indexed yet (or whose indexing failed
  // before `retry_before`), oldest first.
  Result<std::vector<IndexJob>> artifacts_to_index(std::int64_t retry_before, std::int64_t limit);
  // Replaces the artifact's member rows; with `error` only records why indexing failed.
  Result<void> store_members(std::int64_t artifact_id, const std::vector<MemberRow>& rows, bool truncated,
                             const std::optional<std::string>& error, std::int64_t now);
  // Artifacts shipping a member with this key (hex sha256), Nix outputs with this NarHash included
  // (indexed or not): at most `limit`, ordered by artifact id.
  Result<std::vector<MemberMatch>> member_matches(const std::string& key, std::int64_t limit);
  // The sha256 of the narinfo artifact of a store path's hash part (32 nix32 characters).
  Result<std::optional<std::string>> artifact_for_store_path(const std::string& hash_part);
  // Counts for /metrics: jobs by state, workers, queued.
  Result<nlohmann::json> metrics_counts();

  Db& writer() { return *writer_; }
  Db& reader();

 private:
  Store(std::string db_path, std::unique_ptr<Db> writer, BlobStore blobs, int busy)
      : db_path_(std::move(db_path)), writer_(std::move(writer)), blobs_(std::move(blobs)), busy_(busy) {}
  Result<void> migrate();
  // Why a lease check failed (writer lock held): expired (kTimeout) or not held (kPermissionDenied).
  Error lease_error_locked(std::int64_t job_id, std::int64_t worker_id, const std::string& lease_token);
  void bump() { generation_.fetch_add(1, std::memory_order_acq_rel); }
  // Tells the listeners (write lock held, after the commit).
  void changed(const DocChange& c);
  // The sha256 of the artifacts of these build inputs (writer connection, write lock held).
  Result<std::vector<std::string>> artifacts_of_inputs_locked(const std::vector<std::int64_t>& build_inputs);

  std::string db_path_;
  std::unique_ptr<Db> writer_;
  std::mutex write_mu_;
  BlobStore blobs_;
  int busy_;
  std::uint64_t id_;
  std::atomic<std::uint64_t> generation_{1};
  std::int64_t schema_version_ = 0;
  std::mutex listeners_mu_;
  std::vector<std::pair<std::uint64_t, ChangeListener>> listeners_;
  std::uint64_t next_listener_ = 1;
};

}  // namespace kmr::server

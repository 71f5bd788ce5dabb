#include "server/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <unordered_map>

#include <openssl/rand.h>

#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/verdict/rule.h"
#include "server/embedded.h"

namespace kmr::server {

using nlohmann::json;

namespace {

std::atomic<std::uint64_t> g_store_ids{1};

// is_reproducible() over the columns of a rebuilds row aliased `r` (the
// content root is in the stored report).
constexpr const char* kReproducibleRebuild =
    "r.status = 'verified' AND r.files IN ('identical','content-identical','identical-modulo-signatures') "
    "AND (r.module_root IS NULL OR r.module_root IN ('match','absent')) "
    "AND (NOT json_valid(r.details) OR json_extract(r.details, '$.module_content_root') IS NULL "
    "OR json_extract(r.details, '$.module_content_root') IN ('match','absent'))";

std::string random_token() {
  unsigned char buf[16];
  RAND_bytes(buf, sizeof buf);
  return to_hex(Bytes(buf, sizeof buf));
}

json opt(const std::optional<std::string>& s) { return s ? json(*s) : json(nullptr); }

json parse_or(const std::optional<std::string>& s, json fallback) {
  if (!s) return fallback;
  auto j = json::parse(*s, nullptr, false);
  return j.is_discarded() ? fallback : j;
}

}  // namespace

bool is_good_files_tier(const std::string& files) {
  return verdict::is_reproducible(files, std::nullopt, std::nullopt);
}

bool is_reproducible(const std::string& status, const std::optional<std::string>& module_root,
                     const std::optional<std::string>& files, const std::optional<std::string>& module_content_root) {
  if (status != "verified" || !files) return false;
  auto view = [](const std::optional<std::string>& v) {
    return v ? std::optional<std::string_view>(*v) : std::optional<std::string_view>();
  };
  return verdict::is_reproducible(*files, view(module_root), view(module_content_root));
}

std::optional<std::string> artifact_files_tier(const ArtifactTierInput& in) {
  if (in.status != "verified" || !in.set_tier) return in.set_tier;
  if (in.rebuilt_sha256 && *in.rebuilt_sha256 == in.shipped_sha256) return std::string("identical");
  if (*in.set_tier == "identical") return std::string("different");  // bit-identical needs equal hashes
  if (in.set_size < 2 || !in.differing.is_array() || in.differing.empty()) return in.set_tier;
  static constexpr std::string_view kNarinfo = ".narinfo";
  const bool nix = in.filename.size() > kNarinfo.size() &&
                   in.filename.compare(in.filename.size() - kNarinfo.size(), kNarinfo.size(), kNarinfo) == 0;
  // A Nix output is its NAR: bit-identical only with the equal NarHash (checked above).
  if (nix) return in.set_tier;
  for (const auto& d : in.differing) {
    if (!d.is_string()) return in.set_tier;
    const std::string entry = d.get<std::string>();
    const auto colon = entry.find(':');
    if (colon == std::string::npos) return in.set_tier;  // not attributed to a package
    if (entry.substr(0, colon) == in.filename) return in.set_tier;
  }
  return std::string("content-identical");
}

std::optional<std::string> rebuilt_hash_for(const std::vector<std::pair<std::string, std::string>>& rebuilt,
                                            const std::string& filename, const std::string& name) {
  static constexpr std::string_view kNarinfo = ".narinfo", kNar = ".nar";
  const bool nix = filename.size() > kNarinfo.size() && filename.ends_with(kNarinfo);
  const std::string nar_prefix = nix ? filename.substr(0, filename.size() - kNarinfo.size()) + "-" : "";
  for (const auto& [k, h] : rebuilt) {
    if (k == filename || k == name) return h;
    if (nix && k.size() > nar_prefix.size() + kNar.size() && k.starts_with(nar_prefix) && k.ends_with(kNar)) return h;
  }
  return std::nullopt;
}

VerdictCheck check_verdict(const std::string& status, const std::optional<std::string>& files,
                           const std::optional<std::string>& module_root, const std::optional<std::string>& shipped_root,
                           const std::optional<std::string>& rebuilt_root, const std::vector<ExpectedHash>& expected) {
  VerdictCheck c{files, module_root, ""};
  if (status != "verified") return c;
  auto add = [&c](const std::string& why) { c.reason += (c.reason.empty() ? "" : "; ") + why; };
  if (files && *files == "identical") {
    std::string why;
    if (expected.empty()) why = "no artifacts to compare";
    for (const auto& e : expected) {
      if (!e.rebuilt) why = "no rebuilt sha256 reported for " + e.filename;
      else if (*e.rebuilt != e.shipped)
        why = "rebuilt sha256 of " + e.filename + " is " + *e.rebuilt + ", shipped is " + e.shipped;
      if (!why.empty()) break;
    }
    if (!why.empty()) {
      c.files = "different";
      add("worker reported files identical but " + why);
    }
  }
  if (module_root && *module_root == "match" && (!shipped_root || !rebuilt_root || *shipped_root != *rebuilt_root)) {
    c.module_root = "mismatch";
    add(!shipped_root || !rebuilt_root ? "worker reported module_root match without both roots"
                                       : "worker reported module_root match but the roots differ");
  }
  if (module_root && *module_root == "absent" && shipped_root) {
    c.module_root = "mismatch";
    add("worker reported module_root absent but named a shipped root");
  }
  return c;
}

// ---------------------------------------------------------------- blobs

std::string BlobStore::path(const std::string& hex) const {
  return root_ + "/sha256/" + hex.substr(0, 2) + "/" + hex.substr(2);
}

Result<std::string> BlobStore::put(std::string_view data) {
  std::string hex = sha256_hex(Bytes(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()));
  std::string p = path(hex);
  std::error_code ec;
  if (std::filesystem::exists(p, ec)) return hex;
  std::filesystem::create_directories(std::filesystem::path(p).parent_path(), ec);
  if (ec) return io_error("cannot create blob directory for " + p + ": " + ec.message());
  KMR_TRY(write_file_atomic(p, Bytes(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()), 0644));
  return hex;
}

Result<std::string> BlobStore::get(const std::string& hex, std::uint64_t max_bytes) const {
  if (!is_sha256_hex(hex)) return malformed("bad blob id");
  return read_text_file(path(hex), max_bytes);
}

namespace {
// An open file descriptor, closed on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

Result<void> open_blob(const std::string& p, Fd& f, std::uint64_t& size) {
  f.fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (f.fd < 0) return io_error("cannot open blob " + p + ": " + std::strerror(errno));
  struct stat st{};
  if (::fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode)) return io_error("blob " + p + " is not a regular file");
  size = static_cast<std::uint64_t>(st.st_size);
  return ok();
}
}  // namespace

Result<std::uint64_t> BlobStore::size(const std::string& hex) const {
  if (!is_sha256_hex(hex)) return malformed("bad blob id");
  Fd f;
  std::uint64_t n = 0;
  KMR_TRY(open_blob(path(hex), f, n));
  return n;
}

Result<std::string> BlobStore::read_range(const std::string& hex, std::uint64_t offset, std::uint64_t length) const {
  if (!is_sha256_hex(hex)) return malformed("bad blob id");
  Fd f;
  std::uint64_t n = 0;
  KMR_TRY(open_blob(path(hex), f, n));
  if (offset >= n) return std::string();
  std::string out(static_cast<std::size_t>(std::min(length, n - offset)), '\0');
  std::size_t got = 0;
  while (got < out.size()) {
    ssize_t r = ::pread(f.fd, out.data() + got, out.size() - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return io_error("reading blob " + hex + ": " + std::strerror(errno));
    if (r == 0) break;  // truncated underneath us
    got += static_cast<std::size_t>(r);
  }
  out.resize(got);
  return out;
}

// ---------------------------------------------------------------- open/migrate

Result<std::unique_ptr<Store>> Store::open(const std::string& state_dir, int busy_timeout_ms) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir + "/blobs", ec);
  if (ec) return io_error("cannot create state directory " + state_dir + ": " + ec.message());
  std::string db_path = state_dir + "/kmrd.sqlite";
  KMR_ASSIGN_OR_RETURN(auto writer, Db::open(db_path, false, busy_timeout_ms));
  std::unique_ptr<Store> s(new Store(db_path, std::move(writer), BlobStore(state_dir + "/blobs"), busy_timeout_ms));
  s->id_ = g_store_ids.fetch_add(1);
  KMR_TRY(s->migrate());
  return s;
}

Store::~Store() = default;

std::uint64_t Store::add_change_listener(ChangeListener fn) {
  std::lock_guard lock(listeners_mu_);
  std::uint64_t id = next_listener_++;
  listeners_.emplace_back(id, std::move(fn));
  return id;
}

void Store::remove_change_listener(std::uint64_t id) {
  // Taken after the listeners lock by writers: a notification in progress finishes first.
  std::lock_guard wlock(write_mu_);
  std::lock_guard lock(listeners_mu_);
  std::erase_if(listeners_, [id](const auto& l) { return l.first == id; });
}

void Store::changed(const DocChange& c) {
  if (c.empty()) return;
  std::lock_guard lock(listeners_mu_);
  for (const auto& [id, fn] : listeners_) fn(c);
}

Result<std::vector<std::string>> Store::artifacts_of_inputs_locked(const std::vector<std::int64_t>& build_inputs) {
  std::vector<std::string> out;
  KMR_ASSIGN_OR_RETURN(auto s, writer_->prepare("SELECT sha256 FROM artifacts WHERE build_input_id = ?"));
  for (std::int64_t bi : build_inputs) {
    s.reset();
    s.bind(1, bi);
    for (;;) {
      KMR_ASSIGN_OR_RETURN(bool row, s.step());
      if (!row) break;
      out.push_back(s.text(0));
    }
  }
  return out;
}

Result<void> Store::migrate() {
  std::lock_guard lock(write_mu_);
  KMR_TRY(writer_->exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"));
  std::vector<const EmbeddedFile*> files;
  for (std::size_t i = 0; i < kMigrationsCount; ++i) files.push_back(&kMigrations[i]);
  std::sort(files.begin(), files.end(), [](auto* a, auto* b) { return a->path < b->path; });
  for (const EmbeddedFile* f : files) {
    std::string name(f->path);
    auto slash = name.rfind('/');
    if (slash != std::string::npos) name = name.substr(slash + 1);
    std::int64_t version = std::stoll(name.substr(0, 4));
    KMR_ASSIGN_OR_RETURN(auto q, writer_->prepare("SELECT 1 FROM schema_migrations WHERE version = ?"));
    q.bind(1, version);
    KMR_ASSIGN_OR_RETURN(bool applied, q.step());
    if (!applied) {
      Txn txn(*writer_);
      KMR_TRY(txn.begin());
      auto r = writer_->exec(f->data);
      if (!r) return std::move(r).error().with_context("while applying migration " + name);
      KMR_ASSIGN_OR_RETURN(auto ins, writer_->prepare("INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, strftime('%s','now'))"));
      ins.bind(1, version).bind(2, name);
      KMR_TRY(ins.run());
      KMR_TRY(txn.commit());
    }
    schema_version_ = version;
  }
  return ok();
}

Db& Store::reader() {
  thread_local std::unordered_map<std::uint64_t, std::unique_ptr<Db>> conns;
  auto& c = conns[id_];
  if (!c) {
    auto r = Db::open(db_path_, true, busy_);
    KMR_CHECK(r.has_value());
    c = std::move(r).value();
  }
  return *c;
}

// ---------------------------------------------------------------- writes

Result<std::int64_t> Store::upsert_repository(const std::string& name, const std::string& distro,
                                              const std::string& url) {
  std::lock_guard lock(write_mu_);
  KMR_ASSIGN_OR_RETURN(auto old, writer_->prepare("SELECT distro FROM repositories WHERE name = ?"));
  old.bind(1, name);
  KMR_ASSIGN_OR_RETURN(bool existed, old.step());
  const bool distro_changed = existed && old.text(0) != distro;
  old.reset();
  KMR_ASSIGN_OR_RETURN(auto s, writer_->prepare(
      "INSERT INTO repositories(name, distro, url) VALUES (?1, ?2, ?3) "
      "ON CONFLICT(name) DO UPDATE SET distro = ?2, url = ?3 RETURNING id"));
  s.bind(1, name).bind(2, distro).bind(3, url);
  KMR_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return internal_error("upsert repository returned no id");
  std::int64_t id = s.i64(0);
  bump();
  changed({.everything = distro_changed});
  return id;
}

Result<void> Store::record_sync(std::int64_t repo_id, std::int64_t now, const std::optional<std::string>& error) {
  std::lock_guard lock(write_mu_);
  KMR_ASSIGN_OR_RETURN(auto s, writer_->prepare("UPDATE repositories SET last_sync_at = ?, last_sync_error = ? WHERE id = ?"));
  s.bind(1, now).bind(2, error).bind(3, repo_id);
  KMR_TRY(s.run());
  bump();
  return ok();
}

Result<std::int64_t> Store::import_artifacts(std::int64_t repo_id, const std::string& distro,
                                             const std::vector<ImportArtifact>& artifacts, std::int64_t now) {
  std::lock_guard lock(write_mu_);
  Txn txn(*writer_);
  KMR_TRY(txn.begin());
  std::int64_t new_jobs = 0;
  DocChange change;  // a new artifact: its hash may have been answered as a member before
  KMR_ASSIGN_OR_RETURN(auto known, writer_->prepare("SELECT 1 FROM artifacts WHERE sha256 = ?"));
  KMR_ASSIGN_OR_RETURN(auto pkg, writer_->prepare(
      "INSERT INTO packages(repository_id, name, version, arch) VALUES (?1, ?2, ?3, ?4) "
      "ON CONFLICT(repository_id, name, version, arch) DO UPDATE SET name = excluded.name RETURNING id"));
  KMR_ASSIGN_OR_RETURN(auto bi_find, writer_->prepare("SELECT id FROM build_inputs WHERE repository_id = ? AND set_key = ?"));
  KMR_ASSIGN_OR_RETURN(auto bi_ins, writer_->prepare(
      "INSERT INTO build_inputs(repository_id, set_key, distro, resource_class, created_at, sources) VALUES (?, ?, ?, ?, ?, ?)"));
  KMR_ASSIGN_OR_RETURN(auto job_ins, writer_->prepare(
      "INSERT INTO jobs(build_input_id, resource_class, created_at, updated_at) VALUES (?, ?, ?, ?) "
      "ON CONFLICT(build_input_id) DO NOTHING"));
  KMR_ASSIGN_OR_RETURN(auto art_ins, writer_->prepare(
      "INSERT INTO artifacts(package_id, build_input_id, filename, url, sha256, size, created_at, content_sha256) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
  for (const ImportArtifact& a : artifacts) {
    known.reset();
    known.bind(1, a.sha256);
    KMR_ASSIGN_OR_RETURN(bool exists, known.step());
    if (exists) continue;
    pkg.reset();
    pkg.bind(1, repo_id).bind(2, a.name).bind(3, a.version).bind(4, a.arch);
    KMR_ASSIGN_OR_RETURN(bool prow, pkg.step());
    if (!prow) return internal_error("package upsert returned no id");
    std::int64_t package_id = pkg.i64(0);
    KMR_TRY(pkg.run());
    bi_find.reset();
    bi_find.bind(1, repo_id).bind(2, a.set_key);
    KMR_ASSIGN_OR_RETURN(bool have_bi, bi_find.step());
    std::int64_t bi_id;
    if (have_bi) {
      bi_id = bi_find.i64(0);
    } else {
      bi_ins.reset();
      bi_ins.bind(1, repo_id).bind(2, a.set_key).bind(3, distro).bind(4, a.resource_class).bind(5, now).bind(6, a.sources);
      KMR_TRY(bi_ins.run());
      bi_id = writer_->last_insert_id();
      job_ins.reset();
      job_ins.bind(1, bi_id).bind(2, a.resource_class).bind(3, now).bind(4, now);
      KMR_TRY(job_ins.run());
      new_jobs += writer_->changes();
    }
    art_ins.reset();
    art_ins.bind(1, package_id).bind(2, bi_id).bind(3, a.filename).bind(4, a.url).bind(5, a.sha256)
        .bind(6, a.size).bind(7, now).bind(8, a.content_sha256);
    KMR_TRY(art_ins.run());
    change.artifacts.push_back(a.sha256);
  }
  KMR_TRY(txn.commit());
  bump();
  change.members = !change.artifacts.empty();
  changed(change);
  return new_jobs;
}

Result<std::int64_t> Store::register_worker(const std::string& name, const std::string& public_key_hex,
                                            const std::vector<std::string>& resource_classes, std::int64_t now) {
  std::lock_guard lock(write_mu_);
  KMR_ASSIGN_OR_RETURN(auto find, writer_->prepare("SELECT id, public_key FROM workers WHERE name = ?"));
  find.bind(1, name);
  KMR_ASSIGN_OR_RETURN(bool known, find.step());
  if (known && find.text(1) != public_key_hex)
    return Error(ErrorCode::kMalformedInput, "worker \"" + name + "\" is registered with another key");
  KMR_ASSIGN_OR_RETURN(auto s, writer_->prepare(
      "INSERT INTO workers(name, public_key, resource_classes, created_at) VALUES (?1, ?2, ?3, ?4) "
      "ON CONFLICT(name) DO UPDATE SET resource_classes = ?3 RETURNING id"));
  s.bind(1, name).bind(2, public_key_hex).bind(3, json(resource_classes).dump()).bind(4, now);
  auto row = s.step();
  if (!row) {
    if (row.error().message().find("UNIQUE") != std::string::npos)
      return Error(ErrorCode::kMalformedInput, "public key already registered to another worker");
    return std::move(row).error();
  }
  std::int64_t id = s.i64(0);
  bump();
  return id;
}

Result<bool> Store::set_worker_disabled(const std::string& name, bool disabled, std::int64_t now) {
  std::lock_guard lock(write_mu_);
  Txn txn(*writer_);
  KMR_TRY(txn.begin());
  KMR_ASSIGN_OR_RETURN(auto s, writer_->prepare("UPDATE workers SET disabled = ? WHERE name = ? RETURNING id"));
  s.bind(1, disabled ? 1 : 0).bind(2, name);
  KMR_ASSIGN_OR_RETURN(bool found, s.step());
  if (!found) return false;
  std::int64_t id = s.i64(0);
  KMR_TRY(s.run());
  if (disabled) {
    KMR_ASSIGN_OR_RETURN(auto rq, writer_->prepare(
        "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_token = NULL, lease_expiry = NULL, "
        "priority = 0, updated_at = ? WHERE state = 'running' AND lease_owner = ?"));
    rq.bind(1, now).bind(2, id);
    KMR_TRY(rq.run());
  }
  KMR_TRY(txn.commit());
  bump();
  changed({.everything = disabled});  // the worker's running jobs are queued again
  return true;
}

Result<void> Store::set_repository_insecure(std::int64_t repo_id, bool insecure) {
  std::lock_guard lock(write_mu_);
  KMR_ASSIGN_OR_RETURN(auto s, writer_->prepare(
      "UPDATE repositories SET insecure_unsigned = ?1 WHERE id = ?2 AND insecure_unsigned IS NOT ?1"));
  s.bind(1, insecure ? 1 : 0).bind(2, repo_id);
  KMR_TRY(s.run());
  bump();
  changed({.everything = writer_->changes() > 0});
  return ok();
}

Result<std::optional<std::pair<std::string, std::optional<std::int64_t>>>> Store::artifact_by_url(const std::string& url) {
  KMR_ASSIGN_OR_RETURN(auto s, reader().prepare("SELECT sha256, size FROM artifacts WHERE url = ? ORDER BY id LIMIT 1"));
  s.bind(1, url);
  KMR_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<std::pair<std::string, std::optional<std::int64_t>>>();
  return std::optional<std::pair<std::string, std::optional<std::int64_t>>>(std::make_pair(s.text(0), s.opt_i64(1)));
}

Result<bool> Store::artifact_known(const std::string& sha256) {
  KMR_ASSIGN_OR_RETURN(auto s, reader().prepare("SELECT 1 FROM artifacts WHERE sha256 = ?"));
  s.bind(1, sha256);
  return s.step();
}

Result<bool> Store::use_nonce(std::int64_t worker_id, const std::string& nonce, std::int64_t ts, std::int64_t min_ts) {
  std::lock_guard lock(write_mu_);
  KMR_ASSIGN_OR_RETURN(auto del, writer_->prepare("DELETE FROM nonces WHERE ts < ?"));
  del.bind(1, min_ts);
  KMR_TRY(del.run());
  KMR_ASSIGN_OR_RETURN(auto s, writer_->prepare("INSERT INTO nonces(worker_id, nonce, ts) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"));
  s.bind(1, worker_id).bind(2, nonce).bind(3, ts);
  KMR_TRY(s.run());
  return writer_->changes() == 1;
}

Result<void> Store::touch_worker(std::int64_t worker_id, const std::string& address, std::int64_t now) {
  std::lock_guard lock(write_mu_);
  KMR_ASSIGN_OR_RETURN(auto s, writer_->prepare("UPDATE workers SET address = ?, last_seen = ? WHERE id = ?"));
  s.bind(1, address).bind(2, now).bind(3, worker_id);
  return s.run();
}

Error Store::lease_error_locked(std::int64_t job_id, std::int64_t worker_id, const std::string& lease_token) {
  auto s = writer_->prepare("SELECT 1 FROM jobs WHERE id = ? AND state = 'running' AND lease_owner = ? AND lease_token = ?");
  if (s) {
    s->bind(1, job_id).bind(2, worker_id).bind(3, lease_token);
    auto row = s->step();
    if (row && *row) return Error(ErrorCode::kTimeout, "lease expired");
  }
  return Error(ErrorCode::kPermissionDenied, "lease not held by this worker");
}

namespace {
Result<std::int64_t> reap_locked(Db& db, std::int64_t now) {
  KMR_ASSIGN_OR_RETURN(auto s, db.prepare(
      "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_token = NULL, lease_expiry = NULL, "
      "priority = 0, updated_at = ?1 WHERE state = 'running' AND lease_expiry < ?1"));
  s.bind(1, now);
  KMR_TRY(s.run());
  return static_cast<std::int64_t>(db.changes());
}
}  // namespace

Result<std::int64_t> Store::reap_expired(std::int64_t now) {
  std::lock_guard lock(write_mu_);
  KMR_ASSIGN_OR_RETURN(std::int64_t n, reap_locked(*writer_, now));
  if (n) bump();
  changed({.everything = n > 0});
  return n;
}

Result<std::optional<json>> Store::claim_job(const Worker& worker, std::int64_t now, const QueuePolicy& policy) {
  std::lock_guard lock(write_mu_);
  Txn txn(*writer_);
  KMR_TRY(txn.begin());
  KMR_ASSIGN_OR_RETURN(std::int64_t reaped, reap_locked(*writer_, now));
  KMR_ASSIGN_OR_RETURN(auto held, writer_->prepare(
      "SELECT COUNT(*) FROM jobs WHERE state = 'running' AND lease_owner = ? AND lease_expiry >= ?"));
  held.bind(1, worker.id).bind(2, now);
  KMR_ASSIGN_OR_RETURN(bool counted, held.step());
  if (counted && held.i64(0) >= policy.max_leases_per_worker) {
    KMR_TRY(txn.commit());
    if (reaped) bump();
    changed({.everything = reaped > 0});
    return limit_exceeded("worker holds " + std::to_string(held.i64(0)) + " running lease(s), the limit is " +
                          std::to_string(policy.max_leases_per_worker));
  }
  KMR_ASSIGN_OR_RETURN(auto pick, writer_->prepare(
      std::string("SELECT id, build_input_id FROM jobs WHERE state = 'queued' AND next_try <= ?1 "
                  "AND resource_class IN (SELECT value FROM json_each(?2)) "
                  // A worker never confirms its own result.
                  "AND (?4 <= 1 OR NOT EXISTS (SELECT 1 FROM rebuilds r WHERE r.build_input_id = jobs.build_input_id "
                  "AND r.worker_id = ?3 AND r.id > jobs.round_after AND ") +
      kReproducibleRebuild + ")) ORDER BY priority, next_try, id LIMIT 1"));
  pick.bind(1, now).bind(2, json(worker.resource_classes).dump()).bind(3, worker.id).bind(4, policy.confirmations);
  KMR_ASSIGN_OR_RETURN(bool found, pick.step());
  if (!found) {
    KMR_TRY(txn.commit());
    if (reaped) bump();
    changed({.everything = reaped > 0});
    return std::optional<json>();
  }
  std::int64_t job_id = pick.i64(0), bi = pick.i64(1);
  std::string token = random_token();
  KMR_ASSIGN_OR_RETURN(auto upd, writer_->prepare(
      "UPDATE jobs SET state = 'running', lease_owner = ?, lease_token = ?, lease_expiry = ?, updated_at = ? WHERE id = ?"));
  upd.bind(1, worker.id).bind(2, token).bind(3, now + policy.lease_seconds).bind(4, now).bind(5, job_id);
  KMR_TRY(upd.run());
  KMR_ASSIGN_OR_RETURN(auto arts, writer_->prepare(
      "SELECT a.filename, a.url, a.sha256, p.name, p.version, p.arch, b.distro, b.set_key, b.sources FROM artifacts a "
      "JOIN packages p ON p.id = a.package_id JOIN build_inputs b ON b.id = a.build_input_id "
      "WHERE a.build_input_id = ? ORDER BY a.id"));
  arts.bind(1, bi);
  DocChange change{.everything = reaped > 0};  // the set's job is running now
  json job = {{"id", job_id}, {"lease", token}, {"lease_seconds", policy.lease_seconds},
              {"heartbeat_seconds", policy.heartbeat_seconds}, {"artifacts", json::array()}};
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool row, arts.step());
    if (!row) break;
    job["distro"] = arts.text(6);
    job["set"] = arts.text(7);
    job["sources"] = opt(arts.opt_text(8));
    job["artifacts"].push_back({{"filename", arts.text(0)}, {"url", arts.text(1)}, {"sha256", arts.text(2)},
                                {"name", arts.text(3)}, {"version", arts.text(4)}, {"arch", arts.text(5)}});
    change.artifacts.push_back(arts.text(2));
  }
  KMR_TRY(txn.commit());
  bump();
  changed(change);
  return std::optional<json>(std::move(job));
}

Result<std::int64_t> Store::heartbeat(std::int64_t job_id, std::int64_t worker_id, const std::string& lease_token,
                                      std::int64_t now, const QueuePolicy& policy) {
  std::lock_guard lock(write_mu_);
  KMR_ASSIGN_OR_RETURN(auto s, writer_->prepare(
      "UPDATE jobs SET lease_expiry = ?, updated_at = ? WHERE id = ? AND state = 'running' AND lease_owner = ? "
      "AND lease_token = ? AND lease_expiry >= ?"));
  std::int64_t expiry = now + policy.lease_seconds;
  s.bind(1, expiry).bind(2, now).bind(3, job_id).bind(4, worker_id).bind(5, lease_token).bind(6, now);
  KMR_TRY(s.run());
  if (writer_->changes() != 1) return lease_error_locked(job_id, worker_id, lease_token);
  return expiry;
}

namespace {

// The running job a report answers, read while the reporting worker's lease is held.
struct LeasedJob {
  std::int64_t build_input = 0, build_attempts = 0, repro_attempts = 0, round_after = 0;
};

Result<std::optional<LeasedJob>> leased_job(Db& db, const Report& r, std::int64_t now) {
  KMR_ASSIGN_OR_RETURN(auto j, db.prepare(
      "SELECT build_input_id, build_attempts, repro_attempts, round_after FROM jobs WHERE id = ? AND state = 'running' "
      "AND lease_owner = ? AND lease_token = ? AND lease_expiry >= ?"));
  j.bind(1, r.job_id).bind(2, r.worker_id).bind(3, r.lease_token).bind(4, now);
  KMR_ASSIGN_OR_RETURN(bool held, j.step());
  if (!held) return std::optional<LeasedJob>();
  return std::optional<LeasedJob>(LeasedJob{j.i64(0), j.i64(1), j.i64(2), j.i64(3)});
}

// An artifact of the reported set and the hash its rebuild must have to be bit-identical.
struct SetArtifact {
  std::int64_t id;
  std::string filename, expected;
  std::optional<std::string> rebuilt;
  std::string sha256;
  std::optional<std::string> rebuilt_sha512;
};

Result<std::vector<SetArtifact>> reported_set(Db& db, std::int64_t build_input, const Report& r) {
  KMR_ASSIGN_OR_RETURN(auto arts, db.prepare(
      "SELECT a.id, a.filename, p.name, COALESCE(a.content_sha256, a.sha256), a.sha256 FROM artifacts a "
      "JOIN packages p ON p.id = a.package_id WHERE a.build_input_id = ? ORDER BY a.id"));
  arts.bind(1, build_input);
  std::vector<SetArtifact> set;
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool row, arts.step());
    if (!row) break;
    set.push_back({arts.i64(0), arts.text(1), arts.text(3), rebuilt_hash_for(r.rebuilt, arts.text(1), arts.text(2)),
                   arts.text(4), rebuilt_hash_for(r.rebuilt_sha512, arts.text(1), arts.text(2))});
  }
  return set;
}

// The verdict kmrd stores for a report, and the module content root it was judged with.
struct StoredVerdict {
  VerdictCheck checked;
  std::optional<std::string> content_root;
};

StoredVerdict stored_verdict(const Report& r, const std::vector<SetArtifact>& set) {
  std::vector<ExpectedHash> expected;
  expected.reserve(set.size());
  for (const SetArtifact& x : set) expected.push_back({x.filename, x.expected, x.rebuilt});
  StoredVerdict v{check_verdict(r.status, r.files, r.module_root, r.shipped_root, r.rebuilt_root, expected), {}};
  // The one rule also needs the module content root (in the report's
  // details): modules that differ once signatures are removed cannot be
  // identical in any tier, whatever the worker claims.
  if (const json d = json::parse(r.details_json.value_or("{}"), nullptr, false);
      d.is_object() && d.contains("module_content_root") && d["module_content_root"].is_string()) {
    v.content_root = d["module_content_root"].get<std::string>();
  }
  if (v.content_root && !verdict::is_content_root(*v.content_root)) v.content_root = "mismatch";
  if (v.content_root == "mismatch" && v.checked.files && is_good_files_tier(*v.checked.files)) {
    if (!v.checked.reason.empty()) v.checked.reason += "; ";
    v.checked.reason += "files " + *v.checked.files + " reported with module_content_root " + *v.content_root;
    v.checked.files = "different";
  }
  return v;
}

// The rebuilds row of a report; returns its id.
Result<std::int64_t> insert_rebuild(Db& db, const Report& r, std::int64_t build_input, const VerdictCheck& checked,
                                    std::int64_t now) {
  const std::optional<std::string> downgraded =
      checked.reason.empty() ? std::nullopt : std::optional<std::string>(checked.reason);
  KMR_ASSIGN_OR_RETURN(auto ins, db.prepare(
      "INSERT INTO rebuilds(job_id, build_input_id, worker_id, lease_token, finished_at, status, module_root, files, "
      "reason, shipped_root, rebuilt_root, differing, environment, log_sha256, diff_json_sha256, diff_html_sha256, "
      "duration_ms, details, downgraded) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  ins.bind(1, r.job_id).bind(2, build_input).bind(3, r.worker_id).bind(4, r.lease_token).bind(5, now).bind(6, r.status)
      .bind(7, checked.module_root).bind(8, checked.files).bind(9, r.reason).bind(10, r.shipped_root)
      .bind(11, r.rebuilt_root).bind(12, r.differing_json).bind(13, r.environment_json).bind(14, r.log_sha256)
      .bind(15, r.diff_json_sha256).bind(16, r.diff_html_sha256).bind(17, r.duration_ms).bind(18, r.details_json)
      .bind(19, downgraded);
  KMR_TRY(ins.run());
  return db.last_insert_id();
}

// Each artifact's rebuilt hashes, and the shipped file's sha512 where the worker reported
// one for the exact bytes whose sha256 the artifact has.
Result<void> record_rebuilt_hashes(Db& db, const Report& r, std::int64_t rebuild_id,
                                   const std::vector<SetArtifact>& set) {
  KMR_ASSIGN_OR_RETURN(auto ra, db.prepare(
      "INSERT INTO rebuild_artifacts(rebuild_id, artifact_id, rebuilt_sha256, rebuilt_sha512) VALUES (?, ?, ?, ?)"));
  KMR_ASSIGN_OR_RETURN(auto s512, db.prepare("UPDATE artifacts SET sha512 = ? WHERE id = ? AND sha256 = ?"));
  for (const SetArtifact& x : set) {
    ra.reset();
    ra.bind(1, rebuild_id).bind(2, x.id).bind(3, x.rebuilt).bind(4, x.rebuilt_sha512);
    KMR_TRY(ra.run());
    for (const auto& [sha256, sha512] : r.shipped_sha512) {
      if (sha256 != x.sha256) continue;
      s512.reset();
      s512.bind(1, sha512).bind(2, x.id).bind(3, x.sha256);
      KMR_TRY(s512.run());
    }
  }
  return ok();
}

// Distinct enabled workers with a reproducible result in this round (this one included).
Result<std::int64_t> count_confirmations(Db& db, std::int64_t build_input, std::int64_t round_after) {
  KMR_ASSIGN_OR_RETURN(auto c, db.prepare(
      std::string("SELECT COUNT(DISTINCT r.worker_id) FROM rebuilds r JOIN workers w ON w.id = r.worker_id "
                  "WHERE r.build_input_id = ? AND r.id > ? AND w.disabled = 0 AND ") + kReproducibleRebuild));
  c.bind(1, build_input).bind(2, round_after);
  KMR_ASSIGN_OR_RETURN(bool counted, c.step());
  return counted ? c.i64(0) : 0;
}

// Not accepted yet: no verdict, no attestation; the job is leased again (to a worker that
// has not confirmed).
Result<void> queue_for_confirmation(Db& db, std::int64_t job_id, std::int64_t now) {
  KMR_ASSIGN_OR_RETURN(auto again, db.prepare(
      "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_token = NULL, lease_expiry = NULL, next_try = 0, "
      "priority = 0, updated_at = ? WHERE id = ?"));
  again.bind(1, now).bind(2, job_id);
  return again.run();
}

// Each artifact's verdict: the set's tier, narrowed per artifact by its own hashes.
Result<void> store_verdicts(Db& db, const Report& r, const VerdictCheck& checked, std::int64_t rebuild_id,
                            const std::vector<SetArtifact>& set, std::int64_t now) {
  KMR_ASSIGN_OR_RETURN(auto v, db.prepare(
      "INSERT INTO verdicts(artifact_id, rebuild_id, status, module_root, files, updated_at) VALUES (?1,?2,?3,?4,?5,?6) "
      "ON CONFLICT(artifact_id) DO UPDATE SET rebuild_id = ?2, status = ?3, module_root = ?4, files = ?5, updated_at = ?6"));
  const json differing = json::parse(r.differing_json.empty() ? "[]" : r.differing_json, nullptr, false);
  for (const SetArtifact& x : set) {
    v.reset();
    v.bind(1, x.id).bind(2, rebuild_id).bind(3, r.status).bind(4, checked.module_root)
        .bind(5, artifact_files_tier({r.status, checked.files, x.expected, x.rebuilt, x.filename, set.size(), differing}))
        .bind(6, now);
    KMR_TRY(v.run());
  }
  return ok();
}

// Ends the lease: the job is done, or queued again after a backoff while its attempts
// last. Returns the job's new state.
Result<std::string> finish_job(Db& db, const Report& r, LeasedJob job, const ReportOutcome& out, std::int64_t now,
                               const QueuePolicy& policy) {
  std::int64_t attempts = 0, budget = 0;
  if (r.status != "verified") {  // a build failure
    attempts = ++job.build_attempts;
    budget = policy.max_build_attempts;
  } else if (!out.reproducible) {
    attempts = ++job.repro_attempts;
    budget = policy.max_repro_attempts;
  }
  bool retry = !out.reproducible && attempts < budget;
  std::int64_t backoff = policy.retry_backoff_seconds << std::min<std::int64_t>(attempts > 0 ? attempts - 1 : 0, 20);
  std::string state = retry ? "queued" : "done";
  // A result that is not reproducible starts a new round: earlier confirmations no longer count.
  KMR_ASSIGN_OR_RETURN(auto upd, db.prepare(
      "UPDATE jobs SET state = ?, lease_owner = NULL, lease_token = NULL, lease_expiry = NULL, build_attempts = ?, "
      "repro_attempts = ?, next_try = ?, priority = 2, updated_at = ?, round_after = ? WHERE id = ?"));
  upd.bind(1, state).bind(2, job.build_attempts).bind(3, job.repro_attempts).bind(4, retry ? now + backoff : 0)
      .bind(5, now).bind(6, out.reproducible ? job.round_after : out.rebuild_id).bind(7, r.job_id);
  KMR_TRY(upd.run());
  return state;
}

}  // namespace

Result<ReportOutcome> Store::report(const Report& r, std::int64_t now, const QueuePolicy& policy) {
  std::lock_guard lock(write_mu_);
  Txn txn(*writer_);
  KMR_TRY(txn.begin());
  KMR_ASSIGN_OR_RETURN(const std::optional<LeasedJob> job, leased_job(*writer_, r, now));
  if (!job) return lease_error_locked(r.job_id, r.worker_id, r.lease_token);
  KMR_ASSIGN_OR_RETURN(const std::vector<SetArtifact> set, reported_set(*writer_, job->build_input, r));
  DocChange change;  // every artifact of the set: a new history entry, job state, verdict
  for (const SetArtifact& x : set) change.artifacts.push_back(x.sha256);
  const StoredVerdict verdict = stored_verdict(r, set);
  const VerdictCheck& checked = verdict.checked;
  ReportOutcome out;
  out.downgraded = checked.reason;
  KMR_ASSIGN_OR_RETURN(out.rebuild_id, insert_rebuild(*writer_, r, job->build_input, checked, now));
  KMR_TRY(record_rebuilt_hashes(*writer_, r, out.rebuild_id, set));
  for (const SetArtifact& x : set) out.artifact_ids.push_back(x.id);
  out.reproducible = is_reproducible(r.status, checked.module_root, checked.files, verdict.content_root);
  if (out.reproducible) {
    KMR_ASSIGN_OR_RETURN(out.confirmed_by, count_confirmations(*writer_, job->build_input, job->round_after));
    out.awaiting_confirmation = out.confirmed_by < policy.confirmations;
  }
  if (out.awaiting_confirmation) {
    out.job_state = "queued";
    KMR_TRY(queue_for_confirmation(*writer_, r.job_id, now));
  } else {
    KMR_TRY(store_verdicts(*writer_, r, checked, out.rebuild_id, set, now));
    KMR_ASSIGN_OR_RETURN(out.job_state, finish_job(*writer_, r, *job, out, now, policy));
  }
  KMR_TRY(txn.commit());
  bump();
  changed(change);
  return out;
}

Result<std::int64_t> Store::requeue(std::optional<std::int64_t> job_id, std::optional<std::string> sha256,
                                    bool all_failed, std::int64_t now) {
  std::lock_guard lock(write_mu_);
  std::string where;
  if (job_id) where = "id = ?2";
  else if (sha256) where = "build_input_id = (SELECT build_input_id FROM artifacts WHERE sha256 = ?2)";
  else if (all_failed)
    where = "build_input_id IN (SELECT a.build_input_id FROM artifacts a JOIN verdicts v ON v.artifact_id = a.id "
            "WHERE v.status != 'verified' OR v.files = 'different' OR v.module_root IN ('mismatch','invalid'))";
  else return malformed("nothing selected");
  KMR_ASSIGN_OR_RETURN(auto s, writer_->prepare(
      "UPDATE jobs SET state = 'queued', priority = 0, next_try = 0, build_attempts = 0, repro_attempts = 0, "
      "round_after = COALESCE((SELECT MAX(r.id) FROM rebuilds r WHERE r.build_input_id = jobs.build_input_id), 0), "
      "updated_at = ?1 WHERE state = 'done' AND " + where + " RETURNING build_input_id"));
  s.bind(1, now);
  if (job_id) s.bind(2, *job_id);
  if (sha256) s.bind(2, *sha256);
  std::vector<std::int64_t> inputs;
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    inputs.push_back(s.i64(0));
  }
  std::int64_t n = static_cast<std::int64_t>(inputs.size());
  bump();
  auto arts = artifacts_of_inputs_locked(inputs);
  changed(arts ? DocChange{.artifacts = std::move(*arts)} : DocChange{.everything = true});
  return n;
}

Result<void> Store::add_attestation_for_sha(const std::string& envelope_sha256, const std::string& artifact_sha256,
                                    std::int64_t rebuild_id, std::optional<std::int64_t> log_index, std::int64_t now) {
  std::lock_guard lock(write_mu_);
  KMR_ASSIGN_OR_RETURN(auto s, writer_->prepare(
      "INSERT INTO attestations(sha256, artifact_id, rebuild_id, log_index, created_at) "
      "SELECT ?1, id, ?3, ?4, ?5 FROM artifacts WHERE sha256 = ?2 "
      "ON CONFLICT DO NOTHING"));
  s.bind(1, envelope_sha256).bind(2, artifact_sha256).bind(3, rebuild_id).bind(4, log_index).bind(5, now);
  KMR_TRY(s.run());
  bump();
  changed({.artifacts = {artifact_sha256}});
  return ok();
}

Result<void> Store::snapshot_stats(std::int64_t now) {
  std::lock_guard lock(write_mu_);
  KMR_ASSIGN_OR_RETURN(auto s, writer_->prepare(
      "INSERT OR REPLACE INTO stats_history(ts, distro, total, reproducible, not_reproducible, failed) "
      "SELECT ?1, r.distro, COUNT(a.id), "
      "SUM(v.status = 'verified' AND v.files IN ('identical','content-identical','identical-modulo-signatures') "
      "    AND (v.module_root IS NULL OR v.module_root IN ('match','absent'))), "
      "SUM(v.status = 'verified' AND NOT (v.files IN ('identical','content-identical','identical-modulo-signatures') "
      "    AND (v.module_root IS NULL OR v.module_root IN ('match','absent')))), "
      "SUM(v.status IS NOT NULL AND v.status != 'verified') "
      "FROM artifacts a JOIN packages p ON p.id = a.package_id JOIN repositories r ON r.id = p.repository_id "
      "LEFT JOIN verdicts v ON v.artifact_id = a.id GROUP BY r.distro"));
  s.bind(1, now);
  return s.run();
}

// ---------------------------------------------------------------- reads

Result<LeaseState> Store::lease_state(std::int64_t job_id, std::int64_t worker_id, const std::string& lease_token,
                                      std::int64_t now) {
  KMR_ASSIGN_OR_RETURN(auto s, reader().prepare(
      "SELECT lease_expiry FROM jobs WHERE id = ? AND state = 'running' AND lease_owner = ? AND lease_token = ?"));
  s.bind(1, job_id).bind(2, worker_id).bind(3, lease_token);
  KMR_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return LeaseState::kNotHeld;
  return s.opt_i64(0).value_or(0) >= now ? LeaseState::kHeld : LeaseState::kExpired;
}

Result<std::optional<std::int64_t>> Store::max_log_index() {
  KMR_ASSIGN_OR_RETURN(auto s, reader().prepare("SELECT MAX(log_index) FROM attestations"));
  KMR_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<std::int64_t>();
  return s.opt_i64(0);
}

Result<bool> Store::lease_held(std::int64_t job_id, std::int64_t worker_id, const std::string& lease_token) {
  KMR_ASSIGN_OR_RETURN(auto s, reader().prepare(
      "SELECT 1 FROM jobs WHERE id = ? AND state = 'running' AND lease_owner = ? AND lease_token = ?"));
  s.bind(1, job_id).bind(2, worker_id).bind(3, lease_token);
  return s.step();
}

Result<std::optional<Worker>> Store::worker_by_key(const std::string& public_key_hex) {
  KMR_ASSIGN_OR_RETURN(auto s, reader().prepare(
      "SELECT id, name, public_key, resource_classes, disabled FROM workers WHERE public_key = ?"));
  s.bind(1, public_key_hex);
  KMR_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<Worker>();
  Worker w;
  w.id = s.i64(0);
  w.name = s.text(1);
  w.public_key = s.text(2);
  auto rc = json::parse(s.text(3), nullptr, false);
  if (rc.is_array())
    for (auto& c : rc)
      if (c.is_string()) w.resource_classes.push_back(c.get<std::string>());
  w.disabled = s.i64(4) != 0;
  return std::optional<Worker>(std::move(w));
}

namespace {
json verdict_json(const std::optional<std::string>& status, const std::optional<std::string>& module_root,
                  const std::optional<std::string>& files) {
  if (!status) return nullptr;
  return {{"status", *status}, {"module_root", opt(module_root)}, {"files", opt(files)},
          {"reproducible", is_reproducible(*status, module_root, files)}};
}

// The artifact's current build, from its row in the history query below: its
// roots, differences, environment and the details the worker reported.
void add_current_build(Stmt& h, const std::string& base, json& out) {
  if (h.opt_text(6)) out["log"] = base + "/log";
  if (h.opt_text(7) || h.opt_text(14)) out["diff"] = base + "/diff";
  out["verdicts"]["shipped_root"] = opt(h.opt_text(9));
  out["verdicts"]["rebuilt_root"] = opt(h.opt_text(10));
  out["verdicts"]["differing"] = parse_or(h.opt_text(11), json::array());
  out["verdicts"]["reason"] = opt(h.opt_text(13));
  out["verdicts"]["downgraded"] = opt(h.opt_text(17));
  out["environment"] = parse_or(h.opt_text(12), json::object());
  out["rebuilt_sha256"] = opt(h.opt_text(8));
  out["reason"] = opt(h.opt_text(13));
  json details = parse_or(h.opt_text(15), json::object());
  if (!details.is_object()) details = json::object();
  auto pick = [&](const char* k) { return details.contains(k) ? details[k] : json(nullptr); };
  out["merkle"] = {{"shipped", {{"root", opt(h.opt_text(9))}, {"levels", pick("shipped_levels")}}},
                   {"rebuilt", {{"root", opt(h.opt_text(10))}, {"levels", pick("rebuilt_levels")}}}};
  if (details.contains("merkle") && details["merkle"].is_object()) out["merkle"] = details["merkle"];
  out["modules"] = details.contains("modules") ? details["modules"] : json(nullptr);
  out["verdicts"]["module_content_root"] = pick("module_content_root");
  out["content_root"] = {{"verdict", pick("module_content_root")}, {"shipped", pick("shipped_content_root")},
                         {"rebuilt", pick("rebuilt_content_root")}, {"levels", pick("content_root_levels")},
                         {"note", pick("content_root_note")}};
  out["signatures"] = pick("signatures");
  out["masked"] = pick("masked");
  out["mask_notes"] = pick("mask_notes");
  out["kernel_rebuild"] = pick("kernel_rebuild");
  out["duration_ms"] = h.opt_i64(16) ? json(*h.opt_i64(16)) : json(nullptr);
}

// History: every accepted attempt for this artifact's build input, newest first.
Result<void> add_history(Db& db, std::int64_t artifact_id, std::int64_t build_input_id,
                         std::optional<std::int64_t> rebuild_id, json& out) {
  KMR_ASSIGN_OR_RETURN(auto h, db.prepare(
      "SELECT rb.id, rb.finished_at, rb.status, rb.module_root, rb.files, w.name, rb.log_sha256, rb.diff_json_sha256, "
      "ra.rebuilt_sha256, rb.shipped_root, rb.rebuilt_root, rb.differing, rb.environment, rb.reason, rb.diff_html_sha256, "
      "rb.details, rb.duration_ms, rb.downgraded "
      "FROM rebuilds rb JOIN workers w ON w.id = rb.worker_id "
      "LEFT JOIN rebuild_artifacts ra ON ra.rebuild_id = rb.id AND ra.artifact_id = ?2 "
      "WHERE rb.build_input_id = ?1 ORDER BY rb.id DESC LIMIT 100"));
  h.bind(1, build_input_id).bind(2, artifact_id);
  json history = json::array();
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool hr, h.step());
    if (!hr) break;
    std::int64_t id = h.i64(0);
    std::string base = "/api/v1/builds/" + std::to_string(id);
    history.push_back({{"build", id},
                       {"finished_at", h.i64(1)},
                       {"status", h.text(2)},
                       {"module_root", opt(h.opt_text(3))},
                       {"files", opt(h.opt_text(4))},
                       {"worker", h.text(5)},
                       {"rebuilt_sha256", opt(h.opt_text(8))},
                       {"downgraded", opt(h.opt_text(17))},
                       {"url", base}});
    if (rebuild_id && id == *rebuild_id) add_current_build(h, base, out);
  }
  out["history"] = std::move(history);
  return ok();
}

Result<void> add_attestations(Db& db, std::int64_t artifact_id, json& out) {
  KMR_ASSIGN_OR_RETURN(auto at, db.prepare(
      "SELECT sha256, rebuild_id, log_index FROM attestations WHERE artifact_id = ? ORDER BY created_at DESC, sha256"));
  at.bind(1, artifact_id);
  json atts = json::array(), att_details = json::array();
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool ar, at.step());
    if (!ar) break;
    std::string url = "/api/v1/attestations/" + at.text(0);
    atts.push_back(url);
    att_details.push_back({{"url", url}, {"sha256", at.text(0)}, {"build", at.i64(1)},
                           {"log_index", at.opt_i64(2) ? json(*at.opt_i64(2)) : json(nullptr)}});
  }
  out["attestations"] = std::move(atts);
  out["attestation_details"] = std::move(att_details);
  return ok();
}
}  // namespace

Result<std::optional<json>> Store::artifact_by_sha256(const std::string& sha256) {
  Db& db = reader();
  KMR_ASSIGN_OR_RETURN(auto s, db.prepare(
      "SELECT a.id, a.sha256, r.distro, r.name, p.name, p.version, p.arch, a.filename, a.url, a.build_input_id, "
      "v.status, v.module_root, v.files, v.rebuild_id, j.state, j.id, a.size, r.insecure_unsigned, a.content_sha256 "
      "FROM artifacts a JOIN packages p ON p.id = a.package_id JOIN repositories r ON r.id = p.repository_id "
      "LEFT JOIN verdicts v ON v.artifact_id = a.id LEFT JOIN jobs j ON j.build_input_id = a.build_input_id "
      "WHERE a.sha256 = ?"));
  s.bind(1, sha256);
  KMR_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<json>();
  std::int64_t aid = s.i64(0), bi = s.i64(9);
  json out = {{"sha256", s.text(1)},
              {"distro", s.text(2)},
              {"repository", s.text(3)},
              {"package", {{"name", s.text(4)}, {"version", s.text(5)}, {"arch", s.text(6)}}},
              {"filename", s.text(7)},
              {"url", s.text(8)},
              {"size", s.opt_i64(16) ? json(*s.opt_i64(16)) : json(nullptr)},
              {"insecure_unsigned", s.i64(17) != 0},
              {"content_sha256", opt(s.opt_text(18))},
              {"verdicts", verdict_json(s.opt_text(10), s.opt_text(11), s.opt_text(12))},
              {"job", {{"id", s.i64(15)}, {"state", s.opt_text(14) ? json(*s.opt_text(14)) : json(nullptr)}}}};
  auto rebuild_id = s.opt_i64(13);
  out["build"] = rebuild_id ? json(*rebuild_id) : json(nullptr);
  out["log"] = nullptr;
  out["diff"] = nullptr;
  KMR_TRY(add_history(db, aid, bi, rebuild_id, out));
  KMR_TRY(add_attestations(db, aid, out));
  return std::optional<json>(std::move(out));
}

Result<json> Store::list_artifacts(const ListQuery& q) {
  std::string sql =
      "SELECT a.id, a.sha256, r.distro, p.name, p.version, p.arch, v.status, v.module_root, v.files, r.insecure_unsigned "
      "FROM artifacts a JOIN packages p ON p.id = a.package_id JOIN repositories r ON r.id = p.repository_id "
      "LEFT JOIN verdicts v ON v.artifact_id = a.id WHERE a.id > ?1";
  if (q.distro) sql += " AND r.distro = ?2";
  if (q.name) sql += " AND p.name = ?3";
  if (q.verdict) {
    if (*q.verdict == "pending") sql += " AND v.artifact_id IS NULL";
    else if (*q.verdict == "reproducible")
      sql += " AND v.status = 'verified' AND v.files IN ('identical','content-identical','identical-modulo-signatures') "
             "AND (v.module_root IS NULL OR v.module_root IN ('match','absent'))";
    else if (*q.verdict == "not-reproducible")
      sql += " AND v.status = 'verified' AND NOT (v.files IN ('identical','content-identical','identical-modulo-signatures') "
             "AND (v.module_root IS NULL OR v.module_root IN ('match','absent')))";
    else sql += " AND (v.files = ?4 OR v.module_root = ?4 OR v.status = ?4)";
  }
  if (q.q) sql += " AND (p.name LIKE ?5 ESCAPE '\\' OR p.version LIKE ?5 ESCAPE '\\' OR a.sha256 LIKE ?5 ESCAPE '\\')";
  sql += " ORDER BY a.id LIMIT ?6";
  KMR_ASSIGN_OR_RETURN(auto s, reader().prepare(sql));
  s.bind(1, q.after_id);
  if (q.distro) s.bind(2, *q.distro);
  if (q.name) s.bind(3, *q.name);
  if (q.verdict) s.bind(4, *q.verdict);
  if (q.q) {
    std::string pat;
    for (char c : *q.q) {
      if (c == '%' || c == '_' || c == '\\') pat += '\\';
      pat += c;
    }
    s.bind(5, pat + "%");
  }
  s.bind(6, q.limit + 1);
  json items = json::array();
  std::int64_t last = 0;
  bool more = false;
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    if (static_cast<std::int64_t>(items.size()) == q.limit) {
      more = true;
      break;
    }
    last = s.i64(0);
    items.push_back({{"sha256", s.text(1)},
                     {"distro", s.text(2)},
                     {"package", {{"name", s.text(3)}, {"version", s.text(4)}, {"arch", s.text(5)}}},
                     {"verdicts", verdict_json(s.opt_text(6), s.opt_text(7), s.opt_text(8))},
                     {"insecure_unsigned", s.i64(9) != 0},
                     {"url", "/api/v1/artifacts/sha256/" + s.text(1)}});
  }
  return json{{"items", std::move(items)}, {"next", more ? json(std::to_string(last)) : json(nullptr)}};
}

Result<std::optional<json>> Store::build(std::int64_t id) {
  Db& db = reader();
  KMR_ASSIGN_OR_RETURN(auto s, db.prepare(
      "SELECT rb.id, rb.job_id, rb.finished_at, rb.status, rb.module_root, rb.files, rb.reason, rb.shipped_root, "
      "rb.rebuilt_root, rb.differing, rb.environment, rb.log_sha256, rb.diff_json_sha256, rb.diff_html_sha256, "
      "rb.duration_ms, w.name, b.distro, b.set_key, rb.downgraded, rb.details FROM rebuilds rb "
      "JOIN workers w ON w.id = rb.worker_id JOIN build_inputs b ON b.id = rb.build_input_id WHERE rb.id = ?"));
  s.bind(1, id);
  KMR_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<json>();
  std::string base = "/api/v1/builds/" + std::to_string(id);
  json out = {{"id", s.i64(0)},
              {"job", s.i64(1)},
              {"finished_at", s.i64(2)},
              {"status", s.text(3)},
              {"module_root", opt(s.opt_text(4))},
              {"files", opt(s.opt_text(5))},
              {"reproducible", is_reproducible(s.text(3), s.opt_text(4), s.opt_text(5))},
              {"reason", opt(s.opt_text(6))},
              {"shipped_root", opt(s.opt_text(7))},
              {"rebuilt_root", opt(s.opt_text(8))},
              {"differing", parse_or(s.opt_text(9), json::array())},
              {"environment", parse_or(s.opt_text(10), json::object())},
              {"log", s.opt_text(11) ? json(base + "/log") : json(nullptr)},
              {"diff", s.opt_text(12) ? json(base + "/diff") : json(nullptr)},
              {"diff_html", s.opt_text(13) ? json(base + "/diff.html") : json(nullptr)},
              {"duration_ms", s.opt_i64(14) ? json(*s.opt_i64(14)) : json(nullptr)},
              {"worker", s.text(15)},
              {"distro", s.text(16)},
              {"set", s.text(17)},
              {"downgraded", opt(s.opt_text(18))}};
  // The module content root and signature check the worker reported (attested with the verdicts).
  const json details = parse_or(s.opt_text(19), json::object());
  for (const char* k : {"module_content_root", "shipped_content_root", "rebuilt_content_root", "content_root_levels",
                        "content_root_note", "signatures"})
    out[k] = details.is_object() && details.contains(k) ? details[k] : json(nullptr);
  KMR_ASSIGN_OR_RETURN(auto a, db.prepare(
      "SELECT a.sha256, a.filename, p.name, p.version, p.arch, ra.rebuilt_sha256, COALESCE(a.content_sha256, a.sha256) "
      "FROM rebuild_artifacts ra "
      "JOIN artifacts a ON a.id = ra.artifact_id JOIN packages p ON p.id = a.package_id WHERE ra.rebuild_id = ?"));
  a.bind(1, id);
  json arts = json::array();
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool r, a.step());
    if (!r) break;
    arts.push_back({{"sha256", a.text(0)},
                    {"filename", a.text(1)},
                    {"package", {{"name", a.text(2)}, {"version", a.text(3)}, {"arch", a.text(4)}}},
                    {"rebuilt_sha256", opt(a.opt_text(5))},
                    {"expected_sha256", a.text(6)},
                    {"url", "/api/v1/artifacts/sha256/" + a.text(0)}});
  }
  out["artifacts"] = std::move(arts);
  return std::optional<json>(std::move(out));
}

Result<std::optional<std::string>> Store::build_blob(std::int64_t id, const std::string& which) {
  std::string col = which == "log" ? "log_sha256" : which == "diff_json" ? "diff_json_sha256" : "diff_html_sha256";
  KMR_ASSIGN_OR_RETURN(auto s, reader().prepare("SELECT " + col + " FROM rebuilds WHERE id = ?"));
  s.bind(1, id);
  KMR_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<std::string>();
  return s.opt_text(0);
}

Result<json> Store::queue(std::int64_t now) {
  KMR_ASSIGN_OR_RETURN(auto s, reader().prepare(
      "SELECT j.id, j.state, j.priority, j.resource_class, j.build_attempts, j.repro_attempts, j.next_try, "
      "j.lease_expiry, w.name, b.distro, b.set_key, "
      "(SELECT p.name || ' ' || p.version FROM artifacts a JOIN packages p ON p.id = a.package_id "
      " WHERE a.build_input_id = b.id ORDER BY a.id LIMIT 1) "
      "FROM jobs j JOIN build_inputs b ON b.id = j.build_input_id LEFT JOIN workers w ON w.id = j.lease_owner "
      "WHERE j.state != 'done' ORDER BY j.state DESC, j.priority, j.next_try, j.id LIMIT 1000"));
  json items = json::array();
  std::int64_t queued = 0, running = 0;
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    std::string state = s.text(1);
    (state == "running" ? running : queued)++;
    items.push_back({{"id", s.i64(0)},
                     {"state", state},
                     {"priority", s.i64(2)},
                     {"resource_class", s.text(3)},
                     {"build_attempts", s.i64(4)},
                     {"repro_attempts", s.i64(5)},
                     {"next_try", s.i64(6)},
                     {"lease_expiry", s.opt_i64(7) ? json(*s.opt_i64(7)) : json(nullptr)},
                     {"worker", opt(s.opt_text(8))},
                     {"distro", s.text(9)},
                     {"set", s.text(10)},
                     {"package", opt(s.opt_text(11))}});
  }
  return json{{"now", now}, {"queued", queued}, {"running", running}, {"items", std::move(items)}};
}

Result<json> Store::workers(bool admin, std::int64_t now, std::int64_t online_window) {
  KMR_ASSIGN_OR_RETURN(auto s, reader().prepare(
      "SELECT w.id, w.name, w.resource_classes, w.last_seen, w.address, w.public_key, w.disabled, "
      "(SELECT j.id FROM jobs j WHERE j.lease_owner = w.id AND j.state = 'running' LIMIT 1) "
      "FROM workers w ORDER BY w.name"));
  json items = json::array();
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    auto last = s.opt_i64(3);
    json w = {{"name", s.text(1)},
              {"resource_classes", parse_or(s.opt_text(2), json::array())},
              {"last_seen", last ? json(*last) : json(nullptr)},
              {"online", last && now - *last <= online_window},
              {"job", s.opt_i64(7) ? json(*s.opt_i64(7)) : json(nullptr)},
              {"disabled", s.i64(6) != 0}};
    if (admin) {
      w["address"] = opt(s.opt_text(4));
      w["public_key"] = s.text(5);
      w["id"] = s.i64(0);
    }
    items.push_back(std::move(w));
  }
  return json{{"items", std::move(items)}};
}

Result<json> Store::stats(std::int64_t now) {
  Db& db = reader();
  KMR_ASSIGN_OR_RETURN(auto s, db.prepare(
      "SELECT r.distro, COALESCE(v.files, '-'), COALESCE(v.module_root, '-'), COALESCE(v.status, 'pending'), COUNT(*) "
      "FROM artifacts a JOIN packages p ON p.id = a.package_id JOIN repositories r ON r.id = p.repository_id "
      "LEFT JOIN verdicts v ON v.artifact_id = a.id GROUP BY 1, 2, 3, 4"));
  std::map<std::string, json> distros;
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    std::string d = s.text(0), files = s.text(1), root = s.text(2), status = s.text(3);
    std::int64_t n = s.i64(4);
    json& e = distros[d];
    if (e.is_null())
      e = {{"distro", d}, {"total", 0}, {"reproducible", 0}, {"not_reproducible", 0}, {"failed", 0}, {"pending", 0},
           {"files", json::object()}, {"module_root", json::object()}, {"status", json::object()}};
    e["total"] = e["total"].get<std::int64_t>() + n;
    std::optional<std::string> of = files == "-" ? std::nullopt : std::optional<std::string>(files);
    std::optional<std::string> orr = root == "-" ? std::nullopt : std::optional<std::string>(root);
    const char* bucket = status == "pending" ? "pending"
                         : status != "verified" ? "failed"
                         : is_reproducible(status, orr, of) ? "reproducible" : "not_reproducible";
    e[bucket] = e[bucket].get<std::int64_t>() + n;
    // files: the tier when verified, else the status (build-failed, error, ...) or "pending".
    std::string fkey = status == "verified" ? (of ? files : std::string("error")) : status;
    std::string rkey = status == "pending" ? std::string("pending") : (orr ? root : std::string("none"));
    e["files"][fkey] = e["files"].value(fkey, 0) + n;
    e["module_root"][rkey] = e["module_root"].value(rkey, 0) + n;
    e["status"][status] = e["status"].value(status, 0) + n;
  }
  json out = {{"now", now}, {"distros", json::array()}};
  for (auto& [k, v] : distros) {
    std::int64_t total = v["total"].get<std::int64_t>();
    v["percent_reproducible"] =
        total ? 100.0 * static_cast<double>(v["reproducible"].get<std::int64_t>()) / static_cast<double>(total) : 0.0;
    out["distros"].push_back(v);
  }
  KMR_ASSIGN_OR_RETURN(auto counts, metrics_counts());
  std::int64_t queued = counts["jobs"].value("queued", 0), running = counts["jobs"].value("running", 0);
  out["queue"] = {{"pending", queued}, {"queued", queued}, {"running", running}, {"done", counts["jobs"].value("done", 0)}};
  out["workers"] = {{"total", counts["workers"]["registered"]}, {"online", counts["workers"]["online"]}};
  KMR_ASSIGN_OR_RETURN(auto h, db.prepare(
      "SELECT ts, SUM(total), SUM(reproducible), SUM(not_reproducible), SUM(failed) FROM stats_history "
      "GROUP BY ts ORDER BY ts DESC LIMIT 500"));
  json hist = json::array();
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool row, h.step());
    if (!row) break;
    std::time_t t = static_cast<std::time_t>(h.i64(0));
    char buf[32];
    std::tm tm{};
    gmtime_r(&t, &tm);
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    hist.push_back({{"time", buf}, {"ts", h.i64(0)}, {"total", h.i64(1)}, {"verified", h.i64(2) + h.i64(3)},
                    {"reproducible", h.i64(2)}, {"not_reproducible", h.i64(3)}, {"failed", h.i64(4)}});
  }
  std::reverse(hist.begin(), hist.end());
  out["history"] = std::move(hist);
  return out;
}

Result<bool> Store::attestation_exists(const std::string& sha256) {
  KMR_ASSIGN_OR_RETURN(auto s, reader().prepare("SELECT 1 FROM attestations WHERE sha256 = ?"));
  s.bind(1, sha256);
  return s.step();
}

Result<bool> Store::rebuild_is_current(std::int64_t rebuild_id) {
  KMR_ASSIGN_OR_RETURN(auto s, reader().prepare("SELECT 1 FROM verdicts WHERE rebuild_id = ? LIMIT 1"));
  s.bind(1, rebuild_id);
  return s.step();
}

Result<bool> Store::attested(std::int64_t rebuild_id, const std::string& artifact_sha256) {
  KMR_ASSIGN_OR_RETURN(auto s, reader().prepare(
      "SELECT 1 FROM attestations t JOIN artifacts a ON a.id = t.artifact_id WHERE t.rebuild_id = ? AND a.sha256 = ?"));
  s.bind(1, rebuild_id).bind(2, artifact_sha256);
  return s.step();
}

Result<std::vector<std::int64_t>> Store::unattested_rebuilds() {
  KMR_ASSIGN_OR_RETURN(auto s, reader().prepare(
      "SELECT DISTINCT v.rebuild_id FROM verdicts v WHERE v.module_root IS NOT NULL AND NOT EXISTS "
      "(SELECT 1 FROM attestations t WHERE t.rebuild_id = v.rebuild_id AND t.artifact_id = v.artifact_id) "
      "ORDER BY v.rebuild_id"));
  std::vector<std::int64_t> out;
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back(s.i64(0));
  }
  return out;
}

Result<json> Store::metrics_counts() {
  Db& db = reader();
  KMR_ASSIGN_OR_RETURN(auto s, db.prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state"));
  json jobs = {{"queued", 0}, {"running", 0}, {"done", 0}};
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    jobs[s.text(0)] = s.i64(1);
  }
  KMR_ASSIGN_OR_RETURN(auto w, db.prepare("SELECT COUNT(*), SUM(last_seen >= strftime('%s','now') - 300) FROM workers"));
  KMR_ASSIGN_OR_RETURN(bool wr, w.step());
  (void)wr;
  return json{{"jobs", jobs}, {"workers", {{"registered", w.i64(0)}, {"online", w.opt_i64(1).value_or(0)}}}};
}

// ---------------------------------------------------------------- member index

Result<std::vector<IndexJob>> Store::artifacts_to_index(std::int64_t retry_before, std::int64_t limit) {
  KMR_ASSIGN_OR_RETURN(auto s, reader().prepare(
      "SELECT a.id, a.sha256, a.filename, a.url FROM artifacts a JOIN verdicts v ON v.artifact_id = a.id "
      "WHERE a.members_indexed_at IS NULL OR (a.members_error IS NOT NULL AND a.members_indexed_at < ?1) "
      "ORDER BY a.id LIMIT ?2"));
  s.bind(1, retry_before).bind(2, limit);
  std::vector<IndexJob> out;
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back({s.i64(0), s.text(1), s.text(2), s.text(3)});
  }
  return out;
}

Result<void> Store::store_members(std::int64_t artifact_id, const std::vector<MemberRow>& rows, bool truncated,
                                  const std::optional<std::string>& error, std::int64_t now) {
  std::lock_guard lock(write_mu_);
  Txn txn(*writer_);
  KMR_TRY(txn.begin());
  if (!error) {
    KMR_ASSIGN_OR_RETURN(auto del, writer_->prepare("DELETE FROM member_hashes WHERE artifact_id = ?"));
    del.bind(1, artifact_id);
    KMR_TRY(del.run());
    KMR_ASSIGN_OR_RETURN(auto ins, writer_->prepare(
        "INSERT INTO member_hashes(key, artifact_id, path, kind) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"));
    for (const MemberRow& r : rows) {
      ins.reset();
      ins.bind(1, r.key).bind(2, artifact_id).bind(3, r.path).bind(4, r.kind);
      KMR_TRY(ins.run());
    }
  }
  KMR_ASSIGN_OR_RETURN(auto up, writer_->prepare(
      "UPDATE artifacts SET members_indexed_at = ?, members_error = ?, members_truncated = ? WHERE id = ?"));
  up.bind(1, now).bind(2, error).bind(3, static_cast<std::int64_t>(truncated ? 1 : 0)).bind(4, artifact_id);
  KMR_TRY(up.run());
  KMR_TRY(txn.commit());
  bump();
  changed({.members = true});
  return ok();
}

Result<std::vector<MemberMatch>> Store::member_matches(const std::string& key, std::int64_t limit) {
  KMR_ASSIGN_OR_RETURN(auto s, reader().prepare(
      "SELECT a.sha256, m.path, m.kind, a.id FROM member_hashes m JOIN artifacts a ON a.id = m.artifact_id "
      "WHERE m.key = ?1 "
      "UNION SELECT a.sha256, '', 'nar', a.id FROM artifacts a WHERE a.content_sha256 = ?1 "
      "AND NOT EXISTS (SELECT 1 FROM member_hashes m WHERE m.artifact_id = a.id AND m.key = ?1) "
      "ORDER BY 4, 2, 3 LIMIT ?2"));
  s.bind(1, key).bind(2, limit);
  std::vector<MemberMatch> out;
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back({s.text(0), s.text(1), s.text(2)});
  }
  return out;
}

Result<std::optional<std::string>> Store::artifact_for_store_path(const std::string& hash_part) {
  KMR_ASSIGN_OR_RETURN(auto s, reader().prepare("SELECT sha256 FROM artifacts WHERE filename = ? ORDER BY id LIMIT 1"));
  s.bind(1, hash_part + ".narinfo");
  KMR_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(s.text(0));
}

}  // namespace kmr::server

#include "server/member_indexer.h"

#include <chrono>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "rebuilder/archive/narinfo.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "server/http_client.h"

namespace kmr::server {

namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kMaxPackage = 8ull << 30;
constexpr std::int64_t kRetrySeconds = 3600;

bool remote(const std::string& url) { return url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0; }

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string safe_name(const std::string& filename) {
  std::string out = filename;
  for (char& c : out)
    if (c == '/' || c == '\0') c = '_';
  return out == "." || out == ".." || out.empty() ? "artifact" : out;
}

}  // namespace

Result<MemberIndex> MemberIndexer::index_one(const IndexJob& job) {
  const std::string dir = work_dir_ + "/a" + std::to_string(job.artifact_id);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (ec) return io_error(dir + ": " + ec.message());
  struct Cleanup {
    std::string d;
    ~Cleanup() {
      std::error_code e;
      std::filesystem::remove_all(d, e);
    }
  } cleanup{dir};
  std::string path, nar_path;
  if (job.url.rfind("file://", 0) == 0) {
    KMR_ASSIGN_OR_RETURN(path, file_url_path(job.url));
    KMR_ASSIGN_OR_RETURN(Digest256 d, sha256_file(path));
    if (to_hex(d) != job.sha256) return Error(ErrorCode::kVerificationFailed, job.url + ": sha256 is not the repository's");
  } else if (remote(job.url)) {
    path = dir + "/" + safe_name(job.filename);
    KMR_ASSIGN_OR_RETURN(Digest256 d, fetch_url_to_file(job.url, path, 3600s, kMaxPackage));
    if (to_hex(d) != job.sha256) return Error(ErrorCode::kVerificationFailed, job.url + ": sha256 is not the repository's");
    if (job.filename.ends_with(".narinfo")) {
      // The NAR named by the (hash-checked) narinfo, fetched relative to it; checked while indexing.
      KMR_ASSIGN_OR_RETURN(std::string text, read_text_file(path, 1 << 20));
      KMR_ASSIGN_OR_RETURN(archive::NarInfo info, archive::parse_narinfo(text, job.filename, limits_.archive));
      if (info.url.empty() || info.url.front() == '/' || info.url.find("..") != std::string::npos)
        return malformed(job.filename + ": URL is not a relative path inside the cache");
      nar_path = dir + "/nar";
      KMR_TRY(fetch_url_to_file(resolve_relative(job.url, info.url), nar_path, 3600s, kMaxPackage));
    }
  } else {
    return unsupported("cannot fetch " + job.url);
  }
  return index_package(path, job.filename, dir, limits_, nar_path);
}

Result<std::int64_t> MemberIndexer::run_once(std::int64_t now, std::int64_t max) {
  KMR_ASSIGN_OR_RETURN(auto jobs, store_.artifacts_to_index(now - kRetrySeconds, max));
  std::int64_t n = 0;
  for (const IndexJob& job : jobs) {
    auto idx = index_one(job);
    std::vector<MemberRow> rows;
    std::optional<std::string> error;
    bool truncated = false;
    if (idx) {
      rows.reserve(idx->hashes.size());
      for (auto& h : idx->hashes) rows.push_back({std::move(h.key), std::move(h.path), std::move(h.kind)});
      truncated = idx->truncated;
      spdlog::info("members of {}: {} hashes{}", job.filename, rows.size(), truncated ? " (capped)" : "");
    } else {
      error = idx.error().to_string();
      spdlog::warn("members of {}: {}", job.filename, *error);
    }
    KMR_TRY(store_.store_members(job.artifact_id, rows, truncated, error, now));
    ++n;
  }
  return n;
}

void MemberIndexer::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { loop(); });
}

void MemberIndexer::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void MemberIndexer::kick() {
  {
    std::lock_guard lock(mu_);
    kicked_ = true;
  }
  cv_.notify_all();
}

void MemberIndexer::loop() {
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, 60s, [this] { return kicked_ || stop_; });
      if (stop_) return;
      kicked_ = false;
    }
    for (;;) {
      auto n = run_once(unix_now(), 1);
      if (!n) spdlog::warn("member index: {}", n.error().to_string());
      if (!n || *n == 0) break;
      std::lock_guard lock(mu_);
      if (stop_) return;
    }
  }
}

}  // namespace kmr::server

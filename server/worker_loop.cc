#include "server/worker_loop.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/distros/common/source_list.h"
#include "rebuilder/verdict/worker_report.h"
#include "server/auth.h"
#include "server/http_client.h"
#include "server/worker_sources.h"

namespace kmr::server {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Head and tail of a log, with an explicit marker where the middle was cut.
std::string cap_log(const std::string& s, std::uint64_t cap) {
  if (s.size() <= cap) return s;
  std::size_t half = cap / 2;
  return s.substr(0, half) + "\n[... " + std::to_string(s.size() - 2 * half) + " bytes truncated by kmr-worker ...]\n" +
         s.substr(s.size() - half);
}

Result<std::string> materialise(const json& art, const std::string& dir, const WorkerConfig& cfg) {
  std::string url = art.value("url", "");
  std::string want = art.value("sha256", "");
  std::string path;
  if (url.rfind("file://", 0) == 0) {
    KMR_ASSIGN_OR_RETURN(path, file_url_path(url));
  } else {
    std::string name = art.value("filename", "artifact");
    if (name.find('/') != std::string::npos || name == ".." || name == ".") return malformed("bad artifact filename");
    path = dir + "/" + name;
    KMR_TRY(fetch_url_to_file(url, path, std::chrono::seconds(cfg.rebuild_timeout_seconds), 4ull << 30));
    // A narinfo names its NAR relative to the cache root: fetch it next to it.
    if (name.size() > 8 && name.compare(name.size() - 8, 8, ".narinfo") == 0) {
      KMR_ASSIGN_OR_RETURN(std::string data, read_text_file(path, 1 << 20));
      for (std::size_t pos = 0; pos < data.size();) {
        auto nl = data.find('\n', pos);
        std::string line = data.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        pos = nl == std::string::npos ? data.size() : nl + 1;
        if (line.rfind("URL: ", 0) == 0) {
          std::string rel = line.substr(5);
          if (rel.find("..") != std::string::npos || rel.empty() || rel[0] == '/') return malformed("bad NAR URL in narinfo");
          std::filesystem::create_directories(std::filesystem::path(dir + "/" + rel).parent_path());
          KMR_TRY(fetch_url_to_file(resolve_relative(url, rel), dir + "/" + rel, 3600s, 8ull << 30));
        }
      }
    }
  }
  KMR_ASSIGN_OR_RETURN(Digest256 d, sha256_file(path));
  if (to_hex(d) != want) return Error(ErrorCode::kVerificationFailed, "sha256 of " + url + " is " + to_hex(d) + ", repository says " + want);
  return path;
}

// Hex SHA-512 of a file (rebuilderd's in-toto links carry sha256 and sha512).
Result<std::string> sha512_file(const std::string& path) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha512(), nullptr) != 1) return io_error("sha512: cannot initialise");
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) return io_error(path + ": " + std::strerror(errno));
  std::vector<unsigned char> buf(1 << 20);
  for (;;) {
    std::size_t n = std::fread(buf.data(), 1, buf.size(), f.get());
    if (n > 0 && EVP_DigestUpdate(ctx.get(), buf.data(), n) != 1) return io_error("sha512: update failed");
    if (n < buf.size()) break;
  }
  if (std::ferror(f.get())) return io_error(path + ": read error");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), md, &len) != 1) return io_error("sha512: final failed");
  return to_hex(Bytes(md, len));
}

// The engine's rebuilt file named `name` with this sha256 under the kept work dir (bounded walk).
std::string find_rebuilt_file(const std::string& dir, const std::string& name, const std::string& sha256,
                              const std::string& exclude) {
  std::error_code ec;
  int budget = 100000;
  for (auto it = std::filesystem::recursive_directory_iterator(dir + "/engine", ec);
       !ec && it != std::filesystem::recursive_directory_iterator() && --budget > 0; it.increment(ec)) {
    if (it->is_regular_file(ec) && it->path().filename() == name && it->path().string() != exclude) {
      auto d = sha256_file(it->path().string());
      if (d && to_hex(*d) == sha256) return it->path().string();
    }
  }
  return "";
}

// When the engine kept its work dir, find the rebuilt file of a differing package
// and run `kmr diff` on (shipped, rebuilt) for the report's diff JSON/HTML.
void add_diff(verdict::WorkerReport& report, const json& out, const std::vector<std::string>& shipped, const std::string& dir,
              const WorkerConfig& cfg) {
  if (cfg.rebuild_command.size() < 2 || cfg.rebuild_command[1] != "rebuild") return;
  if (!out.contains("rebuilt") || !out["rebuilt"].is_array()) return;
  for (const json& r : out["rebuilt"]) {
    if (!r.is_object() || !r.contains("name") || !r["name"].is_string() || !r.contains("sha256") ||
        !r["sha256"].is_string())
      continue;
    std::string name = std::filesystem::path(r["name"].get<std::string>()).filename().string();
    std::string ship;
    for (const auto& f : shipped)
      if (std::filesystem::path(f).filename() == name) ship = f;
    if (ship.empty()) continue;
    auto sd = sha256_file(ship);
    if (sd && to_hex(*sd) == r["sha256"]) continue;  // this package is identical
    std::string rebuilt = find_rebuilt_file(dir, name, r["sha256"].get<std::string>(), ship);
    if (rebuilt.empty()) continue;
    SubprocessOptions o;
    o.timeout = std::chrono::minutes(20);
    auto res = run_subprocess({cfg.rebuild_command[0], "diff", "--json", dir + "/diff.json", "--html", dir + "/diff-html",
                               ship, rebuilt}, o);
    if (!res || res->signaled || res->timed_out || res->exit_code > 1) {
      spdlog::warn("kmr diff failed: {}", res ? res->describe() + " " + res->err.substr(0, 500) : res.error().to_string());
      return;
    }
    auto dj = read_text_file(dir + "/diff.json", 32 << 20);
    if (dj) {
      json j = json::parse(*dj, nullptr, false);
      if (!j.is_discarded()) report.diff_json = j;
    }
    auto dh = read_text_file(dir + "/diff-html/index.html", 32 << 20);
    if (dh) report.diff_html = *dh;
    return;
  }
}

// sha512 of each rebuilt file: hashed where the engine left it; a file the engine did not keep
// whose sha256 equals a shipped file's has that file's bytes (and sha512).
void add_rebuilt_sha512(std::vector<verdict::RebuiltFileHash>& rebuilt,
                        const std::vector<verdict::ShippedFileHash>& shipped, const std::string& dir) {
  for (auto& r : rebuilt) {
    std::string path = find_rebuilt_file(dir, r.name, r.sha256, "");
    if (!path.empty()) {
      if (auto h = sha512_file(path)) r.sha512 = *h;
      continue;
    }
    for (const auto& s : shipped)
      if (s.sha256 == r.sha256) r.sha512 = s.sha512;
  }
}

}  // namespace

SignedCoordinator::SignedCoordinator(std::string base, attest::Ed25519Key key, attest::Ed25519Key server_key)
    : base_(std::move(base)), key_(std::move(key)), server_key_(std::move(server_key)) {
  while (!base_.empty() && base_.back() == '/') base_.pop_back();
}

std::string SignedCoordinator::public_hex() const { return to_hex(key_.raw_public()); }

Result<CoordinatorReply> SignedCoordinator::post(const std::string& path, const json& body,
                                                 std::chrono::milliseconds timeout) {
  std::string b = body.dump();
  KMR_ASSIGN_OR_RETURN(SignedHeaders h, sign_request(key_, base_, "POST", path, b, unix_now()));
  KMR_ASSIGN_OR_RETURN(ClientResponse r, http_request("POST", base_ + path, h.as_list(), b, timeout, 16 << 20));
  KMR_TRY(verify_reply(server_key_, base_, h.nonce, r.status, r.body, r.header("x-kmr-reply-signature")));
  json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded()) j = json::object();
  return CoordinatorReply{r.status, std::move(j)};
}

Result<CoordinatorReply> SignedCoordinator::claim(const std::vector<std::string>& resource_classes) {
  json body = json::object();
  if (!resource_classes.empty()) body["resource_classes"] = resource_classes;
  return post("/api/v1/worker/claim", body, 60s);
}

Result<CoordinatorReply> SignedCoordinator::heartbeat(std::int64_t job, const std::string& lease) {
  return post("/api/v1/worker/jobs/" + std::to_string(job) + "/heartbeat", {{"lease", lease}}, 20s);
}

Result<CoordinatorReply> SignedCoordinator::report(std::int64_t job, const json& report) {
  return post("/api/v1/worker/jobs/" + std::to_string(job) + "/report", report, 120s);
}

void SteadyClock::sleep(double seconds, const std::atomic<bool>& stop) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
  while (!stop && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(20ms);
}

namespace {

// A report that ends the job before the engine ran or produced a result.
verdict::WorkerReport failed_report(verdict::WorkerReport r, std::string status, std::string reason) {
  r.status = std::move(status);
  r.reason = std::move(reason);
  return r;
}

// The job's artifacts, fetched into `dir` and checked against their sha256;
// their sha512 go to report.shipped.
Result<std::vector<std::string>> fetch_artifacts(const json& job, const std::string& dir, const WorkerConfig& cfg,
                                                 verdict::WorkerReport& report) {
  std::vector<std::string> files;
  report.shipped.emplace();
  for (const json& art : job["artifacts"]) {
    auto p = materialise(art, dir, cfg);
    if (!p) return std::move(p).error().with_context("fetching " + art.value("filename", "?"));
    files.push_back(*p);
    if (auto h = sha512_file(*p)) report.shipped->push_back({art["sha256"], *h});
  }
  return files;
}

// --backend and --sources for the engine; a source list from sync is fetched
// into the job's directory, and anything missing ends the job (nullopt, `report` says why).
std::optional<std::vector<std::string>> engine_options(const json& job, const std::string& dir,
                                                       const WorkerConfig& cfg, verdict::WorkerReport& report) {
  std::vector<std::string> argv = {"--json"};
  if (job.contains("distro") && job["distro"].is_string()) argv.insert(argv.end(), {"--backend", job["distro"]});
  if (!job.contains("sources") || !job["sources"].is_string()) return argv;
  const std::string src = job["sources"];
  if (distros::looks_like_source_list(src)) {
    auto got = fetch_job_sources(src, dir + "/sources", std::chrono::seconds(cfg.rebuild_timeout_seconds));
    if (!got || !got->missing.empty()) {
      std::string why;
      if (got) {
        for (const auto& m : got->missing) why += (why.empty() ? "" : "; ") + m;
      }
      report = failed_report(std::move(report), got ? "environment-unavailable" : "error",
                             got ? "sources not available: " + why : "job sources: " + got.error().to_string());
      report.details = json{{"missing", got ? json(got->missing) : json::array()}};
      report.log = report.reason;
      return std::nullopt;
    }
    argv.insert(argv.end(), {"--sources", got->dir});
  } else if (src.rfind("file://", 0) == 0) {
    if (auto sp = file_url_path(src)) argv.insert(argv.end(), {"--sources", *sp});
  }
  return argv;
}

Result<SubprocessResult> run_engine(const std::vector<std::string>& argv, const std::string& dir,
                                    const WorkerConfig& cfg, const std::atomic<bool>& stop) {
  SubprocessOptions opt;
  opt.timeout = std::chrono::seconds(cfg.rebuild_timeout_seconds);
  opt.output_cap = 64 << 20;
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  env.push_back("KMR_REBUILD_DIR=" + dir + "/engine");
  opt.env = env;
  opt.watchdog = [&stop] { return stop ? std::string("kmr-worker is stopping") : std::string(); };
  opt.watchdog_interval = std::chrono::milliseconds(200);
  return run_subprocess(argv, opt);
}

// A document the engine wrote to a file it names in its result ("diff_json", "diff_html").
std::optional<std::string> engine_file(const json& out, const char* key) {
  if (!out.contains(key) || !out[key].is_string()) return std::nullopt;
  auto d = read_text_file(out[key], 32 << 20);
  if (!d) return std::nullopt;
  return std::move(d).value();
}

// The report from the engine's result: its verdict fields, the log, the
// rebuilt files' sha512, and the diff of a differing package.
verdict::WorkerReport engine_report(const SubprocessResult& res, const std::vector<std::string>& files,
                                    const std::string& dir, const WorkerConfig& cfg, verdict::WorkerReport base) {
  const json out = json::parse(res.out, nullptr, false);
  std::string log_text;
  if (out.is_object() && out.contains("log") && out["log"].is_string()) {
    if (auto lt = read_text_file(out["log"], 1ull << 30)) log_text = *lt;
  }
  log_text += "\n--- engine stderr ---\n" + res.err;
  base.log = cap_log(log_text, cfg.max_log_bytes);
  if (!out.is_object() || !out.contains("status"))
    return failed_report(std::move(base), "error", "engine output is not a JSON result (" + res.describe() + ")");
  verdict::WorkerReport r = verdict::from_engine_result(out);
  r.lease = std::move(base.lease);
  r.shipped = std::move(base.shipped);
  r.log = std::move(base.log);
  r.duration_ms = base.duration_ms;
  if (r.rebuilt) add_rebuilt_sha512(*r.rebuilt, *r.shipped, dir);
  if (auto d = engine_file(out, "diff_json")) {
    json dj = json::parse(*d, nullptr, false);
    if (!dj.is_discarded()) r.diff_json = std::move(dj);
  }
  r.diff_html = engine_file(out, "diff_html");
  if (!r.diff_json && r.files && *r.files != "identical") add_diff(r, out, files, dir, cfg);
  return r;
}

}  // namespace

json EngineRunner::run(const json& job, const std::atomic<bool>& stop) {
  const std::int64_t id = job["id"];
  const std::string dir = cfg_.work_dir + "/job-" + std::to_string(id);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const auto started = std::chrono::steady_clock::now();
  verdict::WorkerReport report;
  report.lease = job["lease"];
  auto files = fetch_artifacts(job, dir, cfg_, report);
  if (!files) {
    std::filesystem::remove_all(dir, ec);
    report.shipped.reset();
    report = failed_report(std::move(report), "error", files.error().to_string());
    report.log = report.reason;
    return report.to_json();
  }
  auto argv = engine_options(job, dir, cfg_, report);
  if (!argv) {
    std::filesystem::remove_all(dir, ec);
    return report.to_json();
  }
  argv->insert(argv->begin(), cfg_.rebuild_command.begin(), cfg_.rebuild_command.end());
  // Keep the engine's work dir (removed with the job dir) so the diff can read the rebuilt files.
  argv->insert(argv->end(), {"--keep", "--work-dir", dir + "/engine"});
  argv->insert(argv->end(), files->begin(), files->end());
  spdlog::info("job {}: {} ({} files)", id, job.value("set", "?"), files->size());
  auto res = run_engine(*argv, dir, cfg_, stop);
  if (stop) {
    std::filesystem::remove_all(dir, ec);
    return json{{kInterruptedKey, true}};
  }
  report.duration_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  if (!res) {
    report = failed_report(std::move(report), "error", "cannot run the engine: " + res.error().to_string());
    report.log = report.reason;
  } else {
    report = engine_report(*res, *files, dir, cfg_, std::move(report));
  }
  std::filesystem::remove_all(dir, ec);
  return report.to_json();
}

bool valid_job(const json& job) {
  if (!job.is_object() || !job.contains("id") || !job["id"].is_number_integer() || !job.contains("lease") ||
      !job["lease"].is_string() || !job.contains("artifacts") || !job["artifacts"].is_array() ||
      job["artifacts"].empty())
    return false;
  for (const json& a : job["artifacts"])
    if (!a.is_object() || !a.contains("url") || !a["url"].is_string() || !a.contains("sha256") ||
        !a["sha256"].is_string() || a["sha256"].get<std::string>().size() != 64)
      return false;
  return !job.contains("heartbeat_seconds") || job["heartbeat_seconds"].is_number_integer();
}

namespace {

// Heartbeats for one job on a thread of its own while the runner works; a
// lease kmrd says is gone (409/410/403) marks the job lost.
class Heartbeat {
 public:
  Heartbeat(Coordinator& c, std::int64_t id, std::string lease, std::int64_t seconds)
      : thread_([this, &c, id, lease = std::move(lease), seconds] { beat(c, id, lease, seconds); }) {}
  ~Heartbeat() { finish(); }
  void finish() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  bool lost() const { return lost_; }

 private:
  void beat(Coordinator& c, std::int64_t id, const std::string& lease, std::int64_t seconds) {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::seconds(seconds), [this] { return done_; })) {
      lock.unlock();
      auto h = c.heartbeat(id, lease);
      if (h && (h->status == 409 || h->status == 410 || h->status == 403)) {
        spdlog::warn("job {}: lease lost", id);
        lost_ = true;
      }
      lock.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::atomic<bool> lost_{false};
  std::thread thread_;
};

// Sends the report, retrying transport errors and 5xx with a growing wait;
// a 4xx (refused, or 409: the lease moved on) ends the attempt.
void send_report(Coordinator& c, Clock& clock, const LoopPolicy& policy, std::int64_t id, const json& report,
                 const std::atomic<bool>& stop) {
  // The first attempt is made even when stopping: the result is ready.
  for (int attempt = 0; attempt < policy.report_attempts; ++attempt) {
    auto rep = c.report(id, report);
    if (rep && rep->status == 200) {
      spdlog::info("job {}: reported {} {} {}", id, report.value("status", ""), report.value("files", ""),
                   report.value("module_root", ""));
      return;
    }
    if (rep && rep->status >= 400 && rep->status < 500) {
      spdlog::warn("job {}: report refused: {}", id, rep->body.dump());
      return;
    }
    spdlog::warn("job {}: report failed, retrying: {}", id, rep ? rep->body.dump() : rep.error().to_string());
    if (stop) return;
    clock.sleep(std::min(policy.max_backoff_seconds, policy.error_backoff_seconds * (attempt + 1)), stop);
  }
}

// One claim; returns true when the loop should go on, and sets `exit_code` when it must end.
bool claim_and_run(Coordinator& c, RebuildRunner& runner, Clock& clock, const LoopPolicy& policy,
                   const std::atomic<bool>& stop, int& exit_code) {
  auto r = c.claim(policy.resource_classes);
  if (!r || r->status != 200) {
    spdlog::warn("claim failed: {}", r ? r->body.dump() : r.error().to_string());
    if (r && (r->status == 401 || r->status == 403)) {
      exit_code = 2;
      return false;
    }
    clock.sleep(r && r->status == 429 ? policy.idle_seconds : policy.error_backoff_seconds, stop);
    return true;
  }
  const json job = r->body.is_object() && r->body.contains("job") ? r->body["job"] : json();
  if (job.is_null()) {
    if (policy.exit_when_idle) return false;
    clock.sleep(policy.idle_seconds, stop);
    return true;
  }
  if (!valid_job(job)) {
    spdlog::warn("claim reply has no valid job: {}", r->body.dump().substr(0, 500));
    clock.sleep(policy.error_backoff_seconds, stop);
    return true;
  }
  const std::int64_t id = job["id"];
  Heartbeat beat(c, id, job["lease"], job.value("heartbeat_seconds", 60));
  json report = runner.run(job, stop);
  beat.finish();
  if (beat.lost() || report.contains(kInterruptedKey)) return true;
  send_report(c, clock, policy, id, report, stop);
  return true;
}

std::atomic<bool>* g_stop_flag = nullptr;

}  // namespace

int run_worker_loop(Coordinator& coordinator, RebuildRunner& runner, Clock& clock, const LoopPolicy& policy,
                    const std::atomic<bool>& stop) {
  int exit_code = 0;
  while (!stop && claim_and_run(coordinator, runner, clock, policy, stop, exit_code)) {
  }
  return exit_code;
}

void install_stop_signals(std::atomic<bool>* stop) {
  g_stop_flag = stop;
  struct sigaction sa {};
  sa.sa_handler = [](int) {
    if (g_stop_flag != nullptr) *g_stop_flag = true;
  };
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

}  // namespace kmr::server

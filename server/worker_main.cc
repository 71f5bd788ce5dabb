// kmr-worker: pulls rebuild jobs from kmrd over signed HTTP, runs the rebuild
// engine (`kmr rebuild --json`, a subprocess so an engine crash cannot take the
// worker down), heartbeats while it runs, and reports the verdict, log and
// rebuilt artifact hashes.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "attest/keys.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/flags.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/base/version.h"
#include "server/auth.h"
#include "rebuilder/distros/source_list.h"
#include "server/http_client.h"
#include "server/worker_sources.h"

namespace kmr::server {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kDescription =
    "       kmr-worker --server URL --key KEY.pem [options]\n"
    "       kmr-worker --gen-key KEY.pem\n\n"
    "Pulls rebuild jobs from kmrd, runs `kmr rebuild --json` for each, reports the verdict.\n"
    "Every request is signed with the worker's Ed25519 key (register its public key with\n"
    "POST /api/v1/admin/workers or the \"workers\" list of kmrd's config).";

struct WorkerConfig {
  std::string server, server_key, key, name, work_dir = "/var/tmp/kmr-worker";
  std::vector<std::string> rebuild_command;
  std::vector<std::string> resource_classes;
  double idle_seconds = 10, error_backoff_seconds = 5;
  std::int64_t rebuild_timeout_seconds = 4 * 3600;
  std::uint64_t max_log_bytes = 8 << 20;
  bool exit_when_idle = false;
};

std::atomic<bool> g_stop{false};

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ' ') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

std::vector<std::string> default_engine(const char* argv0) {
  if (const char* e = std::getenv("KMR_BIN"); e && *e) return {e, "rebuild"};
  std::error_code ec;
  std::filesystem::path self = std::filesystem::canonical("/proc/self/exe", ec);
  for (auto cand : {self.parent_path() / "../rebuilder/cli/kmr", self.parent_path() / "kmr"}) {
    if (std::filesystem::exists(cand, ec)) return {std::filesystem::weakly_canonical(cand, ec).string(), "rebuild"};
  }
  (void)argv0;
  return {"kmr", "rebuild"};
}

// Signed requests to kmrd; a reply counts only when kmrd's signature over it (bound to this
// request's nonce and the server origin) verifies with the pinned key.
class Client {
 public:
  Client(std::string base, attest::Ed25519Key key, attest::Ed25519Key server_key)
      : base_(std::move(base)), key_(std::move(key)), server_key_(std::move(server_key)) {
    while (!base_.empty() && base_.back() == '/') base_.pop_back();
  }
  // Signed POST; returns status + parsed body. kVerificationFailed for an unsigned or forged reply.
  Result<std::pair<int, json>> post(const std::string& path, const json& body,
                                    std::chrono::milliseconds timeout = 60s) {
    std::string b = body.dump();
    KMR_ASSIGN_OR_RETURN(SignedHeaders h, sign_request(key_, base_, "POST", path, b, unix_now()));
    KMR_ASSIGN_OR_RETURN(ClientResponse r, http_request("POST", base_ + path, h.as_list(), b, timeout, 16 << 20));
    KMR_TRY(verify_reply(server_key_, base_, h.nonce, r.status, r.body, r.header("x-kmr-reply-signature")));
    json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded()) j = json::object();
    return std::make_pair(r.status, j);
  }
  std::string public_hex() const { return to_hex(key_.raw_public()); }

 private:
  std::string base_;
  attest::Ed25519Key key_;
  attest::Ed25519Key server_key_;
};

// kmrd's public key: 64 hex digits (raw Ed25519) or a PEM file (public or private key).
Result<attest::Ed25519Key> load_server_key(const std::string& spec) {
  if (spec.size() == 64) {
    if (auto raw = from_hex(spec); raw && raw->size() == 32) return attest::Ed25519Key::from_raw_public(*raw);
  }
  return attest::Ed25519Key::load(spec);
}

// The worker's private key must be readable by its owner only.
Result<void> check_key_file_mode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return io_error(path + ": " + std::strerror(errno));
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Error(ErrorCode::kPermissionDenied, std::string("key file ") + path + " has mode " + mode +
                                                   ": it is readable by group or others; run chmod 600 " + path);
  }
  return ok();
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
void add_diff(json& report, const json& out, const std::vector<std::string>& shipped, const std::string& dir,
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
      if (!j.is_discarded()) report["diff_json"] = j;
    }
    auto dh = read_text_file(dir + "/diff-html/index.html", 32 << 20);
    if (dh) report["diff_html"] = *dh;
    return;
  }
}

// sha512 of each rebuilt file: hashed where the engine left it; a file the engine did not keep
// whose sha256 equals a shipped file's has that file's bytes (and sha512).
void add_rebuilt_sha512(json& rebuilt, const json& shipped, const std::string& dir) {
  for (json& r : rebuilt) {
    const std::string sha256 = r["sha256"];
    std::string path = find_rebuilt_file(dir, r["name"].get<std::string>(), sha256, "");
    if (!path.empty()) {
      if (auto h = sha512_file(path)) r["sha512"] = *h;
      continue;
    }
    for (const json& s : shipped)
      if (s["sha256"] == sha256) r["sha512"] = s["sha512"];
  }
}

json run_job(const json& job, const WorkerConfig& cfg) {
  std::int64_t id = job["id"];
  std::string dir = cfg.work_dir + "/job-" + std::to_string(id);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  auto started = std::chrono::steady_clock::now();
  json report = {{"lease", job["lease"]}};
  std::vector<std::string> files;
  json shipped = json::array();
  for (const json& art : job["artifacts"]) {
    auto p = materialise(art, dir, cfg);
    if (!p) {
      report["status"] = "error";
      report["reason"] = "fetching " + art.value("filename", "?") + ": " + p.error().to_string();
      report["log"] = report["reason"];
      return report;
    }
    files.push_back(*p);
    if (auto h = sha512_file(*p)) shipped.push_back({{"sha256", art["sha256"]}, {"sha512", *h}});
  }
  report["shipped"] = shipped;
  std::vector<std::string> argv = cfg.rebuild_command;
  argv.push_back("--json");
  if (job.contains("distro") && job["distro"].is_string()) {
    argv.push_back("--backend");
    argv.push_back(job["distro"]);
  }
  if (job.contains("sources") && job["sources"].is_string()) {
    std::string src = job["sources"];
    if (distros::looks_like_source_list(src)) {
      // What sync attached (a .dsc and its files, a .buildinfo, a source RPM, a packaging
      // repository): fetched into the job's sources directory; anything missing ends the job.
      auto got = fetch_job_sources(src, dir + "/sources", std::chrono::seconds(cfg.rebuild_timeout_seconds));
      if (!got || !got->missing.empty()) {
        std::string why;
        if (got) {
          for (const auto& m : got->missing) why += (why.empty() ? "" : "; ") + m;
        }
        report["status"] = got ? "environment-unavailable" : "error";
        report["reason"] = got ? "sources not available: " + why : "job sources: " + got.error().to_string();
        report["details"] = {{"missing", got ? json(got->missing) : json::array()}};
        report["log"] = report["reason"];
        std::filesystem::remove_all(dir, ec);
        return report;
      }
      argv.push_back("--sources");
      argv.push_back(got->dir);
    } else if (src.rfind("file://", 0) == 0) {
      auto sp = file_url_path(src);
      if (sp) {
        argv.push_back("--sources");
        argv.push_back(*sp);
      }
    }
  }
  // Keep the engine's work dir (removed with the job dir below) so the diff can read the rebuilt files.
  argv.push_back("--keep");
  argv.push_back("--work-dir");
  argv.push_back(dir + "/engine");
  argv.insert(argv.end(), files.begin(), files.end());
  SubprocessOptions opt;
  opt.timeout = std::chrono::seconds(cfg.rebuild_timeout_seconds);
  opt.output_cap = 64 << 20;
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  env.push_back("KMR_REBUILD_DIR=" + dir + "/engine");
  opt.env = env;
  spdlog::info("job {}: {} ({} files)", id, job.value("set", "?"), files.size());
  auto res = run_subprocess(argv, opt);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  report["duration_ms"] = ms;
  if (!res) {
    report["status"] = "error";
    report["reason"] = "cannot run the engine: " + res.error().to_string();
    report["log"] = report["reason"];
    return report;
  }
  json out = json::parse(res->out, nullptr, false);
  std::string log_text;
  if (!out.is_discarded() && out.is_object() && out.contains("log") && out["log"].is_string()) {
    auto lt = read_text_file(out["log"], 1ull << 30);
    if (lt) log_text = *lt;
  }
  log_text += "\n--- engine stderr ---\n" + res->err;
  report["log"] = cap_log(log_text, cfg.max_log_bytes);
  if (out.is_discarded() || !out.is_object() || !out.contains("status")) {
    report["status"] = "error";
    report["reason"] = "engine output is not a JSON result (" + res->describe() + ")";
    return report;
  }
  std::string status = out.value("status", "error");
  report["status"] = status == "verdict" ? "verified" : status;
  static const std::vector<std::string> tiers = {"identical", "content-identical", "identical-modulo-signatures", "different"};
  if (out.contains("files") && out["files"].is_string() &&
      std::find(tiers.begin(), tiers.end(), out["files"].get<std::string>()) != tiers.end())
    report["files"] = out["files"];
  for (const char* k : {"module_root", "shipped_root", "rebuilt_root", "reason"})
    if (out.contains(k) && out[k].is_string() && !out[k].get<std::string>().empty()) report[k] = out[k];
  if (out.contains("differing") && out["differing"].is_array()) report["differing"] = out["differing"];
  if (out.contains("environment") && out["environment"].is_object()) report["environment"] = out["environment"];
  if (out.contains("rebuilt") && out["rebuilt"].is_array()) {
    json rb = json::array();
    for (const json& r : out["rebuilt"])
      if (r.is_object() && r.contains("name") && r.contains("sha256") && r["name"].is_string() && r["sha256"].is_string())
        rb.push_back({{"name", std::filesystem::path(r["name"].get<std::string>()).filename().string()}, {"sha256", r["sha256"]}});
    add_rebuilt_sha512(rb, shipped, dir);
    report["rebuilt"] = rb;
  }
  json details = json::object();
  for (const char* k : {"backend", "levels", "modules", "environment_digest", "missing", "build_duration_ms", "exit_code",
                        "module_content_root", "shipped_content_root", "rebuilt_content_root", "content_root_levels",
                        "content_root_note", "signatures", "masked", "mask_notes", "kernel_rebuild"})
    if (out.contains(k)) details[k] = out[k];
  if (out.contains("levels")) details["shipped_levels"] = out["levels"];
  if (out.contains("diff_json") && out["diff_json"].is_string()) {
    auto d = read_text_file(out["diff_json"], 32 << 20);
    if (d) {
      json dj = json::parse(*d, nullptr, false);
      if (!dj.is_discarded()) report["diff_json"] = dj;
    }
  }
  if (out.contains("diff_html") && out["diff_html"].is_string()) {
    auto d = read_text_file(out["diff_html"], 32 << 20);
    if (d) report["diff_html"] = *d;
  }
  report["details"] = details;
  if (!report.contains("diff_json") && report.value("files", "") != "identical" && report.contains("files"))
    add_diff(report, out, files, dir, cfg);
  if (report["status"] == "verified" && (!report.contains("files") || !report.contains("module_root"))) {
    report["status"] = "error";
    report["reason"] = "engine reported a verdict without files/module_root";
  }
  std::filesystem::remove_all(dir, ec);
  return report;
}

// The fields run_job and the loop rely on, with their types.
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

int run_worker(const WorkerConfig& cfg) {
  if (auto mode = check_key_file_mode(cfg.key); !mode) {
    std::fprintf(stderr, "kmr-worker: refusing to start: %s\n", mode.error().message().c_str());
    return 2;
  }
  auto key = attest::Ed25519Key::load(cfg.key);
  if (!key || !key->has_private()) {
    std::fprintf(stderr, "kmr-worker: cannot load private key %s: %s\n", cfg.key.c_str(),
                 key ? "not a private key" : key.error().to_string().c_str());
    return 2;
  }
  auto server_key = load_server_key(cfg.server_key);
  if (!server_key) {
    std::fprintf(stderr, "kmr-worker: cannot load kmrd's key %s: %s\n", cfg.server_key.c_str(),
                 server_key.error().to_string().c_str());
    return 2;
  }
  Client client(cfg.server, std::move(key).value(), std::move(server_key).value());
  spdlog::info("kmr-worker {} key {} polling {}", cfg.name, client.public_hex(), cfg.server);
  auto sleep_for = [](double seconds) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
    while (!g_stop && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(50ms);
  };
  while (!g_stop) {
    json claim_body = json::object();
    if (!cfg.resource_classes.empty()) claim_body["resource_classes"] = cfg.resource_classes;
    auto r = client.post("/api/v1/worker/claim", claim_body);
    if (!r || r->first != 200) {
      spdlog::warn("claim failed: {}", r ? r->second.dump() : r.error().to_string());
      if (r && (r->first == 401 || r->first == 403)) return 2;
      sleep_for(r && r->first == 429 ? cfg.idle_seconds : cfg.error_backoff_seconds);
      continue;
    }
    const json& job = r->second["job"];
    if (!job.is_null() && !valid_job(job)) {
      spdlog::warn("claim reply has no valid job: {}", r->second.dump().substr(0, 500));
      sleep_for(cfg.error_backoff_seconds);
      continue;
    }
    if (job.is_null()) {
      if (cfg.exit_when_idle) return 0;
      sleep_for(cfg.idle_seconds);
      continue;
    }
    std::int64_t id = job["id"];
    std::string lease = job["lease"];
    std::int64_t hb = job.value("heartbeat_seconds", 60);
    // Heartbeats while the engine runs.
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::atomic<bool> lost{false};
    std::thread beat([&] {
      std::unique_lock lock(mu);
      while (!cv.wait_for(lock, std::chrono::seconds(hb), [&] { return done; })) {
        lock.unlock();
        auto h = client.post("/api/v1/worker/jobs/" + std::to_string(id) + "/heartbeat", {{"lease", lease}}, 20s);
        if (h && (h->first == 409 || h->first == 410 || h->first == 403)) {
          spdlog::warn("job {}: lease lost", id);
          lost = true;
        }
        lock.lock();
      }
    });
    json report = run_job(job, cfg);
    {
      std::lock_guard lock(mu);
      done = true;
    }
    cv.notify_all();
    beat.join();
    if (lost) continue;
    // Report, retrying transport errors; 409 means the lease moved on (nothing to do).
    for (int attempt = 0; attempt < 20 && !g_stop; ++attempt) {
      auto rep = client.post("/api/v1/worker/jobs/" + std::to_string(id) + "/report", report, 120s);
      if (rep && rep->first == 200) {
        spdlog::info("job {}: reported {} {} {}", id, report.value("status", ""), report.value("files", ""),
                     report.value("module_root", ""));
        break;
      }
      if (rep && rep->first >= 400 && rep->first < 500) {
        spdlog::warn("job {}: report refused: {}", id, rep->second.dump());
        break;
      }
      spdlog::warn("job {}: report failed, retrying: {}", id, rep ? rep->second.dump() : rep.error().to_string());
      sleep_for(std::min(30.0, cfg.error_backoff_seconds * (attempt + 1)));
    }
  }
  return 0;
}

struct Flags {
  std::string config_file, gen_key, cmdline;
  bool version = false;
};

// kmr-worker's command line into `cfg`; nullopt: go on, else the exit code.
std::optional<int> parse_flags(int argc, char** argv, WorkerConfig& cfg, Flags& f) {
  cli::FlagParser p("kmr-worker", "--config FILE", kDescription);
  p.string("--config", "FILE", &f.config_file,
           "JSON: {\"server\",\"server_key\",\"key\",\"name\",\"resource_classes\",\"work_dir\",\n"
           "\"rebuild_command\",\"idle_seconds\",\"error_backoff_seconds\",\n"
           "\"rebuild_timeout_seconds\",\"max_log_bytes\",\"exit_when_idle\"}")
      .string("--server", "URL", &cfg.server, "kmrd base URL (http://host:port): kmrd's \"origin\"")
      .string("--server-key", "KEY", &cfg.server_key,
              "kmrd's public key: 64 hex digits (logged by kmrd at start) or a\n"
              "PEM file; every reply must carry kmrd's signature under it")
      .string("--key", "FILE", &cfg.key, "the worker's private key (PEM, mode 0600)")
      .string("--gen-key", "FILE", &f.gen_key, "create a key, print its public key (hex) and exit")
      .string("--work-dir", "DIR", &cfg.work_dir, "downloads and engine work (default /var/tmp/kmr-worker)")
      .string("--rebuild-command", "CMD", &f.cmdline,
              "engine command line (default: kmr rebuild; --json and the\n"
              "package files are appended)")
      .strings("--resource-class", "C", &cfg.resource_classes,
               "claim only jobs of this class (repeatable; default: all registered)")
      .real("--idle-seconds", "N", &cfg.idle_seconds, 0, 86400,
            "wait between polls when the queue is empty (default 10)")
      .boolean("--exit-when-idle", &cfg.exit_when_idle, "exit 0 when no job is available")
      .string("--name", "NAME", &cfg.name, "the worker's name in logs (default worker)")
      .boolean("--version", &f.version, "print the version and exit");
  if (auto code = p.parse_or_exit(std::vector<std::string>(argv + 1, argv + argc))) return code;
  if (f.version) {
    std::printf("kmr-worker %s\n", kVersion);
    return 0;
  }
  return std::nullopt;
}

int main_impl(int argc, char** argv) {
  WorkerConfig cfg;
  Flags flags;
  if (auto code = parse_flags(argc, argv, cfg, flags)) return *code;
  const std::string &config_file = flags.config_file, &gen_key = flags.gen_key, &cmdline = flags.cmdline;
  if (!gen_key.empty()) {
    auto k = attest::Ed25519Key::generate();
    if (!k) return 2;
    auto s = attest::save_private_key(*k, gen_key);
    if (!s) {
      std::fprintf(stderr, "kmr-worker: %s\n", s.error().to_string().c_str());
      return 2;
    }
    std::printf("%s\n", to_hex(k->raw_public()).c_str());
    return 0;
  }
  if (!config_file.empty()) {
    auto text = read_text_file(config_file, 1 << 20);
    if (!text) {
      std::fprintf(stderr, "kmr-worker: %s\n", text.error().to_string().c_str());
      return 2;
    }
    json j = json::parse(*text, nullptr, false);
    static const std::vector<std::string> keys = {"server", "server_key", "key", "name", "resource_classes", "work_dir",
                                                  "rebuild_command", "idle_seconds", "error_backoff_seconds",
                                                  "rebuild_timeout_seconds", "max_log_bytes", "exit_when_idle", "$comment"};
    if (j.is_discarded() || !j.is_object()) {
      std::fprintf(stderr, "kmr-worker: %s: not a JSON object\n", config_file.c_str());
      return 2;
    }
    for (auto it = j.begin(); it != j.end(); ++it)
      if (std::find(keys.begin(), keys.end(), it.key()) == keys.end()) {
        std::fprintf(stderr, "kmr-worker: %s: unknown key \"%s\"\n", config_file.c_str(), it.key().c_str());
        return 2;
      }
    try {
      cfg.server = j.value("server", cfg.server);
      cfg.key = j.value("key", cfg.key);
      cfg.server_key = j.value("server_key", cfg.server_key);
      cfg.name = j.value("name", cfg.name);
      cfg.resource_classes = j.value("resource_classes", cfg.resource_classes);
      cfg.work_dir = j.value("work_dir", cfg.work_dir);
      cfg.rebuild_command = j.value("rebuild_command", cfg.rebuild_command);
      cfg.idle_seconds = j.value("idle_seconds", cfg.idle_seconds);
      cfg.error_backoff_seconds = j.value("error_backoff_seconds", cfg.error_backoff_seconds);
      cfg.rebuild_timeout_seconds = j.value("rebuild_timeout_seconds", cfg.rebuild_timeout_seconds);
      cfg.max_log_bytes = j.value("max_log_bytes", cfg.max_log_bytes);
      cfg.exit_when_idle = j.value("exit_when_idle", cfg.exit_when_idle);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "kmr-worker: %s: wrong type: %s\n", config_file.c_str(), e.what());
      return 2;
    }
  }
  if (!cmdline.empty()) cfg.rebuild_command = split_words(cmdline);
  if (cfg.rebuild_command.empty()) cfg.rebuild_command = default_engine(argv[0]);
  if (cfg.server.empty() || cfg.key.empty() || cfg.server_key.empty()) {
    std::fprintf(stderr, "kmr-worker: --server, --server-key and --key (or --config) are required; see --help\n");
    return 2;
  }
  if (cfg.name.empty()) cfg.name = "worker";
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %l kmr-worker[" + cfg.name + "] %v");
  std::signal(SIGTERM, [](int) { g_stop = true; });
  std::signal(SIGINT, [](int) { g_stop = true; });
  return run_worker(cfg);
}

}  // namespace
}  // namespace kmr::server

int main(int argc, char** argv) {
  try {
    return kmr::server::main_impl(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kmr-worker: fatal: %s\n", e.what());
    return 2;
  }
}

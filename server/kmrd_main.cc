// kmrd: the rebuilder daemon (sync, queue, worker API, REST API v1, web UI,
// attestations). `kmrd --demo` runs everything on one machine against the
// fixture repositories.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>

#include <nlohmann/json.hpp>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include "rebuilder/base/file.h"
#include "rebuilder/base/flags.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/base/version.h"
#include "server/api.h"
#include "server/attestor.h"
#include "server/config.h"
#include "server/http_server.h"
#include "server/member_indexer.h"
#include "server/program.h"
#include "server/store.h"
#include "server/sync.h"

namespace kmr::server {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kDescription =
    "       kmrd --demo [--listen 127.0.0.1:PORT] [--state DIR]\n\n"
    "The kmr rebuilder daemon: follows distro repositories, hands rebuild jobs to\n"
    "kmr-worker processes, stores verdicts, signs attestations into a transparency log\n"
    "and serves REST API v1 (/api/v1/...), the web UI (/), /metrics and /healthz.";

struct Flags {
  std::string config_file, listen, state, web, port_file;
  bool check = false, demo = false;
};

// kmrd's command line; nullopt: go on, else the exit code (help, version, usage error).
std::optional<int> parse_flags(int argc, char** argv, Flags& f) {
  cli::FlagParser p("kmrd", "--config FILE [--check-config]", kDescription);
  p.string("--config", "FILE", &f.config_file, "JSON configuration (see deploy/kmrd.example.json)")
      .boolean("--check-config", &f.check, "validate the configuration and exit (0 valid, 2 invalid)")
      .boolean("--demo", &f.demo,
               "local demo: state in --state (default ./kmr-demo-state), builds the\n"
               "four fixture repositories if missing, syncs them, spawns a kmr-worker,\n"
               "rebuilds and verifies every artifact, keeps serving")
      .string("--listen", "H:P", &f.listen, "override the listen address (demo default 127.0.0.1:8080; port 0 = any)")
      .string("--state", "DIR", &f.state, "override the state directory")
      .string("--web", "DIR", &f.web, "serve the web UI from DIR (default: web/ in runfiles or the cwd)")
      .string("--port-file", "FILE", &f.port_file, "write the bound port to FILE once listening (tests)");
  if (auto code = parse_program_flags(p, argc, argv)) return code;
  if (f.config_file.empty() && !f.demo) return p.usage_error("--config FILE or --demo is required");
  return std::nullopt;
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string random_hex(int bytes) {
  std::vector<unsigned char> b(static_cast<std::size_t>(bytes));
  RAND_bytes(b.data(), bytes);
  return to_hex(Bytes(b.data(), b.size()));
}

fs::path self_dir() {
  std::error_code ec;
  return fs::canonical("/proc/self/exe", ec).parent_path();
}

std::string find_web_dir(const std::string& configured) {
  if (!configured.empty()) return configured;
  std::error_code ec;
  std::vector<fs::path> cands;
  if (const char* e = std::getenv("KMR_WEB_DIR")) cands.emplace_back(e);
  if (const char* w = std::getenv("BUILD_WORKSPACE_DIRECTORY")) cands.emplace_back(fs::path(w) / "web");
  cands.push_back(self_dir() / "kmrd.runfiles/kmr/web");
  cands.push_back(fs::current_path(ec) / "web");
  cands.push_back(self_dir() / "../share/kmr/web");
  for (const auto& c : cands)
    if (fs::exists(c / "index.html", ec)) return c.string();
  return "";
}

std::string find_source_file(const std::string& rel) {
  std::error_code ec;
  std::vector<fs::path> roots;
  if (const char* e = std::getenv("KMR_SOURCE_DIR")) roots.emplace_back(e);
  if (const char* w = std::getenv("BUILD_WORKSPACE_DIRECTORY")) roots.emplace_back(w);
  for (fs::path p = fs::current_path(ec); !p.empty(); p = p.parent_path()) {
    roots.push_back(p);
    if (p == p.parent_path()) break;
  }
  roots.push_back(self_dir() / "kmrd.runfiles/kmr");
  for (const auto& r : roots)
    if (fs::exists(r / rel, ec)) return (r / rel).string();
  return "";
}

void setup_logging(const Config& c) {
  if (c.log_format == "json")
    spdlog::set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","logger":"kmrd","pid":%P,"msg":"%v"})",
                        spdlog::pattern_time_type::utc);
  else
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %l kmrd %v");
  spdlog::set_level(spdlog::level::from_str(c.log_level));
}

// In a forked child before exec: closes every descriptor but 0-2, so the listening
// socket, the database and the log never reach a spawned program.
void close_inherited_fds() {
  if (::close_range(3, ~0U, 0) == 0) return;
  long max = ::sysconf(_SC_OPEN_MAX);
  for (long fd = 3; fd < (max > 0 ? max : 65536); ++fd) ::close(static_cast<int>(fd));
}

// The log must hold every entry the database references: a log truncated or
// replaced behind kmrd's back would make served attestations unprovable.
Result<void> check_log_covers_store(Store& store, const Attestor& attestor) {
  KMR_ASSIGN_OR_RETURN(auto max_index, store.max_log_index());
  if (max_index && static_cast<std::uint64_t>(*max_index) >= attestor.log_size())
    return Error(ErrorCode::kVerificationFailed,
                 "the database references transparency log entry " + std::to_string(*max_index) +
                     " but the log holds " + std::to_string(attestor.log_size()) +
                     " entries (log truncated or replaced); refusing to start");
  return ok();
}

struct Daemon {
  Config cfg;
  std::unique_ptr<Store> store;
  std::unique_ptr<Attestor> attestor;
  Metrics metrics;
  std::unique_ptr<Api> api;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<MemberIndexer> members;  // indexes member hashes of artifacts with stored verdicts
  std::atomic<bool> stopping{false};
  std::mutex repos_mu;
  std::vector<pid_t> children;
  std::mutex children_mu;

  void sync_all() {
    std::vector<RepositoryConfig> repos;
    {
      std::lock_guard lock(repos_mu);
      repos = cfg.repositories;
    }
    for (const auto& rc : repos) {
      auto n = sync_repository(*store, rc, unix_now(), 60s);
      metrics.sync(rc.name, n.has_value());
      if (n) {
        if (*n) spdlog::info("sync {}: {} new job(s)", rc.name, *n);
      } else {
        spdlog::warn("sync {}: {}", rc.name, n.error().to_string());
      }
    }
  }

  void background() {
    std::int64_t last_sync = 0, last_stats = 0;
    while (!stopping) {
      std::int64_t now = unix_now();
      if (now - last_sync >= cfg.sync_interval_seconds) {
        last_sync = now;
        sync_all();
      }
      auto r = store->reap_expired(now);
      if (r && *r) spdlog::info("requeued {} job(s) with expired leases", *r);
      if (now - last_stats >= 60) {
        last_stats = now;
        (void)store->snapshot_stats(now);
      }
      for (int i = 0; i < 10 && !stopping; ++i) std::this_thread::sleep_for(100ms);
    }
  }

  pid_t spawn(const std::vector<std::string>& argv) {
    // Built before fork: kmrd has threads, so the child must not allocate before exec.
    std::vector<char*> a;
    a.reserve(argv.size() + 1);
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
      setpgid(0, 0);
      close_inherited_fds();
      execv(a[0], a.data());
      _exit(127);
    }
    if (pid > 0) {
      std::lock_guard lock(children_mu);
      children.push_back(pid);
    }
    return pid;
  }

  void stop_children() {
    std::lock_guard lock(children_mu);
    for (pid_t p : children) kill(-p, SIGTERM);
  }
  void reap_children() {
    std::lock_guard lock(children_mu);
    for (pid_t p : children) {
      for (int i = 0; i < 100; ++i) {
        if (waitpid(p, nullptr, WNOHANG) != 0) break;
        std::this_thread::sleep_for(50ms);
      }
      kill(-p, SIGKILL);
      waitpid(p, nullptr, WNOHANG);
    }
  }
};

// Adds one "<distro>-<suffix>" repository per distro, all read from one fixtures manifest.
void add_manifest_repositories(Daemon& d, const std::vector<std::string>& distros, const std::string& suffix,
                               const std::string& manifest) {
  std::lock_guard lock(d.repos_mu);
  for (const auto& dist : distros) {
    RepositoryConfig rc;
    rc.name = dist + "-" + suffix;
    rc.distro = dist;
    rc.url = "file://" + manifest;
    rc.format = "fixtures-manifest";
    d.cfg.repositories.push_back(rc);
  }
}

// Demo, second stage: a real Linux kernel (tests/fixtures/realkernel: Debian's
// linux-source-6.1 built by kbuild, packaged by deb-pkg and makepkg), synced like
// the fixtures once its build is done; the worker then rebuilds it.
struct RealKernelStage {
  enum Status { kOff, kBuilding, kSynced, kFailed };
  std::atomic<int> status{kOff};
  std::string log;  // set before the build starts
};

// The last non-empty line of a log file, cut to `max` bytes; only its last 4 KiB are read.
std::string last_log_line(const std::string& path, std::size_t max = 90) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "";
  const std::streamoff size = in.tellg();
  const std::streamoff from = size > 4096 ? size - 4096 : 0;
  std::string tail(static_cast<std::size_t>(size - from), '\0');
  in.seekg(from);
  in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  tail.resize(static_cast<std::size_t>(in.gcount()));
  std::string_view t = tail;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.remove_suffix(1);
  const auto nl = t.rfind('\n');
  std::string line(nl == std::string_view::npos ? t : t.substr(nl + 1));
  for (char& c : line)
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  return line.size() > max ? line.substr(0, max) + "..." : line;
}

void demo_real_kernel(Daemon& d, const std::string& state, RealKernelStage& st) {
  const std::string script = find_source_file("tests/fixtures/realkernel/build-repos.sh");
  const std::string out = state + "/realkernel";
  st.log = state + "/realkernel.log";
  if (script.empty()) {
    spdlog::error("demo: tests/fixtures/realkernel/build-repos.sh not found; the real-kernel stage is off");
    st.status = RealKernelStage::kFailed;
    return;
  }
  std::printf("kmrd demo: building a real kernel (Linux 6.1 by kbuild, Debian and Arch packages) into %s;\n"
              "           cached after the first run, about 10 min on 2 cores; log: %s\n",
              out.c_str(), st.log.c_str());
  std::fflush(stdout);
  SubprocessOptions o;
  o.timeout = std::chrono::hours(3);
  auto r = run_subprocess({"bash", "-c", "exec bash \"$0\" \"$1\" > \"$2\" 2>&1", script, out, st.log}, o);
  if (!r || !r->success()) {
    spdlog::error("demo: the real-kernel build failed ({}); see {}", r ? r->describe() : r.error().to_string(), st.log);
    st.status = RealKernelStage::kFailed;
    return;
  }
  add_manifest_repositories(d, {"debian", "arch"}, "realkernel", out + "/manifest.json");
  d.sync_all();
  std::printf("kmrd demo: the real kernel's Debian and Arch packages are synced; their rebuilds are queued\n");
  std::fflush(stdout);
  st.status = RealKernelStage::kSynced;
}

// A progress line whenever the queue changes (and every 30 s), a summary per
// distro once every job is done and no stage is still building.
void demo_progress(Daemon& d, RealKernelStage& real, const std::string& base) {
  std::string last;
  auto last_at = std::chrono::steady_clock::now();
  while (!d.stopping) {
    auto c = d.store->metrics_counts();
    const json jobs = c ? (*c)["jobs"] : json::object();
    const long long queued = jobs.value("queued", 0), running = jobs.value("running", 0), done = jobs.value("done", 0);
    const bool building = real.status == RealKernelStage::kBuilding;
    std::string line = "kmrd demo: jobs done " + std::to_string(done) + ", running " + std::to_string(running) +
                       ", queued " + std::to_string(queued);
    if (building) line += " | real kernel: " + (real.log.empty() ? std::string("starting") : last_log_line(real.log));
    const auto now = std::chrono::steady_clock::now();
    if (line != last || now - last_at > 30s) {
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
      last = line;
      last_at = now;
    }
    if (c && queued == 0 && running == 0 && done > 0 && !building) {
      auto s = d.store->stats(unix_now());
      std::printf("kmrd demo: all jobs done.\n");
      if (s)
        for (const json& x : (*s)["distros"])
          std::printf("  %-8s %3lld artifacts: %lld reproducible, %lld not reproducible, %lld failed\n",
                      x.value("distro", "").c_str(), static_cast<long long>(x.value("total", 0)),
                      static_cast<long long>(x.value("reproducible", 0)),
                      static_cast<long long>(x.value("not_reproducible", 0)), static_cast<long long>(x.value("failed", 0)));
      std::printf("kmrd demo: still serving %s (Ctrl-C to stop)\n", base.c_str());
      std::fflush(stdout);
      (void)d.store->snapshot_stats(unix_now());
      return;
    }
    for (int i = 0; i < 20 && !d.stopping; ++i) std::this_thread::sleep_for(100ms);
  }
}

// The demo's fixture repositories: built into `fixtures` by build-repos.sh unless their
// manifest is there. False (logged) when they cannot be.
bool ensure_fixtures(const std::string& fixtures) {
  std::error_code ec;
  if (fs::exists(fixtures + "/manifest.json", ec)) return true;
  std::string script = find_source_file("tests/fixtures/repos/build-repos.sh");
  if (script.empty()) {
    spdlog::error("demo: tests/fixtures/repos/build-repos.sh not found (run from the source tree or set KMR_SOURCE_DIR)");
    return false;
  }
  std::printf("kmrd demo: building the four fixture repositories into %s (first run only, a few minutes)...\n",
              fixtures.c_str());
  std::fflush(stdout);
  SubprocessOptions o;
  o.timeout = std::chrono::hours(2);
  o.merge_stderr = true;
  auto r = run_subprocess({"bash", script, fixtures}, o);
  if (!r || !r->success()) {
    spdlog::error("demo: build-repos.sh failed: {}", r ? r->describe() + "\n" + r->out.substr(r->out.size() > 4000 ? r->out.size() - 4000 : 0) : r.error().to_string());
    return false;
  }
  return true;
}

// What the demo prints about its fixtures: their distros (in manifest order), a pristine
// artifact to try, the number of artifacts.
struct DemoManifest {
  std::vector<std::string> distros;
  std::string example;
  std::size_t artifacts = 0;
};

std::optional<DemoManifest> read_demo_manifest(const std::string& path) {
  auto text = read_text_file(path, 64 << 20);
  if (!text) {
    spdlog::error("demo: {}", text.error().to_string());
    return std::nullopt;
  }
  json manifest = json::parse(*text, nullptr, false);
  DemoManifest m;
  if (!manifest.is_object() || !manifest["artifacts"].is_array()) return m;
  m.artifacts = manifest["artifacts"].size();
  for (const json& a : manifest["artifacts"]) {
    std::string dist = a.value("distro", "");
    if (!dist.empty() && std::find(m.distros.begin(), m.distros.end(), dist) == m.distros.end()) m.distros.push_back(dist);
    if (m.example.empty() && a.value("variant", "") == "pristine") m.example = a.value("sha256", "");
  }
  return m;
}

// One kmr-worker process next to kmrd, registered as demo-worker with a key in the state dir.
void spawn_demo_worker(Daemon& d, const std::string& state, const std::string& base) {
  std::error_code ec;
  std::string worker_bin = (self_dir() / "kmr-worker").string();
  if (!fs::exists(worker_bin, ec)) {
    spdlog::error("demo: {} not found; start a worker yourself", worker_bin);
    return;
  }
  std::string key = state + "/worker.pem";
  std::string pub;
  if (!fs::exists(key, ec)) {
    auto r = run_subprocess({worker_bin, "--gen-key", key});
    if (r && r->success()) pub = r->out.substr(0, 64);
  } else {
    auto k = attest::Ed25519Key::load(key);
    if (k) pub = to_hex(k->raw_public());
  }
  if (pub.size() != 64 || !d.store->register_worker("demo-worker", pub, {"default"}, unix_now())) {
    spdlog::error("demo: cannot create the worker key {}", key);
    return;
  }
  d.spawn({worker_bin, "--server", base, "--server-key", to_hex(d.attestor->key().raw_public()), "--key", key,
           "--name", "demo-worker", "--work-dir", state + "/work", "--idle-seconds", "2"});
}

// Demo: fixtures, repositories, one spawned kmr-worker, a summary when done.
void run_demo(Daemon& d, std::uint16_t port) {
  std::string state = d.cfg.state_dir;
  std::string base = d.cfg.origin.empty() ? "http://127.0.0.1:" + std::to_string(port) : d.cfg.origin;
  std::string fixtures = state + "/fixtures";
  if (!ensure_fixtures(fixtures)) return;
  auto manifest = read_demo_manifest(fixtures + "/manifest.json");
  if (!manifest) return;
  add_manifest_repositories(d, manifest->distros, "fixtures", fixtures + "/manifest.json");
  d.sync_all();
  spawn_demo_worker(d, state, base);
  std::printf("\nkmrd demo: serving %s  (web UI: %s/ ; admin token in %s/admin-token)\n", base.c_str(), base.c_str(),
              state.c_str());
  if (!manifest->example.empty())
    std::printf("  try:  curl -s %s/api/v1/artifacts/sha256/%s\n", base.c_str(), manifest->example.c_str());
  std::printf("  rebuilding %zu fixture artifact(s) of %zu distro(s); progress: curl -s %s/api/v1/stats\n\n",
              manifest->artifacts, manifest->distros.size(), base.c_str());
  std::fflush(stdout);
  RealKernelStage real;
  std::thread real_thread;
  if (const char* e = std::getenv("KMR_DEMO_REALKERNEL"); e != nullptr && std::string_view(e) == "0") {
    std::printf("kmrd demo: the real-kernel stage is off (KMR_DEMO_REALKERNEL=0)\n");
  } else {
    real.status = RealKernelStage::kBuilding;
    real_thread = std::thread([&d, &state, &real] { demo_real_kernel(d, state, real); });
  }
  demo_progress(d, real, base);
  if (real_thread.joinable()) real_thread.join();
}

// Demo defaults when no --config is given: a short retry loop and one attempt per job.
void apply_demo_defaults(Config& c) {
  c.state_dir = "kmr-demo-state";
  c.queue.lease_seconds = 300;
  c.queue.heartbeat_seconds = 10;
  c.queue.retry_backoff_seconds = 5;
  c.queue.max_build_attempts = 1;
  c.queue.max_repro_attempts = 1;
  c.sync_interval_seconds = 3600;
  c.verifier_id = "https://kmr-demo.invalid/rebuilder";
}

// The configuration from --config (or the demo's defaults) and the flags that override it;
// nullopt: go on, else the exit code (2 invalid, 0 after --check-config).
std::optional<int> load_daemon_config(const Flags& flags, Config& cfg) {
  if (!flags.config_file.empty()) {
    auto c = load_config(flags.config_file);
    if (!c) {
      std::fprintf(stderr, "kmrd: %s\n", c.error().to_string().c_str());
      return 2;
    }
    cfg = std::move(c).value();
  } else if (flags.demo) {
    apply_demo_defaults(cfg);
  }
  if (!flags.listen.empty()) cfg.http.listen = flags.listen;
  if (!flags.state.empty()) cfg.state_dir = flags.state;
  if (!flags.web.empty()) cfg.web_dir = flags.web;
  if (auto l = split_listen(cfg.http.listen); !l) {
    std::fprintf(stderr, "kmrd: %s\n", l.error().to_string().c_str());
    return 2;
  }
  if (flags.check) {
    std::printf("kmrd: configuration OK: listen %s, state %s, %zu repositories, %zu preregistered workers\n",
                cfg.http.listen.c_str(), cfg.state_dir.c_str(), cfg.repositories.size(), cfg.workers.size());
    return 0;
  }
  return std::nullopt;
}

// The demo's admin token: STATE/admin-token, created (random, 0600) on the first run.
void demo_admin_token(Config& cfg) {
  std::string tok_file = cfg.state_dir + "/admin-token";
  auto t = read_text_file(tok_file, 4096);
  if (t && t->size() >= 32) {
    cfg.admin_token = t->substr(0, t->find('\n'));
    return;
  }
  cfg.admin_token = random_hex(16);
  std::string line = cfg.admin_token + "\n";
  (void)write_file_atomic(tok_file, Bytes(reinterpret_cast<const std::uint8_t*>(line.data()), line.size()), 0600);
}

// The store (with the configured workers registered) and the attestor (its log checked
// against the store, pending verdicts signed); false (logged) when kmrd cannot start.
bool open_state(Daemon& d, const std::string& public_base) {
  auto store = Store::open(d.cfg.state_dir);
  if (!store) {
    spdlog::error("{}", store.error().to_string());
    return false;
  }
  d.store = std::move(store).value();
  for (const auto& w : d.cfg.workers) {
    auto r = d.store->register_worker(w.name, w.public_key, w.resource_classes, unix_now());
    if (!r) {
      spdlog::error("worker {}: {}", w.name, r.error().to_string());
      return false;
    }
  }
  auto att = Attestor::open(d.cfg.state_dir, d.cfg.signing_key, d.cfg.verifier_id, public_base);
  if (!att) {
    spdlog::error("attestations: {}", att.error().to_string());
    return false;
  }
  d.attestor = std::move(att).value();
  if (auto covered = check_log_covers_store(*d.store, *d.attestor); !covered) {
    spdlog::error("{}", covered.error().to_string());
    return false;
  }
  // Verdicts stored before a crash but not yet signed.
  if (auto pending = d.store->unattested_rebuilds(); pending)
    for (std::int64_t id : *pending) (void)d.attestor->attest_rebuild(*d.store, id, unix_now());
  return true;
}

// The API over the store, with the web UI from `web_dir`; a stored report is measured,
// attested and kicks the member indexer.
void make_api(Daemon& d, const std::string& web_dir) {
  StaticFiles files = StaticFiles::load(web_dir);
  if (files.size() == 0) spdlog::warn("web UI not found (looked for web/index.html); API only");
  d.api = std::make_unique<Api>(*d.store, d.cfg, d.metrics, d.attestor.get(), std::move(files));
  d.api->set_reply_key(&d.attestor->key());
  d.api->on_report = [&d](const ReportOutcome& o, const Report& r) {
    d.metrics.verification(static_cast<double>(r.duration_ms.value_or(0)) / 1000.0,
                           r.status != "verified" ? r.status : o.reproducible ? "reproducible" : "not-reproducible");
    auto a = d.attestor->attest_rebuild(*d.store, o.rebuild_id, unix_now());
    if (!a) spdlog::warn("attestation for build {}: {}", o.rebuild_id, a.error().to_string());
    (void)d.store->snapshot_stats(unix_now());
    if (d.members) d.members->kick();
    spdlog::info("build {} stored: {} {} {} -> job {}", o.rebuild_id, r.status, r.files.value_or("-"),
                 r.module_root.value_or("-"), o.job_state);
  };
}

// Binds the listener; the origin defaults to the bound address. False (logged) on failure.
bool start_http(Daemon& d, const std::pair<std::string, std::uint16_t>& hp, const std::string& scheme,
                const std::string& web_dir, const std::string& port_file) {
  auto http = HttpServer::create(*d.api, d.cfg.http);
  if (!http) {
    spdlog::error("{}", http.error().to_string());
    return false;
  }
  d.http = std::move(http).value();
  std::uint16_t port = d.http->port();
  if (d.cfg.origin.empty()) {
    std::string host = hp.first.find(':') != std::string::npos ? "[" + hp.first + "]" : hp.first;
    d.cfg.origin = scheme + "://" + host + ":" + std::to_string(port);
    if (hp.first == "0.0.0.0" || hp.first == "::")
      spdlog::warn("listening on all addresses without \"origin\": workers must use {} as their server URL",
                   d.cfg.origin);
  }
  spdlog::info("workers: server {} server_key {}", d.cfg.origin, to_hex(d.attestor->key().raw_public()));
  spdlog::info("kmrd {} listening on {}://{}:{} (state {}, web {})", kVersion, scheme, hp.first, port,
               d.cfg.state_dir, web_dir.empty() ? "-" : web_dir);
  if (!port_file.empty()) {
    std::string p = std::to_string(port) + "\n";
    (void)write_file_atomic(port_file, Bytes(reinterpret_cast<const std::uint8_t*>(p.data()), p.size()));
  }
  return true;
}

// Runs the member indexer, the background loop and (demo) the demo until SIGTERM/SIGINT,
// then stops them and the spawned workers.
void serve(Daemon& d, bool demo) {
  d.members = std::make_unique<MemberIndexer>(*d.store, d.cfg.state_dir + "/tmp/members");
  d.members->start();
  d.members->kick();
  std::thread bg([&d] { d.background(); });
  std::thread demo_thread;
  const std::uint16_t port = d.http->port();
  if (demo) demo_thread = std::thread([&d, port] { run_demo(d, port); });
  d.http->run([&d] {
    d.stopping = true;
    d.stop_children();
  });
  d.stopping = true;
  d.stop_children();
  bg.join();
  d.members->stop();
  if (demo_thread.joinable()) demo_thread.join();
  d.reap_children();
}

int main_impl(int argc, char** argv) {
  Flags flags;
  if (auto code = parse_flags(argc, argv, flags)) return *code;
  Daemon d;
  if (auto code = load_daemon_config(flags, d.cfg)) return *code;
  setup_logging(d.cfg);
  std::error_code ec;
  fs::create_directories(d.cfg.state_dir, ec);
  d.cfg.state_dir = fs::absolute(d.cfg.state_dir, ec).string();
  if (flags.demo && d.cfg.admin_token.empty()) demo_admin_token(d.cfg);
  auto hp = split_listen(d.cfg.http.listen).value();
  std::string scheme = d.cfg.http.tls_cert.empty() ? "http" : "https";
  if (!open_state(d, scheme + "://" + hp.first + ":" + std::to_string(hp.second))) return 2;
  std::string web_dir = find_web_dir(d.cfg.web_dir);
  make_api(d, web_dir);
  if (!start_http(d, hp, scheme, web_dir, flags.port_file)) return 2;
  serve(d, flags.demo);
  spdlog::info("kmrd stopped");
  return 0;
}

}  // namespace
}  // namespace kmr::server

int main(int argc, char** argv) { return kmr::server::run_program("kmrd", kmr::server::main_impl, argc, argv); }

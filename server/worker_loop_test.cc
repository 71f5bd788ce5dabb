// The worker loop against a real kmrd in this process (store, API, the real
// HTTP server on a loopback port, signed requests and replies) and a real
// engine command (a shell script answering like `kmr rebuild --json`).
#include "server/worker_loop.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "attest/keys.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "server/api.h"
#include "server/attestor.h"
#include "server/http_server.h"
#include "server/store.h"

namespace kmr::server {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// An engine: answers like `kmr rebuild --json` for the package files it is
// given (the last arguments). $ENGINE_SLEEP seconds first; its pid in
// $ENGINE_PID_FILE when set.
constexpr const char* kEngine = R"SH(#!/bin/sh
[ -n "$ENGINE_PID_FILE" ] && echo $$ > "$ENGINE_PID_FILE"
[ -n "$ENGINE_SLEEP" ] && sleep "$ENGINE_SLEEP"
for last; do :; done
sum=$(sha256sum "$last" | cut -d' ' -f1)
log="$KMR_REBUILD_DIR/engine.log"
mkdir -p "$KMR_REBUILD_DIR" && echo "engine log line" > "$log"
printf '{"status":"verdict","files":"identical","module_root":"match","shipped_root":"%s","rebuilt_root":"%s",' "$(printf 'ab%.0s' $(seq 32))" "$(printf 'ab%.0s' $(seq 32))"
printf '"levels":6,"environment":{"backend":"test"},"differing":[],"rebuilt":[{"name":"%s","sha256":"%s"}],"log":"%s"}\n' "$(basename "$last")" "$sum" "$log"
)SH";

// kmrd: store, attestor (its key signs replies), API and the HTTP server.
class Kmrd {
 public:
  explicit Kmrd(const std::string& dir) {
    config_.state_dir = dir + "/state";
    config_.http.listen = "127.0.0.1:0";
    store_ = std::move(Store::open(config_.state_dir)).value();
    attestor_ = std::move(Attestor::open(config_.state_dir, "", "https://test.invalid/kmr", "http://127.0.0.1")).value();
    api_ = std::make_unique<Api>(*store_, config_, metrics_, attestor_.get(), StaticFiles::load(""));
    api_->set_reply_key(&attestor_->key());
    start();
    config_.origin = url();
  }
  ~Kmrd() { stop(); }

  void start() {
    if (port_ != 0) config_.http.listen = "127.0.0.1:" + std::to_string(port_);
    auto s = HttpServer::create(*api_, config_.http);
    ASSERT_TRUE(s.has_value()) << s.error().to_string();
    server_ = std::move(s).value();
    port_ = server_->port();
    thread_ = std::thread([this] { server_->run([] {}); });
  }
  void stop() {
    if (!server_) return;
    server_->stop();
    thread_.join();
    server_.reset();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  Store& store() { return *store_; }
  const attest::Ed25519Key& key() const { return attestor_->key(); }

  json get(const std::string& target) {
    HttpRequest r{"GET", target, {}, "", "127.0.0.1"};
    HttpResponse resp = api_->handle(r);
    return json::parse(resp.body, nullptr, false);
  }
  // The one job's state and worker from /api/v1/queue, which lists queued and
  // running jobs only ("" when the job is done).
  std::pair<std::string, std::string> job_state() {
    json q = get("/api/v1/queue");
    if (!q.is_object() || !q["items"].is_array() || q["items"].empty()) return {"", ""};
    const json& i = q["items"][0];
    return {i.value("state", ""), i["worker"].is_string() ? i["worker"].get<std::string>() : ""};
  }

 private:
  Config config_;
  Metrics metrics_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Attestor> attestor_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

// Records every wait instead of sleeping; can act on the n-th wait.
class RecordingClock : public Clock {
 public:
  void sleep(double seconds, const std::atomic<bool>& stop) override {
    waits.push_back(seconds);
    if (on_wait) on_wait(waits.size());
    (void)stop;
  }
  std::vector<double> waits;
  std::function<void(std::size_t)> on_wait;
};

class WorkerLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.emplace(std::move(TempDir::create("worker-loop")).value());
    kmrd_ = std::make_unique<Kmrd>(dir_->path());
    // One package file, served by file:// URL.
    package_ = dir_->path() + "/linux-1-x86_64.pkg.tar.zst";
    write_text(package_, "a kernel package\n");
    sha_ = to_hex(std::move(sha256_file(package_)).value());
    auto repo = kmrd_->store().upsert_repository("arch", "arch", "file:///x");
    ASSERT_TRUE(repo.has_value());
    std::vector<ImportArtifact> arts = {
        {"linux-1", "linux", "1", "x86_64", "linux-1-x86_64.pkg.tar.zst", "file://" + package_, sha_, 17}};
    ASSERT_TRUE(kmrd_->store().import_artifacts(*repo, "arch", arts, unix_now()).has_value());
    key_.emplace(std::move(attest::Ed25519Key::generate()).value());
    ASSERT_TRUE(kmrd_->store().register_worker("w1", to_hex(key_->raw_public()), {"default"}, unix_now()).has_value());
    engine_ = dir_->path() + "/engine.sh";
    write_text(engine_, kEngine);
    cfg_.work_dir = dir_->path() + "/work";
    cfg_.rebuild_command = {"/bin/sh", engine_};
    cfg_.rebuild_timeout_seconds = 120;
    policy_.exit_when_idle = true;
    ::unsetenv("ENGINE_SLEEP");
    ::unsetenv("ENGINE_PID_FILE");
  }

  SignedCoordinator coordinator(const std::string& url) {
    auto server_key = attest::Ed25519Key::from_raw_public(kmrd_->key().raw_public());
    return SignedCoordinator(url, std::move(attest::Ed25519Key::from_pem(key_->private_pem().value())).value(),
                             std::move(server_key).value());
  }

  std::optional<TempDir> dir_;
  std::unique_ptr<Kmrd> kmrd_;
  std::string package_, sha_, engine_;
  std::optional<attest::Ed25519Key> key_;
  WorkerConfig cfg_;
  LoopPolicy policy_;
  std::atomic<bool> stop_{false};
};

TEST_F(WorkerLoopTest, ClaimRunReport) {
  auto c = coordinator(kmrd_->url());
  EngineRunner runner(cfg_);
  RecordingClock clock;
  EXPECT_EQ(run_worker_loop(c, runner, clock, policy_, stop_), 0);
  EXPECT_TRUE(clock.waits.empty());
  EXPECT_EQ(kmrd_->job_state().first, "") << "the job is neither queued nor running";
  json a = kmrd_->get("/api/v1/artifacts/sha256/" + sha_);
  ASSERT_TRUE(a["verdicts"].is_object()) << a.dump();
  EXPECT_EQ(a["verdicts"]["files"], "identical");
  EXPECT_EQ(a["verdicts"]["module_root"], "match");
  EXPECT_EQ(a["verdicts"]["reproducible"], true);
  // The job's work directory is gone.
  EXPECT_TRUE(std::filesystem::is_empty(cfg_.work_dir));
}

TEST_F(WorkerLoopTest, BacksOffWhileKmrdIsDown) {
  const std::string url = kmrd_->url();
  kmrd_->stop();
  auto c = coordinator(url);
  EngineRunner runner(cfg_);
  RecordingClock clock;
  policy_.error_backoff_seconds = 7;
  clock.on_wait = [this](std::size_t n) {
    if (n == 3) stop_ = true;
  };
  EXPECT_EQ(run_worker_loop(c, runner, clock, policy_, stop_), 0);
  EXPECT_EQ(clock.waits, (std::vector<double>{7, 7, 7}));
}

// The engine finishes while kmrd is down: the report is retried with growing
// waits and lands once kmrd is back.
TEST_F(WorkerLoopTest, ReportRetriesUntilKmrdIsBack) {
  auto c = coordinator(kmrd_->url());
  struct StopsKmrd : RebuildRunner {
    EngineRunner inner;
    Kmrd& kmrd;
    StopsKmrd(WorkerConfig cfg, Kmrd& k) : inner(std::move(cfg)), kmrd(k) {}
    json run(const json& job, const std::atomic<bool>& stop) override {
      json r = inner.run(job, stop);
      kmrd.stop();
      return r;
    }
  } runner(cfg_, *kmrd_);
  RecordingClock clock;
  policy_.error_backoff_seconds = 4;
  policy_.max_backoff_seconds = 10;
  clock.on_wait = [this](std::size_t n) {
    if (n == 3) kmrd_->start();
  };
  EXPECT_EQ(run_worker_loop(c, runner, clock, policy_, stop_), 0);
  EXPECT_EQ(clock.waits, (std::vector<double>{4, 8, 10}));
  EXPECT_EQ(kmrd_->job_state().first, "") << "the job is neither queued nor running";
  EXPECT_EQ(kmrd_->get("/api/v1/artifacts/sha256/" + sha_)["verdicts"]["files"], "identical");
}

// kmrd refuses the report (400): not retried; the job stays leased.
TEST_F(WorkerLoopTest, RefusedReportIsNotRetried) {
  auto c = coordinator(kmrd_->url());
  struct BadStatus : RebuildRunner {
    EngineRunner inner;
    explicit BadStatus(WorkerConfig cfg) : inner(std::move(cfg)) {}
    json run(const json& job, const std::atomic<bool>& stop) override {
      json r = inner.run(job, stop);
      r["status"] = "rebuilt-somehow";
      return r;
    }
  } runner(cfg_);
  RecordingClock clock;
  EXPECT_EQ(run_worker_loop(c, runner, clock, policy_, stop_), 0);
  EXPECT_TRUE(clock.waits.empty());
  EXPECT_EQ(kmrd_->job_state(), std::make_pair(std::string("running"), std::string("w1")));
  EXPECT_TRUE(kmrd_->get("/api/v1/artifacts/sha256/" + sha_)["verdicts"].is_null());
}

TEST_F(WorkerLoopTest, UnknownWorkerEndsWithExitTwo) {
  auto other = std::move(attest::Ed25519Key::generate()).value();
  SignedCoordinator c(kmrd_->url(), std::move(other),
                      std::move(attest::Ed25519Key::from_raw_public(kmrd_->key().raw_public())).value());
  EngineRunner runner(cfg_);
  RecordingClock clock;
  policy_.exit_when_idle = false;
  EXPECT_EQ(run_worker_loop(c, runner, clock, policy_, stop_), 2);
  EXPECT_EQ(kmrd_->job_state().first, "queued");
}

// A reply not signed by the pinned kmrd key is not trusted: the claim counts
// as failed and nothing runs.
TEST_F(WorkerLoopTest, ForgedServerKeyIsAnError) {
  auto wrong = std::move(attest::Ed25519Key::generate()).value();
  SignedCoordinator c(kmrd_->url(), std::move(attest::Ed25519Key::from_pem(key_->private_pem().value())).value(),
                      std::move(attest::Ed25519Key::from_raw_public(wrong.raw_public())).value());
  EngineRunner runner(cfg_);
  RecordingClock clock;
  clock.on_wait = [this](std::size_t) { stop_ = true; };
  EXPECT_EQ(run_worker_loop(c, runner, clock, policy_, stop_), 0);
  EXPECT_EQ(clock.waits, (std::vector<double>{policy_.error_backoff_seconds}));
}

// SIGTERM while the engine runs: the worker process kills the engine, sends
// no report (kmrd keeps the lease until it expires) and exits 0 promptly.
TEST_F(WorkerLoopTest, SigtermStopsTheEngineAndTheLoop) {
  const std::string pid_file = dir_->path() + "/engine.pid";
  ::setenv("ENGINE_SLEEP", "300", 1);
  ::setenv("ENGINE_PID_FILE", pid_file.c_str(), 1);
  const std::string url = kmrd_->url();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    static std::atomic<bool> stop{false};
    install_stop_signals(&stop);
    auto c = coordinator(url);
    EngineRunner runner(cfg_);
    SteadyClock clock;
    policy_.exit_when_idle = false;
    ::_exit(run_worker_loop(c, runner, clock, policy_, stop));
  }
  pid_t engine = 0;
  for (int i = 0; i < 300 && engine == 0; ++i) {
    std::this_thread::sleep_for(50ms);
    auto t = read_text_file(pid_file, 64);
    if (t && !t->empty()) engine = static_cast<pid_t>(std::stol(*t));
  }
  ASSERT_GT(engine, 0) << "the engine never started";
  EXPECT_EQ(kmrd_->job_state(), std::make_pair(std::string("running"), std::string("w1")));
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(child, SIGTERM), 0);
  int status = 0;
  pid_t w = 0;
  for (int i = 0; i < 200 && w == 0; ++i) {
    w = ::waitpid(child, &status, WNOHANG);
    if (w == 0) std::this_thread::sleep_for(50ms);
  }
  if (w == 0) ::kill(child, SIGKILL);
  ASSERT_EQ(w, child) << "kmr-worker loop did not stop within 10 s of SIGTERM";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_NE(::kill(engine, 0), 0) << "the engine is still running";
  EXPECT_EQ(kmrd_->job_state(), std::make_pair(std::string("running"), std::string("w1")));
  EXPECT_TRUE(kmrd_->get("/api/v1/artifacts/sha256/" + sha_)["verdicts"].is_null());
}

// The report the worker sends for a fixed engine result, byte for byte as the
// committed golden file (made by the worker before the report became one wire
// type). The engine results are real `kmr rebuild --json` outputs; the test
// points their log and rebuilt file at files of its own. KMR_GOLDEN_DIR=DIR
// rewrites the goldens into DIR.
constexpr const char* kGoldenDir = "rebuilder/verdict/testdata/worker_report";
constexpr const char* kGoldenEngine = R"SH(#!/bin/sh
printf '%s\n' "$@" > "$ARGV_OUT"
mkdir -p "$KMR_REBUILD_DIR/out" && cp "$REBUILT_SRC" "$KMR_REBUILD_DIR/out/$REBUILT_NAME"
cat "$ENGINE_OUT"
)SH";

TEST_F(WorkerLoopTest, ReportMatchesGolden) {
  const std::string engine = dir_->path() + "/golden-engine.sh";
  write_text(engine, kGoldenEngine);
  cfg_.rebuild_command = {"/bin/sh", engine};
  const std::string name = "linux-1-x86_64.pkg.tar.zst";
  for (const std::string c : {"verdict", "environment_unavailable", "different"}) {
    SCOPED_TRACE(c);
    auto fixture = read_text_file(std::string(kGoldenDir) + "/engine_" + c + ".json", 1 << 20);
    ASSERT_TRUE(fixture.has_value()) << fixture.error().to_string();
    json out = json::parse(*fixture);
    const std::string log = dir_->path() + "/engine-" + c + ".log";
    write_text(log, "build log of " + c + "\n");
    out["log"] = log;
    const std::string rebuilt = dir_->path() + "/rebuilt-" + c;
    write_text(rebuilt, c == "different" ? "rebuilt bytes\n" : "a kernel package\n");
    out["rebuilt"] = json::array({{{"name", name}, {"sha256", to_hex(std::move(sha256_file(rebuilt)).value())}}});
    if (c == "environment_unavailable") out["rebuilt"] = json::array();
    if (c == "different") {
      const std::string diff = dir_->path() + "/diff.json";
      write_text(diff, R"({"source1":"a","source2":"b","details":[{"source1":"x","unified_diff":"@@ -1 +1 @@"}]})");
      out["diff_json"] = diff;
    }
    const std::string engine_out = dir_->path() + "/engine-out.json";
    write_text(engine_out, out.dump(2));
    ::setenv("ENGINE_OUT", engine_out.c_str(), 1);
    ::setenv("REBUILT_SRC", rebuilt.c_str(), 1);
    ::setenv("REBUILT_NAME", name.c_str(), 1);
    const json job = {{"id", 7},
                      {"lease", "lease-7"},
                      {"distro", "proxmox"},
                      {"artifacts", {{{"url", "file://" + package_}, {"sha256", sha_}, {"filename", name}}}}};
    const std::string argv_out = dir_->path() + "/argv";
    ::setenv("ARGV_OUT", argv_out.c_str(), 1);
    EngineRunner runner(cfg_);
    json report = runner.run(job, stop_);
    // The engine's command line is `kmr rebuild`'s: options, then the package files.
    EXPECT_EQ(read_text_file(argv_out, 4096).value_or(""),
              "--json\n--backend\nproxmox\n--keep\n--work-dir\n" + cfg_.work_dir + "/job-7/engine\n" + package_ + "\n");
    ASSERT_TRUE(report.contains("duration_ms"));
    report["duration_ms"] = 0;  // the one field that depends on the clock
    const std::string got = report.dump(2) + "\n";
    const std::string golden = std::string(kGoldenDir) + "/report_" + c + ".json";
    if (const char* d = std::getenv("KMR_GOLDEN_DIR")) write_text(std::string(d) + "/report_" + c + ".json", got);
    auto want = read_text_file(golden, 1 << 20);
    ASSERT_TRUE(want.has_value()) << want.error().to_string();
    EXPECT_EQ(got, *want);
  }
}

TEST(ValidJob, RefusesMalformedClaims) {
  const std::string h(64, 'a');
  json good = {{"id", 1}, {"lease", "L"}, {"artifacts", {{{"url", "file:///x"}, {"sha256", h}}}}};
  EXPECT_TRUE(valid_job(good));
  for (const char* k : {"id", "lease", "artifacts"}) {
    json j = good;
    j.erase(k);
    EXPECT_FALSE(valid_job(j)) << k;
  }
  json j = good;
  j["artifacts"] = json::array();
  EXPECT_FALSE(valid_job(j));
  j = good;
  j["artifacts"][0]["sha256"] = "abc";
  EXPECT_FALSE(valid_job(j));
  j = good;
  j["id"] = "1";
  EXPECT_FALSE(valid_job(j));
  j = good;
  j["heartbeat_seconds"] = "60";
  EXPECT_FALSE(valid_job(j));
  EXPECT_FALSE(valid_job(json::array()));
}

}  // namespace
}  // namespace kmr::server

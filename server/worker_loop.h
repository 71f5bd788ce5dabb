#pragma once

// kmr-worker's job loop as a library: claim a job from kmrd, run the rebuild
// engine on it (heartbeating meanwhile), report the result; back off on
// errors and stop cleanly when asked (SIGTERM). Three small interfaces keep
// it testable against a real kmrd: the coordinator API (SignedCoordinator
// talks to kmrd over signed HTTP), the rebuild runner (EngineRunner runs
// `kmr rebuild --json` as a subprocess) and the clock that waits.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attest/keys.h"
#include "rebuilder/base/result.h"

namespace kmr::server {

struct WorkerConfig {
  std::string server, server_key, key, name, work_dir = "/var/tmp/kmr-worker";
  std::vector<std::string> rebuild_command;
  std::vector<std::string> resource_classes;
  double idle_seconds = 10, error_backoff_seconds = 5;
  std::int64_t rebuild_timeout_seconds = 4 * 3600;
  std::uint64_t max_log_bytes = 8 << 20;
  bool exit_when_idle = false;
};

// A reply of kmrd's worker API: HTTP status and JSON body ({} when not JSON).
struct CoordinatorReply {
  int status = 0;
  nlohmann::json body;
};

// kmrd's worker API as the loop uses it. A transport error or an unverifiable
// reply is an Error; any HTTP status is a reply.
class Coordinator {
 public:
  virtual ~Coordinator() = default;
  virtual Result<CoordinatorReply> claim(const std::vector<std::string>& resource_classes) = 0;
  virtual Result<CoordinatorReply> heartbeat(std::int64_t job, const std::string& lease) = 0;
  virtual Result<CoordinatorReply> report(std::int64_t job, const nlohmann::json& report) = 0;
};

// Signed requests to kmrd; a reply counts only when kmrd's signature over it
// (bound to the request's nonce and the server origin) verifies with the
// pinned key.
class SignedCoordinator : public Coordinator {
 public:
  SignedCoordinator(std::string base, attest::Ed25519Key key, attest::Ed25519Key server_key);
  Result<CoordinatorReply> claim(const std::vector<std::string>& resource_classes) override;
  Result<CoordinatorReply> heartbeat(std::int64_t job, const std::string& lease) override;
  Result<CoordinatorReply> report(std::int64_t job, const nlohmann::json& report) override;
  std::string public_hex() const;

 private:
  Result<CoordinatorReply> post(const std::string& path, const nlohmann::json& body, std::chrono::milliseconds timeout);
  std::string base_;
  attest::Ed25519Key key_;
  attest::Ed25519Key server_key_;
};

// Runs one claimed job (validated by valid_job) and returns the report body
// for kmrd. `stop` set while it runs: the engine is killed and the report is
// marked interrupted (run_worker_loop then does not send it).
class RebuildRunner {
 public:
  virtual ~RebuildRunner() = default;
  virtual nlohmann::json run(const nlohmann::json& job, const std::atomic<bool>& stop) = 0;
};

// Fetches the job's artifacts and sources, runs the engine command
// (`kmr rebuild --json ...`), and translates its result into the report.
class EngineRunner : public RebuildRunner {
 public:
  explicit EngineRunner(WorkerConfig cfg) : cfg_(std::move(cfg)) {}
  nlohmann::json run(const nlohmann::json& job, const std::atomic<bool>& stop) override;

 private:
  WorkerConfig cfg_;
};

// Waits; returns early when `stop` is set.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual void sleep(double seconds, const std::atomic<bool>& stop) = 0;
};

class SteadyClock : public Clock {
 public:
  void sleep(double seconds, const std::atomic<bool>& stop) override;
};

struct LoopPolicy {
  std::vector<std::string> resource_classes;
  double idle_seconds = 10;           // queue empty, or 429 (too many leases)
  double error_backoff_seconds = 5;   // a failed claim; report retries wait n times this
  double max_backoff_seconds = 30;
  int report_attempts = 20;
  bool exit_when_idle = false;
};

// The fields run() and the loop rely on, with their types.
bool valid_job(const nlohmann::json& job);

// The key of an interrupted report (never sent: the lease expires and kmrd
// hands the job out again).
inline constexpr const char* kInterruptedKey = "_interrupted";

// claim -> run (heartbeats every job.heartbeat_seconds) -> report, until
// `stop` or, with exit_when_idle, an empty queue. Returns the exit code:
// 0 stopped or idle, 2 when kmrd refuses the worker (401/403 on claim).
int run_worker_loop(Coordinator& coordinator, RebuildRunner& runner, Clock& clock, const LoopPolicy& policy,
                    const std::atomic<bool>& stop);

// SIGTERM and SIGINT set `*stop` (one flag per process).
void install_stop_signals(std::atomic<bool>* stop);

}  // namespace kmr::server

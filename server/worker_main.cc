// kmr-worker: pulls rebuild jobs from kmrd over signed HTTP, runs the rebuild
// engine (`kmr rebuild --json`, a subprocess so an engine crash cannot take the
// worker down), heartbeats while it runs, and reports the verdict, log and
// rebuilt artifact hashes. The loop is server/worker_loop.h; this file reads
// the flags, the configuration and the keys.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "attest/keys.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/flags.h"
#include "rebuilder/base/hex.h"
#include "server/program.h"
#include "server/worker_loop.h"

namespace kmr::server {
namespace {

using nlohmann::json;

std::atomic<bool> g_stop{false};

constexpr const char* kDescription =
    "       kmr-worker --server URL --key KEY.pem [options]\n"
    "       kmr-worker --gen-key KEY.pem\n\n"
    "Pulls rebuild jobs from kmrd, runs `kmr rebuild --json` for each, reports the verdict.\n"
    "Every request is signed with the worker's Ed25519 key (register its public key with\n"
    "POST /api/v1/admin/workers or the \"workers\" list of kmrd's config).";

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
  for (const auto& cand : {self.parent_path() / "../rebuilder/cli/kmr", self.parent_path() / "kmr"}) {
    if (std::filesystem::exists(cand, ec)) return {std::filesystem::weakly_canonical(cand, ec).string(), "rebuild"};
  }
  (void)argv0;
  return {"kmr", "rebuild"};
}

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
  SignedCoordinator coordinator(cfg.server, std::move(key).value(), std::move(server_key).value());
  spdlog::info("kmr-worker {} key {} polling {}", cfg.name, coordinator.public_hex(), cfg.server);
  EngineRunner runner(cfg);
  SteadyClock clock;
  LoopPolicy policy;
  policy.resource_classes = cfg.resource_classes;
  policy.idle_seconds = cfg.idle_seconds;
  policy.error_backoff_seconds = cfg.error_backoff_seconds;
  policy.exit_when_idle = cfg.exit_when_idle;
  return run_worker_loop(coordinator, runner, clock, policy, g_stop);
}

struct Flags {
  std::string config_file, gen_key, cmdline;
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
      .string("--name", "NAME", &cfg.name, "the worker's name in logs (default worker)");
  if (auto code = parse_program_flags(p, argc, argv)) return code;
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
  install_stop_signals(&g_stop);
  return run_worker(cfg);
}

}  // namespace
}  // namespace kmr::server

int main(int argc, char** argv) { return kmr::server::run_program("kmr-worker", kmr::server::main_impl, argc, argv); }

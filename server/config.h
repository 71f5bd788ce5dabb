#pragma once

// kmrd configuration: one JSON file (documented in deploy/kmrd.example.json
// and /work/notes/readme-server.md). Unknown keys are errors, so typos do not
// silently fall back to defaults.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "rebuilder/base/result.h"
#include "rebuilder/distros/common/package_filter.h"
#include "server/queue_policy.h"

namespace kmr::server {

struct RepositoryConfig {
  std::string name;
  std::string distro;                      // arch | nixos | suse | proxmox | debian
  std::string url;                         // file:// or http(s)://
  std::string format = "kmr-import";       // kmr-import | fixtures-manifest | arch | nix | rpm-md | apt | rebuilderd
  std::vector<std::string> packages;       // name patterns (glob: * and ?)
  std::vector<std::string> architectures;  // empty = all
  std::vector<std::string> trusted_keys;   // keyring files / public keys handed to the reader
  std::string resource_class = "default";
  // Accept a remote (non-file://) index without a verified signature. Shown in the API and UI.
  bool insecure_unsigned = false;
  // Where a package's build description and sources live: URL templates and
  // values per distro (rebuilder/distros/source_templates.h), the distro's
  // real-world defaults filled in; an empty value turns one off.
  std::map<std::string, std::string> sources;
};

struct HttpConfig {
  std::string listen = "127.0.0.1:8080";
  int threads = 2;
  std::int64_t read_timeout_ms = 30000;    // whole request (headers + body) per read
  std::int64_t write_timeout_ms = 30000;
  std::int64_t idle_timeout_ms = 60000;    // keep-alive wait for the next request
  std::uint32_t max_header_bytes = 8192;
  std::uint64_t max_json_body = 1 << 20;
  std::uint64_t max_report_body = 64ull << 20;
  std::string tls_cert, tls_key;           // both set: HTTPS only
  std::int64_t shutdown_grace_ms = 10000;
  int max_connections = 1024;                        // further connections are refused (503) until one ends
  std::uint64_t max_inflight_body_bytes = 256ull << 20;  // request bodies held at once, all connections
  // Handlers that may block run on this many threads (0: four per core, at least 8); at most
  // blocking_queue requests wait beyond them, further ones are answered 503 with Retry-After.
  int blocking_threads = 0;
  std::uint32_t blocking_queue = 256;
  std::uint64_t doc_cache_bytes = 64ull << 20;  // serialized artifact answers kept in memory
};

struct Config {
  std::string state_dir = "/var/lib/kmrd";
  std::string web_dir;                     // empty: look for web/ next to the binary or in the cwd
  std::string admin_token;                 // or admin_token_file
  std::string log_format = "text";         // text | json
  std::string log_level = "info";
  std::string verifier_id = "https://kmr.invalid/rebuilder";
  // kmrd's URL as workers address it (their "server"); bound into every worker request and
  // reply signature. Empty: scheme://listen-address:bound-port, set at start.
  std::string origin;
  std::string signing_key;                 // attestation key (PEM, 0600); generated in state_dir if empty
  HttpConfig http;
  QueuePolicy queue;
  std::int64_t sync_interval_seconds = 300;
  std::int64_t max_clock_skew_seconds = 300;
  std::int64_t worker_online_seconds = 300;
  std::vector<RepositoryConfig> repositories;
  struct PreWorker {
    std::string name, public_key;
    std::vector<std::string> resource_classes{"default"};
  };
  std::vector<PreWorker> workers;           // registered at start (in addition to the admin API)
};

Result<Config> parse_config(std::string_view json_text, const std::string& origin);
Result<Config> load_config(const std::string& path);
// Splits "HOST:PORT" ("[::1]:80" too).
Result<std::pair<std::string, std::uint16_t>> split_listen(const std::string& listen);
using distros::glob_match;  // rebuilder/distros/common/package_filter.h
// A package the repository follows: its name matches one of `packages` (or
// the list is empty) and its architecture is listed (or none are).
bool repository_wants(const RepositoryConfig& rc, std::string_view name, std::string_view arch);

}  // namespace kmr::server

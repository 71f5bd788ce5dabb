#include "server/config.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "rebuilder/base/file.h"
#include "rebuilder/distros/source_templates.h"

namespace kmr::server {

using nlohmann::json;

namespace {

Result<void> check_keys(const json& obj, const std::set<std::string>& allowed, const std::string& where) {
  if (!obj.is_object()) return malformed(where + ": expected an object");
  for (auto it = obj.begin(); it != obj.end(); ++it)
    if (!allowed.count(it.key())) return malformed(where + ": unknown key \"" + it.key() + "\"");
  return ok();
}

template <typename T>
Result<void> get(const json& obj, const char* key, T& out, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return ok();
  try {
    out = it->get<T>();
  } catch (const std::exception&) {
    return malformed(where + "." + key + ": wrong type");
  }
  return ok();
}

}  // namespace

bool repository_wants(const RepositoryConfig& rc, std::string_view name, std::string_view arch) {
  const bool name_ok = rc.packages.empty() || std::any_of(rc.packages.begin(), rc.packages.end(),
                                                          [&](const std::string& p) { return glob_match(p, name); });
  const bool arch_ok = rc.architectures.empty() ||
                       std::find(rc.architectures.begin(), rc.architectures.end(), arch) != rc.architectures.end();
  return name_ok && arch_ok;
}

Result<std::pair<std::string, std::uint16_t>> split_listen(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) return malformed("listen address \"" + listen + "\" is not HOST:PORT");
  std::string host = listen.substr(0, colon), port = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    return malformed("listen address \"" + listen + "\" has a bad port");
  unsigned long p = std::stoul(port);
  if (p > 65535) return malformed("listen address \"" + listen + "\" has a bad port");
  return std::make_pair(host, static_cast<std::uint16_t>(p));
}

namespace {

// The top level's plain keys: paths, identity, origin and intervals.
Result<void> parse_top_level(const json& j, Config& c, const std::string& origin) {
  KMR_TRY(check_keys(j, {"state_dir", "web_dir", "admin_token", "admin_token_file", "log", "verifier_id", "signing_key", "origin",
                         "http", "queue", "sync_interval_seconds", "max_clock_skew_seconds", "worker_online_seconds",
                         "repositories", "workers", "$comment"},
                     origin));
  KMR_TRY(get(j, "state_dir", c.state_dir, origin));
  KMR_TRY(get(j, "web_dir", c.web_dir, origin));
  KMR_TRY(get(j, "admin_token", c.admin_token, origin));
  KMR_TRY(get(j, "verifier_id", c.verifier_id, origin));
  KMR_TRY(get(j, "signing_key", c.signing_key, origin));
  KMR_TRY(get(j, "origin", c.origin, origin));
  while (!c.origin.empty() && c.origin.back() == '/') c.origin.pop_back();
  if (!c.origin.empty() && c.origin.rfind("http://", 0) != 0 && c.origin.rfind("https://", 0) != 0)
    return malformed(origin + ".origin: must start with http:// or https://");
  if (c.origin.find_first_of("\n\r ") != std::string::npos) return malformed(origin + ".origin: no whitespace");
  KMR_TRY(get(j, "sync_interval_seconds", c.sync_interval_seconds, origin));
  KMR_TRY(get(j, "max_clock_skew_seconds", c.max_clock_skew_seconds, origin));
  KMR_TRY(get(j, "worker_online_seconds", c.worker_online_seconds, origin));
  if (j.contains("admin_token_file")) {
    std::string f;
    KMR_TRY(get(j, "admin_token_file", f, origin));
    KMR_ASSIGN_OR_RETURN(std::string tok, read_text_file(f, 4096));
    while (!tok.empty() && (tok.back() == '\n' || tok.back() == '\r' || tok.back() == ' ')) tok.pop_back();
    c.admin_token = tok;
  }
  return ok();
}

Result<void> parse_log(const json& l, Config& c, const std::string& w) {
  KMR_TRY(check_keys(l, {"format", "level"}, w));
  KMR_TRY(get(l, "format", c.log_format, w));
  KMR_TRY(get(l, "level", c.log_level, w));
  if (c.log_format != "text" && c.log_format != "json") return malformed(w + ".format: text or json");
  return ok();
}

Result<void> parse_http(const json& h, HttpConfig& http, const std::string& w) {
  KMR_TRY(check_keys(h, {"listen", "threads", "read_timeout_ms", "write_timeout_ms", "idle_timeout_ms",
                         "max_header_bytes", "max_json_body", "max_report_body", "tls_cert", "tls_key",
                         "shutdown_grace_ms", "max_connections", "max_inflight_body_bytes", "blocking_threads",
                         "blocking_queue", "doc_cache_bytes"},
                     w));
  KMR_TRY(get(h, "listen", http.listen, w));
  KMR_TRY(get(h, "threads", http.threads, w));
  KMR_TRY(get(h, "read_timeout_ms", http.read_timeout_ms, w));
  KMR_TRY(get(h, "write_timeout_ms", http.write_timeout_ms, w));
  KMR_TRY(get(h, "idle_timeout_ms", http.idle_timeout_ms, w));
  KMR_TRY(get(h, "max_header_bytes", http.max_header_bytes, w));
  KMR_TRY(get(h, "max_json_body", http.max_json_body, w));
  KMR_TRY(get(h, "max_report_body", http.max_report_body, w));
  KMR_TRY(get(h, "tls_cert", http.tls_cert, w));
  KMR_TRY(get(h, "tls_key", http.tls_key, w));
  KMR_TRY(get(h, "shutdown_grace_ms", http.shutdown_grace_ms, w));
  KMR_TRY(get(h, "max_connections", http.max_connections, w));
  KMR_TRY(get(h, "max_inflight_body_bytes", http.max_inflight_body_bytes, w));
  KMR_TRY(get(h, "blocking_threads", http.blocking_threads, w));
  KMR_TRY(get(h, "blocking_queue", http.blocking_queue, w));
  KMR_TRY(get(h, "doc_cache_bytes", http.doc_cache_bytes, w));
  if (http.blocking_threads < 0 || http.blocking_threads > 1024) return malformed(w + ".blocking_threads: 0..1024");
  if (http.max_connections < 1) return malformed(w + ".max_connections: at least 1");
  if (http.max_inflight_body_bytes < http.max_report_body || http.max_inflight_body_bytes < http.max_json_body)
    return malformed(w + ".max_inflight_body_bytes: at least max_report_body and max_json_body");
  if (http.tls_cert.empty() != http.tls_key.empty()) return malformed(w + ": tls_cert and tls_key go together");
  if (http.threads < 1 || http.threads > 256) return malformed(w + ".threads: 1..256");
  return ok();
}

Result<void> parse_queue(const json& q, QueuePolicy& queue, const std::string& w) {
  KMR_TRY(check_keys(q, {"lease_seconds", "heartbeat_seconds", "retry_backoff_seconds", "max_build_attempts",
                         "max_repro_attempts", "max_leases_per_worker", "confirmations"},
                     w));
  KMR_TRY(get(q, "lease_seconds", queue.lease_seconds, w));
  KMR_TRY(get(q, "heartbeat_seconds", queue.heartbeat_seconds, w));
  KMR_TRY(get(q, "retry_backoff_seconds", queue.retry_backoff_seconds, w));
  KMR_TRY(get(q, "max_build_attempts", queue.max_build_attempts, w));
  KMR_TRY(get(q, "max_repro_attempts", queue.max_repro_attempts, w));
  KMR_TRY(get(q, "max_leases_per_worker", queue.max_leases_per_worker, w));
  if (queue.max_leases_per_worker < 1) return malformed(w + ".max_leases_per_worker: at least 1");
  KMR_TRY(get(q, "confirmations", queue.confirmations, w));
  if (queue.confirmations < 1 || queue.confirmations > 16) return malformed(w + ".confirmations: 1..16");
  if (queue.lease_seconds < 1 || queue.heartbeat_seconds < 1 || queue.heartbeat_seconds >= queue.lease_seconds)
    return malformed(w + ": need 1 <= heartbeat_seconds < lease_seconds");
  return ok();
}

Result<RepositoryConfig> parse_repository(const json& r, const std::string& w) {
  KMR_TRY(check_keys(r, {"name", "distro", "url", "format", "packages", "architectures", "trusted_keys",
                         "resource_class", "insecure_unsigned", "sources"},
                     w));
  RepositoryConfig rc;
  KMR_TRY(get(r, "name", rc.name, w));
  KMR_TRY(get(r, "distro", rc.distro, w));
  KMR_TRY(get(r, "url", rc.url, w));
  KMR_TRY(get(r, "format", rc.format, w));
  KMR_TRY(get(r, "packages", rc.packages, w));
  KMR_TRY(get(r, "architectures", rc.architectures, w));
  KMR_TRY(get(r, "trusted_keys", rc.trusted_keys, w));
  KMR_TRY(get(r, "resource_class", rc.resource_class, w));
  KMR_TRY(get(r, "insecure_unsigned", rc.insecure_unsigned, w));
  if (rc.name.empty() || rc.distro.empty() || rc.url.empty()) return malformed(w + ": name, distro and url are required");
  if (rc.url.rfind("file://", 0) != 0 && rc.url.rfind("http://", 0) != 0 && rc.url.rfind("https://", 0) != 0)
    return malformed(w + ".url: must start with file://, http:// or https://");
  static const std::set<std::string> formats = {"kmr-import", "fixtures-manifest", "arch", "nix", "rpm-md", "apt",
                                                "rebuilderd"};
  if (!formats.count(rc.format)) return malformed(w + ".format: unknown format \"" + rc.format + "\"");
  std::map<std::string, std::string> given;
  KMR_TRY(get(r, "sources", given, w));
  KMR_ASSIGN_OR_RETURN(rc.sources, distros::resolve_source_templates(rc.distro, given, w + ".sources"));
  return rc;
}

Result<void> parse_repositories(const json& repos, Config& c, const std::string& origin) {
  if (!repos.is_array()) return malformed(origin + ".repositories: expected an array");
  std::set<std::string> names;
  for (std::size_t i = 0; i < repos.size(); ++i) {
    std::string w = origin + ".repositories[" + std::to_string(i) + "]";
    KMR_ASSIGN_OR_RETURN(RepositoryConfig rc, parse_repository(repos[i], w));
    if (!names.insert(rc.name).second) return malformed(w + ".name: duplicate \"" + rc.name + "\"");
    c.repositories.push_back(std::move(rc));
  }
  return ok();
}

Result<void> parse_workers(const json& workers, Config& c, const std::string& origin) {
  if (!workers.is_array()) return malformed(origin + ".workers: expected an array");
  for (std::size_t i = 0; i < workers.size(); ++i) {
    const json& r = workers[i];
    std::string w = origin + ".workers[" + std::to_string(i) + "]";
    KMR_TRY(check_keys(r, {"name", "public_key", "resource_classes"}, w));
    Config::PreWorker pw;
    KMR_TRY(get(r, "name", pw.name, w));
    KMR_TRY(get(r, "public_key", pw.public_key, w));
    KMR_TRY(get(r, "resource_classes", pw.resource_classes, w));
    if (pw.name.empty() || pw.public_key.size() != 64) return malformed(w + ": name and 64-hex public_key required");
    c.workers.push_back(std::move(pw));
  }
  return ok();
}

}  // namespace

Result<Config> parse_config(std::string_view text, const std::string& origin) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return malformed(origin + ": not valid JSON");
  Config c;
  KMR_TRY(parse_top_level(j, c, origin));
  if (j.contains("log")) KMR_TRY(parse_log(j["log"], c, origin + ".log"));
  if (j.contains("http")) KMR_TRY(parse_http(j["http"], c.http, origin + ".http"));
  KMR_TRY(split_listen(c.http.listen));
  if (j.contains("queue")) KMR_TRY(parse_queue(j["queue"], c.queue, origin + ".queue"));
  if (j.contains("repositories")) KMR_TRY(parse_repositories(j["repositories"], c, origin));
  if (j.contains("workers")) KMR_TRY(parse_workers(j["workers"], c, origin));
  return c;
}

Result<Config> load_config(const std::string& path) {
  KMR_ASSIGN_OR_RETURN(std::string text, read_text_file(path, 1 << 20));
  return parse_config(text, path);
}

}  // namespace kmr::server

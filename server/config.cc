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

Result<Config> parse_config(std::string_view text, const std::string& origin) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return malformed(origin + ": not valid JSON");
  Config c;
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
  if (j.contains("log")) {
    const json& l = j["log"];
    KMR_TRY(check_keys(l, {"format", "level"}, origin + ".log"));
    KMR_TRY(get(l, "format", c.log_format, origin + ".log"));
    KMR_TRY(get(l, "level", c.log_level, origin + ".log"));
    if (c.log_format != "text" && c.log_format != "json") return malformed(origin + ".log.format: text or json");
  }
  if (j.contains("http")) {
    const json& h = j["http"];
    std::string w = origin + ".http";
    KMR_TRY(check_keys(h, {"listen", "threads", "read_timeout_ms", "write_timeout_ms", "idle_timeout_ms",
                           "max_header_bytes", "max_json_body", "max_report_body", "tls_cert", "tls_key",
                           "shutdown_grace_ms", "max_connections", "max_inflight_body_bytes", "blocking_threads",
                           "blocking_queue", "doc_cache_bytes"},
                       w));
    KMR_TRY(get(h, "listen", c.http.listen, w));
    KMR_TRY(get(h, "threads", c.http.threads, w));
    KMR_TRY(get(h, "read_timeout_ms", c.http.read_timeout_ms, w));
    KMR_TRY(get(h, "write_timeout_ms", c.http.write_timeout_ms, w));
    KMR_TRY(get(h, "idle_timeout_ms", c.http.idle_timeout_ms, w));
    KMR_TRY(get(h, "max_header_bytes", c.http.max_header_bytes, w));
    KMR_TRY(get(h, "max_json_body", c.http.max_json_body, w));
    KMR_TRY(get(h, "max_report_body", c.http.max_report_body, w));
    KMR_TRY(get(h, "tls_cert", c.http.tls_cert, w));
    KMR_TRY(get(h, "tls_key", c.http.tls_key, w));
    KMR_TRY(get(h, "shutdown_grace_ms", c.http.shutdown_grace_ms, w));
    KMR_TRY(get(h, "max_connections", c.http.max_connections, w));
    KMR_TRY(get(h, "max_inflight_body_bytes", c.http.max_inflight_body_bytes, w));
    KMR_TRY(get(h, "blocking_threads", c.http.blocking_threads, w));
    KMR_TRY(get(h, "blocking_queue", c.http.blocking_queue, w));
    KMR_TRY(get(h, "doc_cache_bytes", c.http.doc_cache_bytes, w));
    if (c.http.blocking_threads < 0 || c.http.blocking_threads > 1024) return malformed(w + ".blocking_threads: 0..1024");
    if (c.http.max_connections < 1) return malformed(w + ".max_connections: at least 1");
    if (c.http.max_inflight_body_bytes < c.http.max_report_body || c.http.max_inflight_body_bytes < c.http.max_json_body)
      return malformed(w + ".max_inflight_body_bytes: at least max_report_body and max_json_body");
    if (c.http.tls_cert.empty() != c.http.tls_key.empty()) return malformed(w + ": tls_cert and tls_key go together");
    if (c.http.threads < 1 || c.http.threads > 256) return malformed(w + ".threads: 1..256");
  }
  KMR_TRY(split_listen(c.http.listen));
  if (j.contains("queue")) {
    const json& q = j["queue"];
    std::string w = origin + ".queue";
    KMR_TRY(check_keys(q, {"lease_seconds", "heartbeat_seconds", "retry_backoff_seconds", "max_build_attempts",
                           "max_repro_attempts", "max_leases_per_worker", "confirmations"},
                       w));
    KMR_TRY(get(q, "lease_seconds", c.queue.lease_seconds, w));
    KMR_TRY(get(q, "heartbeat_seconds", c.queue.heartbeat_seconds, w));
    KMR_TRY(get(q, "retry_backoff_seconds", c.queue.retry_backoff_seconds, w));
    KMR_TRY(get(q, "max_build_attempts", c.queue.max_build_attempts, w));
    KMR_TRY(get(q, "max_repro_attempts", c.queue.max_repro_attempts, w));
    KMR_TRY(get(q, "max_leases_per_worker", c.queue.max_leases_per_worker, w));
    if (c.queue.max_leases_per_worker < 1) return malformed(w + ".max_leases_per_worker: at least 1");
    KMR_TRY(get(q, "confirmations", c.queue.confirmations, w));
    if (c.queue.confirmations < 1 || c.queue.confirmations > 16) return malformed(w + ".confirmations: 1..16");
    if (c.queue.lease_seconds < 1 || c.queue.heartbeat_seconds < 1 || c.queue.heartbeat_seconds >= c.queue.lease_seconds)
      return malformed(w + ": need 1 <= heartbeat_seconds < lease_seconds");
  }
  if (j.contains("repositories")) {
    if (!j["repositories"].is_array()) return malformed(origin + ".repositories: expected an array");
    std::set<std::string> names;
    for (std::size_t i = 0; i < j["repositories"].size(); ++i) {
      const json& r = j["repositories"][i];
      std::string w = origin + ".repositories[" + std::to_string(i) + "]";
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
      if (!names.insert(rc.name).second) return malformed(w + ".name: duplicate \"" + rc.name + "\"");
      c.repositories.push_back(std::move(rc));
    }
  }
  if (j.contains("workers")) {
    if (!j["workers"].is_array()) return malformed(origin + ".workers: expected an array");
    for (std::size_t i = 0; i < j["workers"].size(); ++i) {
      const json& r = j["workers"][i];
      std::string w = origin + ".workers[" + std::to_string(i) + "]";
      KMR_TRY(check_keys(r, {"name", "public_key", "resource_classes"}, w));
      Config::PreWorker pw;
      KMR_TRY(get(r, "name", pw.name, w));
      KMR_TRY(get(r, "public_key", pw.public_key, w));
      KMR_TRY(get(r, "resource_classes", pw.resource_classes, w));
      if (pw.name.empty() || pw.public_key.size() != 64) return malformed(w + ": name and 64-hex public_key required");
      c.workers.push_back(std::move(pw));
    }
  }
  return c;
}

Result<Config> load_config(const std::string& path) {
  KMR_ASSIGN_OR_RETURN(std::string text, read_text_file(path, 1 << 20));
  return parse_config(text, path);
}

}  // namespace kmr::server

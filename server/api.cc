#include "server/api.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <mutex>
#include <set>
#include <variant>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "rebuilder/archive/nar.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/verdict/rule.h"
#include "rebuilder/verdict/worker_report.h"
#include "server/auth.h"
#include "server/byte_range.h"
#include "server/embedded.h"
#include "server/json_limits.h"
#include "server/members.h"
#include "server/rebuilderd_api.h"

namespace kmr::server {

using nlohmann::json;
using net::Query;

namespace {

constexpr std::uint64_t kMaxBlobServe = 256ull << 20;

bool is_lower_hex64(std::string_view s) {
  if (s.size() != 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// A worker report as the store keeps it.
Report store_report(const verdict::WorkerReport& w) {
  Report r;
  r.lease_token = w.lease;
  r.status = w.status;
  r.module_root = w.module_root;
  r.files = w.files;
  r.reason = w.reason;
  r.shipped_root = w.shipped_root;
  r.rebuilt_root = w.rebuilt_root;
  if (w.differing) r.differing_json = json(*w.differing).dump();
  if (w.environment) r.environment_json = w.environment->dump();
  if (w.details) r.details_json = w.details->dump();
  r.duration_ms = w.duration_ms;
  for (const auto& f : w.rebuilt.value_or(std::vector<verdict::RebuiltFileHash>{})) {
    r.rebuilt.emplace_back(f.name, f.sha256);
    if (f.sha512) r.rebuilt_sha512.emplace_back(f.name, *f.sha512);
  }
  for (const auto& f : w.shipped.value_or(std::vector<verdict::ShippedFileHash>{}))
    r.shipped_sha512.emplace_back(f.sha256, f.sha512);
  return r;
}

// A report's log and diffs go to disk first (content-addressed, harmless if the report is
// then refused), referenced from `r` by digest; false (logged) when one cannot be written.
bool store_report_blobs(BlobStore& blobs, const verdict::WorkerReport& w, Report& r) {
  auto put = [&](const std::optional<std::string>& data, std::optional<std::string>& ref) -> bool {
    if (!data) return true;
    auto h = blobs.put(*data);
    if (!h) {
      spdlog::error("storing a report blob: {}", h.error().to_string());
      return false;
    }
    ref = *h;
    return true;
  };
  std::optional<std::string> diff_json;
  if (w.diff_json) diff_json = w.diff_json->dump();
  return put(w.log, r.log_sha256) && put(diff_json, r.diff_json_sha256) && put(w.diff_html, r.diff_html_sha256);
}

std::optional<std::int64_t> parse_id(std::string_view s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

HttpResponse json_ok(const json& j, int status = 200) {
  HttpResponse r;
  r.status = status;
  r.body = j.dump();
  return r;
}

std::string etag_of(std::string_view body) { return DocCache::etag_of(body); }

bool etag_matches(const HttpRequest& req, const std::string& etag) {
  return net::etag_matches(req.header("if-none-match"), etag);
}

// Every response carries these (finalize() and the prepared wire answers).
void add_security_headers(HttpResponse& r) {
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  bool has_csp = false;
  for (auto& [k, v] : r.headers)
    if (k == "Content-Security-Policy") has_csp = true;
  if (!has_csp) r.headers.emplace_back("Content-Security-Policy", "default-src 'self'");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
}

constexpr std::string_view kArtifactRoute = "/api/v1/artifacts/sha256/{hex}";

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 404: return "Not Found";
    case 503: return "Service Unavailable";
    default: return "";  // the reason phrase is optional (RFC 9112 4)
  }
}

// The hex of /api/v1/artifacts/sha256/{64 lowercase hex} (no query), else empty.
std::string_view artifact_target_hex(std::string_view target) {
  constexpr std::string_view kArt = "/api/v1/artifacts/sha256/";
  if (target.size() != kArt.size() + 64 || target.rfind(kArt, 0) != 0) return {};
  std::string_view hex = target.substr(kArt.size());
  return is_lower_hex64(hex) ? hex : std::string_view();
}

constexpr std::string_view kBuildRoute = "/api/v1/builds/{id}";

// A request target whose answer may be cached: its cache key and metrics route.
struct CacheTarget {
  std::string key;
  std::string_view route;
};

// Artifact answers are keyed by their hex; build documents (immutable: rebuilds are only
// ever appended) by "build:" and the id as written.
std::optional<CacheTarget> cache_target(std::string_view target) {
  if (std::string_view hex = artifact_target_hex(target); !hex.empty()) return CacheTarget{std::string(hex), kArtifactRoute};
  constexpr std::string_view kBuilds = "/api/v1/builds/";
  if (target.rfind(kBuilds, 0) != 0) return std::nullopt;
  std::string_view id = target.substr(kBuilds.size());
  if (id.empty() || id.size() > 18 || !std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return CacheTarget{"build:" + std::string(id), kBuildRoute};
}

// Prepares the wire answers of a cached document.
void prepare_wire(DocCache::Doc& d) {
  HttpResponse ok;
  ok.headers = {{"ETag", d.etag}, {"Cache-Control", d.cache_control}};
  add_security_headers(ok);
  HttpResponse not_modified = ok;
  not_modified.status = 304;
  ok.body = d.body;
  d.wire_200 = http11_wire(ok);
  d.head_size = d.wire_200.size() - d.body.size();
  d.wire_304 = http11_wire(not_modified);
}

// A serialized document: 304 when the client holds these bytes.
HttpResponse doc_response(const HttpRequest& req, const DocCache::Doc& d) {
  HttpResponse r;
  r.headers.reserve(6);
  r.headers.emplace_back("ETag", d.etag);
  r.headers.emplace_back("Cache-Control", d.cache_control);
  if (etag_matches(req, d.etag)) r.status = 304;
  else r.body = d.body;
  return r;
}

std::string content_type_for(const std::string& path) {
  auto ends = [&](std::string_view s) { return path.size() >= s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0; };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js") || ends(".mjs")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".json")) return "application/json";
  if (ends(".png")) return "image/png";
  if (ends(".ico")) return "image/x-icon";
  if (ends(".txt")) return "text/plain; charset=utf-8";
  if (ends(".woff2")) return "font/woff2";
  return "application/octet-stream";
}

constexpr std::string_view kWorkerPrefix = "/api/v1/worker/";

// The path of a request target (before any query) is under the worker API: its
// answers are signed.
bool is_worker_target(std::string_view target) { return target.rfind(kWorkerPrefix, 0) == 0; }

// The method allow-list: GET, HEAD (answered as GET) and POST; rebuilderd's paths
// answer PUT, DELETE and PATCH themselves (read-only: 403, v0 501).
std::optional<HttpResponse> refuse_method(const HttpRequest& req) {
  const bool rebuilderd_write = (req.method == "PUT" || req.method == "DELETE" || req.method == "PATCH") &&
                                RebuilderdApi::serves_target(req.target);
  if (req.method == "GET" || req.method == "POST" || rebuilderd_write) return std::nullopt;
  HttpResponse r = json_error(405, "method_not_allowed", "only GET, HEAD and POST are supported");
  r.headers.emplace_back("Allow", "GET, HEAD, POST");
  return r;
}

// A store document, or the logged failure reading it.
HttpResponse json_or_error(const Result<json>& doc, std::string_view where) {
  if (!doc) return internal_error_response(doc.error(), where);
  return json_ok(*doc);
}

// Strict JSON object reading for request bodies.
struct BodyError {
  int status;
  std::string code, message;
};

std::optional<BodyError> check_fields(const json& j, const std::set<std::string>& allowed) {
  if (!j.is_object()) return BodyError{400, "invalid_json", "request body must be a JSON object"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!allowed.count(it.key())) return BodyError{400, "unknown_field", "unknown field \"" + it.key() + "\""};
  return std::nullopt;
}

std::optional<std::string> opt_string(const json& j, const char* k, std::optional<BodyError>& err) {
  auto it = j.find(k);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) {
    err = BodyError{400, "invalid_field", std::string("field \"") + k + "\" must be a string"};
    return std::nullopt;
  }
  return it->get<std::string>();
}

}  // namespace

// ---------------------------------------------------------------- static files

StaticFiles StaticFiles::load(const std::string& dir) {
  StaticFiles sf;
  // /ui/verdicts.js: the verdict vocabulary and the one reproducibility rule,
  // generated from rebuilder/verdict (the web UI has no copy of its own).
  File rule{verdict::javascript_module(), content_type_for("verdicts.js"), ""};
  rule.etag = etag_of(rule.body);
  sf.files_.emplace("verdicts.js", std::move(rule));
  std::error_code ec;
  if (dir.empty() || !std::filesystem::is_directory(dir, ec)) return sf;
  for (auto it = std::filesystem::recursive_directory_iterator(
           dir, std::filesystem::directory_options::follow_directory_symlink, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;  // follows symlinks (Bazel runfiles are symlinks)
    // Lexical: relative() would canonicalise the runfiles symlinks to their targets.
    std::string rel = it->path().lexically_relative(dir).generic_string();
    if (rel.empty() || rel.rfind("..", 0) == 0) continue;
    if (rel.empty() || rel.find("BUILD") == 0 || rel.find("node_modules") != std::string::npos) continue;
    auto body = read_text_file(it->path().string(), 32 << 20);
    if (!body) continue;
    File f{std::move(*body), content_type_for(rel), ""};
    f.etag = etag_of(f.body);
    sf.files_.emplace(rel, std::move(f));
  }
  return sf;
}

const StaticFiles::File* StaticFiles::find(const std::string& rel) const {
  auto it = files_.find(rel);
  return it == files_.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------- Api

Api::Api(Store& store, const Config& config, Metrics& metrics, Attestor* attestor, StaticFiles static_files,
         Clock clock)
    : store_(store), config_(config), metrics_(metrics), attestor_(attestor), static_(std::move(static_files)),
      clock_(clock ? std::move(clock) : Clock([] {
        return static_cast<std::int64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
      })),
      doc_cache_(config.http.doc_cache_bytes) {
  listener_id_ = store_.add_change_listener([this](const DocChange& c) {
    if (c.everything) return doc_cache_.clear();
    if (c.members) doc_cache_.invalidate_members();
    if (!c.artifacts.empty()) doc_cache_.invalidate_artifacts(c.artifacts);
  });
  add_protocol_routes();
  add_document_routes();
  if (attestor_) attestor_->service().add_routes(router_);
  add_fallback_routes();
}

Api::~Api() { store_.remove_change_listener(listener_id_); }

std::optional<HttpResponse> Api::handle_cached(const HttpRequest& req) {
  if (req.method != "GET" && req.method != "HEAD") return std::nullopt;
  auto t = cache_target(req.target);
  if (!t) return std::nullopt;
  auto doc = doc_cache_.find(t->key);
  if (!doc) return std::nullopt;
  HttpResponse r = doc_response(req, *doc);
  r.route = t->route;
  return finalize(req, false, std::move(r));
}

std::optional<Api::Wire> Api::cached_wire(std::string_view method, std::string_view target,
                                          std::string_view if_none_match) {
  const bool head = method == "HEAD";
  if (!head && method != "GET") return std::nullopt;
  auto t = cache_target(target);
  if (!t) return std::nullopt;
  auto doc = doc_cache_.find(t->key);
  if (!doc || doc->wire_200.empty()) return std::nullopt;
  const bool not_modified = net::etag_matches(if_none_match, doc->etag);
  metrics_.request(std::string(t->route), not_modified ? 304 : 200);
  std::string_view bytes = not_modified ? std::string_view(doc->wire_304)
                           : head       ? std::string_view(doc->wire_200).substr(0, doc->head_size)
                                        : std::string_view(doc->wire_200);
  return Wire{std::move(doc), bytes};
}

std::string http11_wire(const HttpResponse& r) {
  std::string out;
  out.reserve(256 + r.body.size());
  out += "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(reason_phrase(r.status)) + "\r\n";
  out += "Server: kmrd\r\nContent-Type: " + r.content_type + "\r\n";
  for (const auto& [k, v] : r.headers) out += k + ": " + v + "\r\n";
  if (r.status >= 200 && r.status != 204 && r.status != 304)
    out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  out += "\r\n";
  out += r.body;
  return out;
}

std::uint64_t Api::body_limit(std::string_view method, std::string_view target) const {
  if (method != "POST") return 0;
  if (target.rfind("/api/v1/worker/jobs/", 0) == 0 && target.find("/report") != std::string_view::npos)
    return config_.http.max_report_body;
  return config_.http.max_json_body;
}

bool Api::is_admin(const HttpRequest& req) const {
  if (config_.admin_token.empty()) return false;
  std::string_view auth = req.header("authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (auth.rfind(kBearer, 0) != 0) return false;
  std::string_view tok = auth.substr(kBearer.size());
  if (tok.size() != config_.admin_token.size()) return false;
  return CRYPTO_memcmp(tok.data(), config_.admin_token.data(), tok.size()) == 0;
}

HttpResponse Api::handle(const HttpRequest& req) {
  if (req.method == "HEAD") {
    // Same answer as GET; the HTTP layer sends the headers only.
    HttpRequest get = req;
    get.method = "GET";
    return handle(get);
  }
  if (auto refused = refuse_method(req)) return finalize(req, false, std::move(*refused));
  auto parsed = net::parse_target(req.target);
  const bool worker_route = is_worker_target(req.target);
  if (auto* bad = std::get_if<HttpResponse>(&parsed)) return finalize(req, worker_route, std::move(*bad));
  return finalize(req, worker_route, route(req, std::get<net::Target>(parsed)));
}

HttpResponse Api::route(const HttpRequest& req, const net::Target& target) {
  try {
    if (auto r = router_.route(req, target)) return std::move(*r);
    return json_error(404, "not_found", "no such page " + target.path);  // the static route takes every path
  } catch (const std::exception& e) {
    spdlog::error("{} {}: {}", req.method, target.path, e.what());
    return json_error(500, "internal", "internal error (details in the server log)");
  }
}

HttpResponse Api::finalize(const HttpRequest& req, bool worker_route, HttpResponse r) const {
  metrics_.request(r.route, r.status);
  if (reply_key_ && worker_route) sign_worker_reply(req, r);
  add_security_headers(r);
  return r;
}

void Api::add_protocol_routes() {
  using Methods = net::Router::Methods;
  router_
      .prefix(std::string(kWorkerPrefix), "/api/v1/worker",
              [this](const RouteRequest& r) { return worker_call(r.http, r.path); }, Methods::kAny)
      .prefix("/api/v1/admin/", "/api/v1/admin", [this](const RouteRequest& r) { return admin_call(r.http, r.path); },
              Methods::kAny)
      // rebuilderd's read API: at the root where it does not collide with kmr's own routes, and
      // entirely under /rebuilderd/.
      .match(RebuilderdApi::serves_target, "",
             [this](const RouteRequest& r) {
               RebuilderdApi rebuilderd(store_, attestor_ ? &attestor_->key() : nullptr, now());
               const bool prefixed = r.path.rfind("/rebuilderd/", 0) == 0;
               return rebuilderd.handle(r.http, prefixed ? r.path.substr(11) : r.path, r.query);
             },
             Methods::kAny);
}

void Api::add_document_routes() {
  router_.exact("/healthz", "/healthz", [this](const RouteRequest&) { return healthz(); })
      .exact("/metrics", "/metrics", [this](const RouteRequest&) { return metrics_response(); })
      .exact("/api/v1/openapi.json", "/api/v1/openapi.json",
             [](const RouteRequest&) {
               HttpResponse r;
               r.body = std::string(kOpenApi[0].data);
               return r;
             })
      .prefix("/api/v1/artifacts/sha256/", std::string(kArtifactRoute),
              [this](const RouteRequest& r) { return artifact_by_hex(r); })
      .prefix("/api/v1/artifacts/store-path/", "/api/v1/artifacts/store-path/{name}",
              [this](const RouteRequest& r) { return artifact_by_store_path(r); })
      .exact("/api/v1/artifacts", "/api/v1/artifacts", [this](const RouteRequest& r) { return list_artifacts(r.query); })
      .prefix("/api/v1/builds/", "", [this](const RouteRequest& r) { return build_route(r); })
      .exact("/api/v1/queue", "/api/v1/queue",
             [this](const RouteRequest& r) { return json_or_error(store_.queue(now()), r.path); })
      .exact("/api/v1/workers", "/api/v1/workers",
             [this](const RouteRequest& r) {
               return json_or_error(store_.workers(is_admin(r.http), now(), config_.worker_online_seconds), r.path);
             })
      .exact("/api/v1/stats", "/api/v1/stats",
             [this](const RouteRequest& r) { return json_or_error(store_.stats(now()), r.path); })
      .prefix("/api/v1/attestations/", "/api/v1/attestations/{hex}",
              [this](const RouteRequest& r) { return attestation(r); });
}

void Api::add_fallback_routes() {
  router_
      .prefix("/api/", "/api/other",
              [](const RouteRequest& r) { return json_error(404, "not_found", "no such endpoint " + r.path); })
      .match([](std::string_view) { return true; }, "/static", [this](const RouteRequest& r) { return static_file(r); });
}

HttpResponse Api::healthz() {
  auto c = store_.metrics_counts();
  if (!c) {
    spdlog::error("/healthz: {}", c.error().to_string());
    return json_error(503, "unhealthy", "the store cannot be read (details in the server log)");
  }
  return json_ok({{"status", "ok"}, {"schema_version", store_.schema_version()}});
}

HttpResponse Api::artifact_by_hex(const RouteRequest& r) {
  std::string hex(r.rest);
  // A Nix NarHash may be given in nix32 (52 characters), as nix-hash --base32 prints it.
  if (hex.size() == 52) hex = nar_hash_hex(hex);
  if (!is_lower_hex64(hex)) return json_error(400, "invalid_hex", "expected 64 lowercase hex digits (or a nix32 NarHash)");
  return get_artifact(r.http, hex);
}

HttpResponse Api::artifact_by_store_path(const RouteRequest& r) {
  // "<hash>" or "<hash>-<name>" of /nix/store/<hash>-<name>: the output's narinfo artifact.
  std::string hash(r.rest.substr(0, r.rest.find('-')));
  if (hash.size() != 32 || !archive::nix32_decode(hash, 20))
    return json_error(400, "invalid_store_path", "expected a Nix store path's 32-character hash part");
  auto sha = store_.artifact_for_store_path(hash);
  if (!sha) return internal_error_response(sha.error(), "store-path");
  if (!*sha) return json_error(404, "not_found", "no Nix output with store path hash " + hash);
  return get_artifact(r.http, **sha);
}

// /api/v1/builds/{id} (the build's document) and /api/v1/builds/{id}/{log,diff,diff.html}.
HttpResponse Api::build_route(const RouteRequest& r) {
  std::string id_text(r.rest);
  std::string tail;
  auto slash = id_text.find('/');
  if (slash != std::string::npos) {
    tail = id_text.substr(slash + 1);
    id_text.resize(slash);
  }
  auto id = parse_id(id_text);
  HttpResponse answer = !id           ? json_error(400, "invalid_id", "build id must be a decimal number")
                        : tail.empty() ? get_build(r.http, id_text, *id)
                                       : build_blob(r.http, *id, id_text, tail);
  answer.route = !id || tail.empty() ? "/api/v1/builds/{id}" : "/api/v1/builds/{id}/*";
  return answer;
}

HttpResponse Api::build_blob(const HttpRequest& req, std::int64_t id, const std::string& id_text,
                             const std::string& tail) {
  const std::string which = tail == "log" ? "log" : tail == "diff" ? "diff_json" : tail == "diff.html" ? "diff_html" : "";
  if (which.empty()) return json_error(404, "not_found", "unknown build resource");
  auto ref = store_.build_blob(id, which);
  if (!ref) return internal_error_response(ref.error(), "/api/v1/builds/" + id_text + "/" + tail);
  if (!*ref) return json_error(404, "not_found", "no " + tail + " for build " + id_text);
  const std::string ct = which == "log"         ? "text/plain; charset=utf-8"
                         : which == "diff_json" ? "application/json"
                                                : "text/html; charset=utf-8";
  HttpResponse r = blob_response(req, **ref, ct, which == "log");
  if (which == "diff_html") {
    // Untrusted HTML from a worker: no scripts, no network, sandboxed.
    r.headers.emplace_back("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox");
  }
  return r;
}

HttpResponse Api::attestation(const RouteRequest& r) {
  std::string hex(r.rest);
  if (!is_lower_hex64(hex)) return json_error(400, "invalid_hex", "expected 64 lowercase hex digits");
  auto ex = store_.attestation_exists(hex);
  if (!ex) return internal_error_response(ex.error(), r.path);
  if (!*ex) return json_error(404, "not_found", "no attestation " + hex);
  HttpResponse answer = blob_response(r.http, hex, "application/vnd.dsse.envelope.v1+json", false);
  if (answer.status == 200) answer.headers.emplace_back("Cache-Control", "public, max-age=31536000, immutable");
  return answer;
}

// The web UI: "/" and "/index.html", "/ui/<file>", the favicons.
HttpResponse Api::static_file(const RouteRequest& r) {
  const std::string& path = r.path;
  std::string rel;
  if (path == "/" || path == "/index.html") rel = "index.html";
  else if (path.rfind("/ui/", 0) == 0) rel = path.substr(4);
  else if (path == "/favicon.svg" || path == "/favicon.ico") rel = path.substr(1);
  const StaticFiles::File* f = rel.empty() ? nullptr : static_.find(rel);
  if (!f) return json_error(404, "not_found", "no such page " + path);
  HttpResponse answer;
  answer.content_type = f->content_type;
  answer.headers.emplace_back("ETag", f->etag);
  answer.headers.emplace_back("Cache-Control", "no-cache");
  if (etag_matches(r.http, f->etag)) {
    answer.status = 304;
    return answer;
  }
  answer.body = f->body;
  return answer;
}

HttpResponse Api::get_artifact(const HttpRequest& req, const std::string& hex) {
  if (auto doc = doc_cache_.find(hex)) return doc_response(req, *doc);
  // Taken before reading: a write committed meanwhile keeps this answer out of the cache.
  const std::uint64_t epoch = doc_cache_.epoch();
  auto a = store_.artifact_by_sha256(hex);
  if (!a) return internal_error_response(a.error(), "artifact");
  const bool member = !*a;
  if (member) {
    // Not an artifact: a member of some (a vmlinuz, a .ko, compressed or not, signed or stripped)
    // or a Nix output's NarHash.
    a = member_answer(hex);
    if (!a) return internal_error_response(a.error(), "artifact members");
  }
  if (!*a) return json_error(404, "not_found", "no artifact or member with sha256 " + hex);
  const json& doc = **a;
  std::vector<std::string> built_from{hex};
  if (member)
    for (const auto& m : doc["member_of"]) built_from.push_back(m["sha256"].get<std::string>());
  DocCache::Doc d;
  d.body = doc.dump();
  d.etag = etag_of(d.body);
  const bool settled = !member && doc["job"].is_object() && doc["job"]["state"] == "done";
  d.cache_control = settled ? "public, max-age=60" : "no-cache";
  HttpResponse r = doc_response(req, d);
  prepare_wire(d);
  doc_cache_.insert(hex, std::move(d), built_from, member, epoch);
  return r;
}

HttpResponse Api::get_build(const HttpRequest& req, const std::string& id_text, std::int64_t id) {
  const std::string key = "build:" + id_text;
  if (auto doc = doc_cache_.find(key)) return doc_response(req, *doc);
  const std::uint64_t epoch = doc_cache_.epoch();
  auto b = store_.build(id);
  if (!b) return internal_error_response(b.error(), "build");
  if (!*b) return json_error(404, "not_found", "no build " + id_text);
  DocCache::Doc d;
  d.body = (*b)->dump();
  d.etag = etag_of(d.body);
  d.cache_control = "public, max-age=3600";
  HttpResponse r = doc_response(req, d);
  prepare_wire(d);
  doc_cache_.insert(key, std::move(d), {}, false, epoch);
  return r;
}

Result<std::optional<json>> Api::member_answer(const std::string& hex) {
  constexpr std::int64_t kMaxMatches = 64;
  KMR_ASSIGN_OR_RETURN(auto matches, store_.member_matches(hex, kMaxMatches + 1));
  if (matches.empty()) return std::optional<json>();
  json member_of = json::array();
  std::set<std::string> artifacts;
  for (std::size_t i = 0; i < matches.size() && i < static_cast<std::size_t>(kMaxMatches); ++i) {
    const MemberMatch& m = matches[i];
    KMR_ASSIGN_OR_RETURN(auto art, store_.artifact_by_sha256(m.artifact_sha256));
    if (!art) continue;
    artifacts.insert(m.artifact_sha256);
    const json& a = *art;
    member_of.push_back({{"path", m.path}, {"kind", m.kind}, {"sha256", a["sha256"]}, {"distro", a["distro"]},
                         {"repository", a["repository"]}, {"package", a["package"]}, {"filename", a["filename"]},
                         {"url", a["url"]}, {"verdicts", a["verdicts"]}, {"build", a["build"]},
                         {"attestations", a["attestations"]},
                         {"url_artifact", "/api/v1/artifacts/sha256/" + a["sha256"].get<std::string>()}});
  }
  // A member answer: the member's hash, where it is shipped; attestations are about the artifacts
  // (their subjects are the artifacts' sha256), listed per entry of member_of.
  return std::optional<json>(json{{"sha256", hex},
                                  {"match", "member"},
                                  {"member_of", std::move(member_of)},
                                  {"artifacts", artifacts.size()},
                                  {"truncated", matches.size() > static_cast<std::size_t>(kMaxMatches)},
                                  {"attestations", json::array()}});
}

HttpResponse Api::list_artifacts(const Query& query) {
  ListQuery q;
  static const std::set<std::string> allowed = {"distro", "name", "verdict", "q", "cursor", "limit"};
  for (const auto& [k, v] : query) {
    if (!allowed.count(k)) return json_error(400, "unknown_parameter", "unknown query parameter \"" + k + "\"");
    if (query.count(k) > 1) return json_error(400, "bad_query", "parameter \"" + k + "\" given twice");
    if (v.size() > 256) return json_error(400, "bad_query", "parameter \"" + k + "\" too long");
    if (v.empty()) continue;
    if (k == "distro") q.distro = v;
    else if (k == "name") q.name = v;
    else if (k == "verdict") q.verdict = v;
    else if (k == "q") q.q = v;
    else if (k == "cursor") {
      auto id = parse_id(v);
      if (!id) return json_error(400, "invalid_cursor", "cursor must come from a previous page's \"next\"");
      q.after_id = *id;
    } else if (k == "limit") {
      auto n = parse_id(v);
      if (!n || *n < 1 || *n > 1000) return json_error(400, "invalid_limit", "limit must be 1..1000");
      q.limit = *n;
    }
  }
  auto page = store_.list_artifacts(q);
  if (!page) return internal_error_response(page.error(), "artifact list");
  return json_ok(*page);
}

HttpResponse Api::blob_response(const HttpRequest& req, const std::optional<std::string>& hex,
                                const std::string& content_type, bool range_ok) {
  if (!hex) return json_error(404, "not_found", "no such blob");
  auto size = store_.blobs().size(*hex);
  if (!size) {
    spdlog::error("blob {}: {}", *hex, size.error().to_string());
    return json_error(404, "not_found", "blob missing");
  }
  HttpResponse r;
  r.content_type = content_type;
  std::string etag = "\"" + hex->substr(0, 32) + "\"";
  r.headers.emplace_back("ETag", etag);
  if (etag_matches(req, etag)) {
    r.status = 304;
    return r;
  }
  if (range_ok) r.headers.emplace_back("Accept-Ranges", "bytes");
  const RangeRequest range = range_ok ? parse_byte_range(req.header("range"), *size) : RangeRequest{};
  if (range.kind == RangeKind::kUnsatisfiable) {
    HttpResponse e = json_error(416, "range_not_satisfiable", "bad or unsatisfiable Range");
    e.headers.emplace_back("Content-Range", "bytes */" + std::to_string(*size));
    return e;
  }
  // Only the range is read (pread): a tail of a large log costs the tail.
  const std::uint64_t offset = range.kind == RangeKind::kSatisfiable ? range.range.first : 0;
  const std::uint64_t length = range.kind == RangeKind::kSatisfiable ? range.range.length() : *size;
  if (length > kMaxBlobServe) return json_error(500, "too_large", "blob larger than 256 MiB: ask for byte ranges");
  auto data = store_.blobs().read_range(*hex, offset, length);
  if (!data || data->size() != length) {
    spdlog::error("blob {}: {}", *hex, data ? "shorter than its size" : data.error().to_string());
    return json_error(500, "internal", "internal error (details in the server log)");
  }
  if (range.kind == RangeKind::kSatisfiable) {
    r.status = 206;
    r.headers.emplace_back("Content-Range", "bytes " + std::to_string(range.range.first) + "-" +
                                                std::to_string(range.range.last) + "/" + std::to_string(*size));
  }
  r.body = std::move(*data);
  return r;
}

HttpResponse Api::metrics_response() {
  std::vector<std::pair<std::string, double>> g;
  auto c = store_.metrics_counts();
  if (c) {
    for (const char* s : {"queued", "running", "done"})
      g.emplace_back(std::string("kmrd_jobs{state=\"") + s + "\"}", (*c)["jobs"].value(s, 0));
    g.emplace_back("kmrd_queue_depth", (*c)["jobs"].value("queued", 0));
    g.emplace_back("kmrd_workers{state=\"registered\"}", (*c)["workers"].value("registered", 0));
    g.emplace_back("kmrd_workers{state=\"online\"}", (*c)["workers"].value("online", 0));
  }
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = metrics_.render(g);
  return r;
}

// ---------------------------------------------------------------- workers

std::optional<HttpResponse> Api::check_worker_headers(const HttpRequest& req, Worker& worker, std::int64_t& ts) const {
  if (req.method != "POST") return json_error(405, "method_not_allowed", "worker endpoints take POST");
  // 1. Signature headers present and well formed.
  std::string key(req.header("x-kmr-key")), ts_s(req.header("x-kmr-timestamp")), nonce(req.header("x-kmr-nonce")),
      sig(req.header("x-kmr-signature"));
  std::string_view origin = req.header("x-kmr-origin");
  if (key.empty() || ts_s.empty() || nonce.empty() || sig.empty() || origin.empty())
    return json_error(401, "unsigned",
                      "worker requests must carry X-Kmr-Key, X-Kmr-Origin, X-Kmr-Timestamp, X-Kmr-Nonce, X-Kmr-Signature");
  auto parsed_ts = parse_id(ts_s);
  if (!is_lower_hex64(key) || !parsed_ts || !is_valid_nonce(nonce) || sig.size() != 128)
    return json_error(401, "bad_signature_headers", "malformed signature headers");
  // 2. Addressed to this kmrd (the origin is also inside the signed message).
  if (!config_.origin.empty() && origin != config_.origin)
    return json_error(401, "wrong_origin", "request is signed for another kmrd origin");
  // 3. Registered, enabled worker.
  auto w = store_.worker_by_key(key);
  if (!w) return internal_error_response(w.error(), "worker lookup");
  if (!*w) return json_error(401, "unknown_worker", "public key is not registered");
  if ((*w)->disabled) return json_error(403, "worker_disabled", "this worker is disabled by an administrator");
  // 4. Fresh timestamp.
  std::int64_t t = now();
  if (*parsed_ts < t - config_.max_clock_skew_seconds || *parsed_ts > t + config_.max_clock_skew_seconds)
    return json_error(401, "stale_timestamp", "timestamp outside the allowed clock skew");
  worker = std::move(**w);
  ts = *parsed_ts;
  return std::nullopt;
}

std::optional<HttpResponse> Api::precheck(const HttpRequest& head) const {
  std::string_view t = head.target;
  if (t.rfind("/api/v1/worker/", 0) == 0) {
    Worker w;
    std::int64_t ts = 0;
    auto e = check_worker_headers(head, w, ts);
    if (!e) return std::nullopt;
    e->route = "/api/v1/worker";
    return finalize(head, true, std::move(*e));
  }
  if (t.rfind("/api/v1/admin/", 0) == 0 && head.method == "POST" && !config_.admin_token.empty() && !is_admin(head)) {
    HttpResponse r = json_error(401, "unauthorized", "admin endpoints need Authorization: Bearer <admin token>");
    r.route = "/api/v1/admin";
    return finalize(head, false, std::move(r));
  }
  return std::nullopt;
}

void Api::sign_worker_reply(const HttpRequest& req, HttpResponse& r) const {
  std::string_view nonce = req.header("x-kmr-nonce");
  if (!is_valid_nonce(nonce)) return;  // nothing to bind the reply to
  auto sig = sign_reply(*reply_key_, config_.origin, nonce, r.status, r.body);
  if (!sig) {
    spdlog::error("signing a worker reply: {}", sig.error().to_string());
    return;
  }
  r.headers.emplace_back("X-Kmr-Reply-Signature", *sig);
}

std::optional<HttpResponse> Api::authenticate_worker(const HttpRequest& req, Worker& worker, std::int64_t now) {
  std::int64_t ts = 0;
  if (auto e = check_worker_headers(req, worker, ts)) return e;
  const std::string key(req.header("x-kmr-key")), nonce(req.header("x-kmr-nonce"));
  // 5. Signature over origin, method, target, body digest, timestamp, nonce.
  auto v = verify_signature(key, req.header("x-kmr-origin"), req.method, req.target, req.body, ts, nonce,
                            req.header("x-kmr-signature"));
  if (!v) return json_error(401, "bad_signature", "signature does not verify");
  // 6. Nonce not seen before (recorded only for valid signatures).
  auto fresh = store_.use_nonce(worker.id, nonce, ts, now - 2 * config_.max_clock_skew_seconds);
  if (!fresh) return internal_error_response(fresh.error(), "nonce");
  if (!*fresh) return json_error(401, "replayed", "nonce already used");
  (void)store_.touch_worker(worker.id, req.remote, now);
  return std::nullopt;
}

HttpResponse Api::worker_call(const HttpRequest& req, const std::string& path) {
  Worker worker;
  const std::int64_t t = now();
  if (auto refused = authenticate_worker(req, worker, t)) return *refused;
  if (!json_depth_ok(req.body))
    return json_error(400, "json_too_deep", "JSON nesting deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  json body = req.body.empty() ? json::object() : json::parse(req.body, nullptr, false);
  if (body.is_discarded()) return json_error(400, "invalid_json", "request body is not valid JSON");
  if (path == "/api/v1/worker/claim") return claim(worker, body, t);
  // /api/v1/worker/jobs/{id}/{heartbeat,report}
  constexpr std::string_view kJobs = "/api/v1/worker/jobs/";
  if (path.rfind(kJobs, 0) != 0) return json_error(404, "not_found", "no such worker endpoint");
  std::string rest = path.substr(kJobs.size());
  auto slash = rest.find('/');
  if (slash == std::string::npos) return json_error(404, "not_found", "no such worker endpoint");
  auto job_id = parse_id(rest.substr(0, slash));
  std::string action = rest.substr(slash + 1);
  if (!job_id) return json_error(400, "invalid_id", "job id must be a decimal number");
  if (action == "heartbeat") return heartbeat(worker, *job_id, body, t);
  if (action == "report") return report(worker, *job_id, body, t);
  return json_error(404, "not_found", "no such worker endpoint");
}

HttpResponse Api::claim(const Worker& worker, const json& body, std::int64_t now) {
  if (auto e = check_fields(body, {"resource_classes"})) return json_error(e->status, e->code, e->message);
  // The classes asked for, among the worker's own.
  Worker eff = worker;
  if (body.contains("resource_classes")) {
    if (!body["resource_classes"].is_array()) return json_error(400, "invalid_field", "resource_classes must be an array");
    eff.resource_classes.clear();
    for (const auto& c : body["resource_classes"]) {
      if (!c.is_string()) return json_error(400, "invalid_field", "resource_classes must hold strings");
      std::string s = c.get<std::string>();
      if (std::find(worker.resource_classes.begin(), worker.resource_classes.end(), s) != worker.resource_classes.end())
        eff.resource_classes.push_back(s);
    }
  }
  auto job = store_.claim_job(eff, now, config_.queue);
  if (!job && job.error().code() == ErrorCode::kLimitExceeded)
    return json_error(429, "too_many_leases", job.error().message());
  if (!job) return internal_error_response(job.error(), "claim");
  if (!*job) return json_ok({{"job", nullptr}});
  return json_ok({{"job", **job}});
}

HttpResponse Api::heartbeat(const Worker& worker, std::int64_t job_id, const json& body, std::int64_t now) {
  if (auto e = check_fields(body, {"lease"})) return json_error(e->status, e->code, e->message);
  std::optional<BodyError> err;
  auto lease = opt_string(body, "lease", err);
  if (err || !lease) return json_error(400, "invalid_field", "lease (string) required");
  auto hb = store_.heartbeat(job_id, worker.id, *lease, now, config_.queue);
  if (!hb) return lease_error(hb.error(), "heartbeat");
  return json_ok({{"lease_expiry", *hb}});
}

HttpResponse Api::report(const Worker& worker, std::int64_t job_id, const json& body, std::int64_t now) {
  verdict::ReportError bad;
  auto wire = verdict::parse_worker_report(body, bad);
  if (!wire) return json_error(400, bad.code, bad.message);
  Report r = store_report(*wire);
  r.job_id = job_id;
  r.worker_id = worker.id;
  // Refuse before writing any blob when the lease is not held (checked again in the transaction).
  auto held = store_.lease_state(r.job_id, r.worker_id, r.lease_token, now);
  if (!held) return internal_error_response(held.error(), "report");
  if (*held == LeaseState::kNotHeld) return json_error(409, "lease_not_held", "lease not held by this worker");
  if (*held == LeaseState::kExpired) return json_error(410, "lease_expired", "the lease expired; the report is refused");
  if (!store_report_blobs(store_.blobs(), *wire, r)) return json_error(500, "internal", "internal error (details in the server log)");
  auto out = store_.report(r, now, config_.queue);
  if (!out) return lease_error(out.error(), "report");
  if (!out->downgraded.empty())
    spdlog::warn("build {} (job {}, worker {}): verdict downgraded: {}", out->rebuild_id, r.job_id, worker.name,
                 out->downgraded);
  if (on_report) on_report(*out, r);
  json ack = {{"build", out->rebuild_id}, {"job_state", out->job_state}, {"reproducible", out->reproducible}};
  if (!out->downgraded.empty()) ack["downgraded"] = out->downgraded;
  if (out->awaiting_confirmation)
    ack["awaiting_confirmation"] = {{"confirmed_by", out->confirmed_by}, {"needed", config_.queue.confirmations}};
  return json_ok(ack);
}

HttpResponse Api::lease_error(const Error& e, std::string_view what) const {
  if (e.code() == ErrorCode::kPermissionDenied) return json_error(409, "lease_not_held", "lease not held by this worker");
  if (e.code() == ErrorCode::kTimeout) return json_error(410, "lease_expired", "the lease expired");
  return internal_error_response(e, what);
}

// ---------------------------------------------------------------- admin

HttpResponse Api::admin_call(const HttpRequest& req, const std::string& path) {
  if (config_.admin_token.empty()) return json_error(403, "admin_disabled", "no admin token configured");
  if (!is_admin(req)) return json_error(401, "unauthorized", "admin endpoints need Authorization: Bearer <admin token>");
  if (req.method != "POST") return json_error(405, "method_not_allowed", "admin endpoints take POST");
  if (!json_depth_ok(req.body))
    return json_error(400, "json_too_deep", "JSON nesting deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded()) return json_error(400, "invalid_json", "request body is not valid JSON");
  if (path == "/api/v1/admin/workers/disable" || path == "/api/v1/admin/workers/enable")
    return set_worker_disabled(path, body, path.ends_with("/disable"));
  if (path == "/api/v1/admin/workers") return register_worker(path, body);
  if (path == "/api/v1/admin/requeue") return requeue(path, body);
  return json_error(404, "not_found", "no such admin endpoint");
}

HttpResponse Api::set_worker_disabled(const std::string& path, const json& body, bool disable) {
  if (auto e = check_fields(body, {"name"})) return json_error(e->status, e->code, e->message);
  if (!body.contains("name") || !body["name"].is_string()) return json_error(400, "invalid_field", "name (string) required");
  auto found = store_.set_worker_disabled(body["name"].get<std::string>(), disable, now());
  if (!found) return internal_error_response(found.error(), path);
  if (!*found) return json_error(404, "not_found", "no such worker");
  spdlog::info("admin: worker {} {}", body["name"].get<std::string>(), disable ? "disabled" : "enabled");
  return json_ok({{"name", body["name"]}, {"disabled", disable}});
}

HttpResponse Api::register_worker(const std::string& path, const json& body) {
  if (auto e = check_fields(body, {"name", "public_key", "resource_classes"})) return json_error(e->status, e->code, e->message);
  if (!body.contains("name") || !body["name"].is_string() || body["name"].get<std::string>().empty() ||
      body["name"].get<std::string>().size() > 128)
    return json_error(400, "invalid_field", "name (1..128 chars) required");
  if (!body.contains("public_key") || !body["public_key"].is_string() ||
      !is_lower_hex64(body["public_key"].get<std::string>()))
    return json_error(400, "invalid_hex", "public_key must be 64 lowercase hex digits (raw Ed25519 key)");
  std::vector<std::string> classes{"default"};
  if (body.contains("resource_classes")) {
    if (!body["resource_classes"].is_array()) return json_error(400, "invalid_field", "resource_classes must be an array");
    classes.clear();
    for (const auto& c : body["resource_classes"]) {
      if (!c.is_string()) return json_error(400, "invalid_field", "resource_classes must hold strings");
      classes.push_back(c);
    }
  }
  auto id = store_.register_worker(body["name"], body["public_key"], classes, now());
  if (!id) {
    if (id.error().code() == ErrorCode::kMalformedInput) return json_error(409, "conflict", id.error().message());
    return internal_error_response(id.error(), path);
  }
  return json_ok({{"id", *id}, {"name", body["name"]}}, 201);
}

// Exactly one of: a job id, an artifact's sha256, every failed job.
HttpResponse Api::requeue(const std::string& path, const json& body) {
  if (auto e = check_fields(body, {"job", "sha256", "failed"})) return json_error(e->status, e->code, e->message);
  std::optional<std::int64_t> job;
  std::optional<std::string> sha;
  bool failed = false;
  if (body.contains("job")) {
    if (!body["job"].is_number_integer()) return json_error(400, "invalid_field", "job must be an integer");
    job = body["job"].get<std::int64_t>();
  }
  if (body.contains("sha256")) {
    if (!body["sha256"].is_string() || !is_lower_hex64(body["sha256"].get<std::string>()))
      return json_error(400, "invalid_hex", "sha256 must be 64 lowercase hex digits");
    sha = body["sha256"].get<std::string>();
  }
  if (body.contains("failed")) {
    if (!body["failed"].is_boolean()) return json_error(400, "invalid_field", "failed must be a boolean");
    failed = body["failed"];
  }
  if (static_cast<int>(job.has_value()) + static_cast<int>(sha.has_value()) + static_cast<int>(failed) != 1)
    return json_error(400, "invalid_field", "give exactly one of job, sha256, failed");
  auto n = store_.requeue(job, sha, failed, now());
  if (!n) return internal_error_response(n.error(), path);
  return json_ok({{"requeued", *n}});
}

}  // namespace kmr::server

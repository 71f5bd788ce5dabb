#pragma once

// REST API v1 and static files: one pure function from HttpRequest to
// HttpResponse (plus the store). No sockets, no Beast.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "attest/keys.h"
#include "rebuilder/net/router.h"
#include "server/attestor.h"
#include "server/config.h"
#include "server/doc_cache.h"
#include "server/http_types.h"
#include "server/metrics.h"
#include "server/store.h"

namespace kmr::server {

// Web UI files loaded once at start (from web/): "/" -> index.html, "/ui/<file>" -> <file>.
class StaticFiles {
 public:
  static StaticFiles load(const std::string& dir);
  struct File {
    std::string body, content_type, etag;
  };
  const File* find(const std::string& rel) const;
  std::size_t size() const { return files_.size(); }

 private:
  std::map<std::string, File> files_;
};

class Api {
 public:
  using Clock = std::function<std::int64_t()>;  // unix seconds
  Api(Store& store, const Config& config, Metrics& metrics, Attestor* attestor, StaticFiles static_files,
      Clock clock = nullptr);
  ~Api();
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  // May block (SQLite, blob reads, signing): the HTTP layer runs it on its blocking pool.
  HttpResponse handle(const HttpRequest& req);
  // Never blocks: the answer when it is a cached document (artifact answers), else nullopt
  // and the request goes to handle(). Safe on the I/O threads.
  std::optional<HttpResponse> handle_cached(const HttpRequest& req);
  // The same for a keep-alive HTTP/1.1 request, as the complete answer on the wire (built
  // once per document): `bytes` stays valid while `doc` is held. Counted in the metrics.
  struct Wire {
    std::shared_ptr<const DocCache::Doc> doc;
    std::string_view bytes;
  };
  std::optional<Wire> cached_wire(std::string_view method, std::string_view target, std::string_view if_none_match);
  DocCache::Stats doc_cache_stats() const { return doc_cache_.stats(); }
  // Counts a request the HTTP layer refused before it reached handle() (431, 413, 400).
  void handle_rejected(int status) { metrics_.request("rejected", status); }
  // Body limit for a request, known from its header only (checked before reading the body).
  std::uint64_t body_limit(std::string_view method, std::string_view target) const;
  // Checks a request's headers before its body is read: worker routes need well-formed
  // signature headers for this origin, a registered enabled key and a fresh timestamp;
  // admin POSTs need the admin token. The refusal to send, or nullopt to read the body.
  std::optional<HttpResponse> precheck(const HttpRequest& head) const;
  // True when precheck() reads the store (worker routes): the HTTP layer then runs it off the I/O threads.
  bool precheck_reads_store(const HttpRequest& head) const { return head.target.rfind("/api/v1/worker/", 0) == 0; }
  // Replies to worker requests are signed with this key (kmrd's attestation key), bound to
  // the request's nonce and config.origin. Null: unsigned (tests without a key only).
  void set_reply_key(const attest::Ed25519Key* key) { reply_key_ = key; }

  // Hooks run after a report is stored (attestation, metrics); set by main.
  std::function<void(const ReportOutcome&, const Report&)> on_report;

 private:
  using RouteRequest = net::RouteRequest;
  // The route table, in order: worker, admin and rebuilderd routes (any method), then
  // GET-only documents, the attestation service's routes, and the fallbacks.
  void add_protocol_routes();
  void add_document_routes();
  void add_fallback_routes();
  HttpResponse route(const HttpRequest& req, const net::Target& target);
  HttpResponse healthz();
  HttpResponse artifact_by_hex(const RouteRequest& r);
  HttpResponse artifact_by_store_path(const RouteRequest& r);
  HttpResponse build_route(const RouteRequest& r);
  // A build's log, diff or HTML diff.
  HttpResponse build_blob(const HttpRequest& req, std::int64_t id, const std::string& id_text,
                          const std::string& tail);
  HttpResponse attestation(const RouteRequest& r);
  HttpResponse static_file(const RouteRequest& r);
  HttpResponse get_artifact(const HttpRequest& req, const std::string& hex);
  // A rebuild's document (immutable once stored), cached like the artifact answers.
  HttpResponse get_build(const HttpRequest& req, const std::string& id_text, std::int64_t id);
  HttpResponse list_artifacts(const net::Query& query);
  // The artifacts shipping a member (or Nix output) with this hash; nullopt when none.
  Result<std::optional<nlohmann::json>> member_answer(const std::string& hex);
  HttpResponse worker_call(const HttpRequest& req, const std::string& path);
  std::optional<HttpResponse> check_worker_headers(const HttpRequest& req, Worker& worker, std::int64_t& ts) const;
  // Headers, signature and nonce of a worker request; the refusal, or nullopt with the worker.
  std::optional<HttpResponse> authenticate_worker(const HttpRequest& req, Worker& worker, std::int64_t now);
  HttpResponse claim(const Worker& worker, const nlohmann::json& body, std::int64_t now);
  HttpResponse heartbeat(const Worker& worker, std::int64_t job_id, const nlohmann::json& body, std::int64_t now);
  HttpResponse report(const Worker& worker, std::int64_t job_id, const nlohmann::json& body, std::int64_t now);
  void sign_worker_reply(const HttpRequest& req, HttpResponse& r) const;
  HttpResponse lease_error(const Error& e, std::string_view what) const;
  // Metrics, reply signature (worker routes) and security headers of every response.
  HttpResponse finalize(const HttpRequest& req, bool worker_route, HttpResponse r) const;
  HttpResponse admin_call(const HttpRequest& req, const std::string& path);
  HttpResponse set_worker_disabled(const std::string& path, const nlohmann::json& body, bool disable);
  HttpResponse register_worker(const std::string& path, const nlohmann::json& body);
  HttpResponse requeue(const std::string& path, const nlohmann::json& body);
  HttpResponse blob_response(const HttpRequest& req, const std::optional<std::string>& hex,
                             const std::string& content_type, bool range_ok);
  HttpResponse metrics_response();
  bool is_admin(const HttpRequest& req) const;
  std::int64_t now() const { return clock_(); }

  Store& store_;
  const Config& config_;
  Metrics& metrics_;
  Attestor* attestor_;
  const attest::Ed25519Key* reply_key_ = nullptr;
  StaticFiles static_;
  Clock clock_;

  net::Router router_;
  // Serialized artifact answers, dropped by the store's change notices.
  DocCache doc_cache_;
  std::uint64_t listener_id_ = 0;
};

// An HTTP/1.1 answer as sent on a kept-alive connection: status line, Server, Content-Type,
// the response's headers, Content-Length (none for 1xx/204/304), blank line, body.
std::string http11_wire(const HttpResponse& r);

}  // namespace kmr::server

#include "attest/service.h"

#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "attest/base64.h"
#include "attest/dsse.h"
#include "attest/tlog_proof.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"

namespace kmr::attest {
namespace {

using net::HttpResponse;
using net::Query;

constexpr const char* kImmutable = "public, max-age=31536000, immutable";

// kmrd's error shape; log answers change as the log grows, so no error is stored by caches.
HttpResponse error_response(int status, std::string_view code, const Error& e) {
  HttpResponse r = net::json_error(status, code, e.to_string());
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

// A failure of the log: 404 for what is not there, 400 for what the request's
// parameters got wrong, else logged and answered with a generic message.
HttpResponse from_error(const Error& e) {
  if (e.code() == ErrorCode::kNotFound) return error_response(404, "not_found", e);
  if (e.code() == ErrorCode::kMalformedInput) return error_response(400, "bad_query", e);
  HttpResponse r = net::internal_error_response(e, "attestation log");
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

HttpResponse ok_response(std::string body, std::string_view cache_control,
                         std::string_view content_type = "application/json") {
  HttpResponse r;
  r.content_type = std::string(content_type);
  r.body = std::move(body);
  r.headers.emplace_back("Cache-Control", std::string(cache_control));
  return r;
}

bool parse_u64(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 19 || (s.size() > 1 && s[0] == '0')) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  out = v;
  return true;
}

nlohmann::json b64_hashes(const std::vector<Hash>& hashes) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& h : hashes) arr.push_back(base64_encode(Bytes(h.data(), h.size())));
  return arr;
}

std::string hex_of(const Hash& h) { return to_hex(Bytes(h.data(), h.size())); }

// The leaf named by `hash=<hex>` (looked up in the log, below `size`) or
// `index=N`; an error response when neither names one.
std::optional<HttpResponse> leaf_index(const TransparencyLog& log, const Query& q, std::uint64_t size,
                                       std::uint64_t& index) {
  if (const std::string* h = net::first_param(q, "hash")) {
    auto raw = from_hex(*h);
    if (!raw || raw->size() != 32) return error_response(400, "invalid_hex", malformed("hash must be 64 hex digits"));
    Hash lh;
    std::copy(raw->begin(), raw->end(), lh.begin());
    auto found = log.find_leaf(lh);
    if (!found || *found >= size)
      return error_response(404, "not_found", not_found("leaf hash not in the log at this size"));
    index = *found;
  } else if (const std::string* i = net::first_param(q, "index")) {
    if (!parse_u64(*i, index)) return error_response(400, "bad_query", malformed("index must be a decimal number"));
  } else {
    return error_response(400, "bad_query", malformed("index or hash is required"));
  }
  return std::nullopt;
}

// A decimal query parameter; false (and `bad` set) when present and not decimal
// or, when `required`, absent.
bool u64_param(const Query& q, const std::string& name, bool required, std::uint64_t& out,
               std::optional<HttpResponse>& bad) {
  const std::string* v = net::first_param(q, name);
  if ((v == nullptr && !required) || (v != nullptr && parse_u64(*v, out))) return true;
  bad = error_response(400, "bad_query", malformed(name + " must be a decimal number"));
  return false;
}

}  // namespace

AttestationService::AttestationService(TransparencyLog& log, const Ed25519Key& signing_key, std::string origin,
                                       KeySet keys)
    : log_(log), key_(signing_key), origin_(std::move(origin)), keys_(std::move(keys)) {
  KMR_CHECK(is_valid_key_name(origin_));
}

Result<std::string> AttestationService::checkpoint_note() const {
  std::uint64_t ignored = 0;
  return checkpoint_note(ignored);
}

Result<std::string> AttestationService::checkpoint_note(std::uint64_t& size) const {
  std::uint64_t n = log_.size();
  size = n;
  std::lock_guard<std::mutex> lock(cp_mu_);
  if (n == cp_size_) return cp_note_;
  KMR_ASSIGN_OR_RETURN(Hash root, log_.root(n));
  Checkpoint cp{origin_, n, root, {}};
  KMR_ASSIGN_OR_RETURN(std::string note, sign_note(format_checkpoint(cp), origin_, key_));
  cp_size_ = n;
  cp_note_ = note;
  return note;
}

Result<AttestationService::Published> AttestationService::attest(const StatementInput& in) {
  StatementInput input = in;
  input.own_keyid = key_.keyid();
  Published p;
  KMR_ASSIGN_OR_RETURN(p.statement, make_statement(input));
  KMR_ASSIGN_OR_RETURN(p.envelope, sign_envelope(kInTotoPayloadType, as_bytes(p.statement), {&key_}));
  if (p.envelope.size() > kMaxLogEntryBytes) return limit_exceeded("attestation envelope larger than a log entry (65535 bytes)");
  KMR_ASSIGN_OR_RETURN(p.log_index, log_.append(as_bytes(p.envelope)));
  p.envelope_sha256 = sha256_hex(as_bytes(p.envelope));
  p.leaf_hash = hex_of(leaf_hash(as_bytes(p.envelope)));
  return p;
}

void AttestationService::add_routes(net::Router& router) const {
  using net::RouteRequest;
  router.exact("/api/v1/keys", "/api/v1/keys", [this](const RouteRequest&) { return keys_response(); })
      .exact("/api/v1/log/checkpoint", "/api/v1/log", [this](const RouteRequest&) { return checkpoint_response(); })
      .exact("/checkpoint", "/api/v1/log", [this](const RouteRequest&) { return checkpoint_response(); })
      .prefix("/api/v1/log/entries/", "/api/v1/log", [this](const RouteRequest& r) { return entry_response(r); })
      .exact("/api/v1/log/proof/inclusion", "/api/v1/log",
             [this](const RouteRequest& r) { return inclusion_response(r.query); })
      .exact("/api/v1/log/proof/tlog", "/api/v1/log",
             [this](const RouteRequest& r) { return tlog_proof_response(r.query); })
      .exact("/api/v1/log/proof/consistency", "/api/v1/log",
             [this](const RouteRequest& r) { return consistency_response(r.query); })
      .prefix("/api/v1/log/", "/api/v1/log",
              [](const RouteRequest&) { return error_response(404, "not_found", not_found("no such endpoint")); })
      .prefix("/tile/", "/tile", [this](const RouteRequest& r) { return tile_response(r.rest); });
}

HttpResponse AttestationService::keys_response() const { return ok_response(keys_.to_json(), "public, max-age=300"); }

HttpResponse AttestationService::checkpoint_response() const {
  auto note = checkpoint_note();
  if (!note) return from_error(note.error());
  return ok_response(std::move(*note), "no-cache", "text/plain; charset=utf-8");
}

HttpResponse AttestationService::entry_response(const net::RouteRequest& req) const {
  std::uint64_t index = 0;
  if (!parse_u64(req.rest, index))
    return error_response(400, "invalid_id", malformed("entry index must be a decimal number"));
  auto e = log_.entry(index);
  if (!e) return from_error(e.error());
  const std::string etag = "\"" + hex_of(leaf_hash(*e)) + "\"";
  HttpResponse r = ok_response(std::string(e->begin(), e->end()), kImmutable);
  r.headers.emplace_back("ETag", etag);
  if (net::etag_matches(req.http.header("if-none-match"), etag)) {
    r.status = 304;
    r.body.clear();
  }
  return r;
}

HttpResponse AttestationService::inclusion_response(const Query& q) const {
  std::optional<HttpResponse> bad;
  std::uint64_t size = log_.size();
  if (!u64_param(q, "size", false, size, bad)) return *bad;
  std::uint64_t index = 0;
  if (auto refused = leaf_index(log_, q, size, index)) return *refused;
  auto proof = log_.inclusion_proof(index, size);
  if (!proof) return from_error(proof.error());
  auto leaf = log_.leaf(index);
  if (!leaf) return from_error(leaf.error());
  nlohmann::json j;
  j["index"] = index;
  j["tree_size"] = size;
  j["leaf_hash"] = hex_of(*leaf);
  j["hashes"] = b64_hashes(*proof);
  // A proof for a given size never changes; one for "the current size" does.
  return ok_response(j.dump() + "\n", net::first_param(q, "size") ? kImmutable : "no-cache");
}

HttpResponse AttestationService::tlog_proof_response(const Query& q) const {
  std::uint64_t size = 0;
  auto note = checkpoint_note(size);
  if (!note) return from_error(note.error());
  std::uint64_t index = 0;
  if (auto refused = leaf_index(log_, q, size, index)) return *refused;
  auto proof = log_.inclusion_proof(index, size);
  if (!proof) return from_error(proof.error());
  return ok_response(make_tlog_proof(index, *proof, *note), "no-cache", "text/plain; charset=utf-8");
}

HttpResponse AttestationService::consistency_response(const Query& q) const {
  std::optional<HttpResponse> bad;
  std::uint64_t old_size = 0;
  std::uint64_t new_size = 0;
  if (!u64_param(q, "old", true, old_size, bad) || !u64_param(q, "new", true, new_size, bad)) return *bad;
  auto proof = log_.consistency_proof(old_size, new_size);
  if (!proof) return from_error(proof.error());
  nlohmann::json j;
  j["old_size"] = old_size;
  j["new_size"] = new_size;
  j["hashes"] = b64_hashes(*proof);
  return ok_response(j.dump() + "\n", kImmutable);
}

HttpResponse AttestationService::tile_response(std::string_view tile_path) const {
  auto t = parse_tile_path(tile_path);
  if (!t) return error_response(404, "not_found", t.error());
  std::uint64_t size = log_.size();
  auto body = t->entries ? log_.entry_bundle(t->index, t->width, size) : log_.tile(t->level, t->index, t->width, size);
  if (!body) return from_error(body.error());
  return ok_response(std::move(*body), kImmutable, "application/octet-stream");
}

}  // namespace kmr::attest

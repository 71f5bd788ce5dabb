#include "attest/service.h"

#include <cstdio>
#include <optional>

#include <nlohmann/json.hpp>

#include "attest/base64.h"
#include "attest/dsse.h"
#include "attest/tlog_proof.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"

namespace kmr::attest {
namespace {

constexpr const char* kImmutable = "public, max-age=31536000, immutable";

HttpResponse error_response(int status, const Error& e) {
  HttpResponse r;
  r.status = status;
  nlohmann::json j;
  j["error"] = {{"code", std::string(error_code_name(e.code()))}, {"message", e.to_string()}};
  r.body = j.dump() + "\n";
  r.cache_control = "no-store";
  return r;
}

HttpResponse from_error(const Error& e) {
  int status = e.code() == ErrorCode::kNotFound ? 404 : e.code() == ErrorCode::kMalformedInput ? 400 : 500;
  if (status < 500) return error_response(status, e);
  // Storage failures name files of the log: logged here, a generic message to the client.
  std::fprintf(stderr, "kmr attest service: %s\n", e.to_string().c_str());
  return error_response(500, Error(ErrorCode::kInternal, "internal error (details in the server log)"));
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

const std::string* param(const std::vector<std::pair<std::string, std::string>>& q, std::string_view name) {
  for (const auto& [k, v] : q) {
    if (k == name) return &v;
  }
  return nullptr;
}

nlohmann::json b64_hashes(const std::vector<Hash>& hashes) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& h : hashes) arr.push_back(base64_encode(Bytes(h.data(), h.size())));
  return arr;
}

std::string hex_of(const Hash& h) { return to_hex(Bytes(h.data(), h.size())); }

// The leaf named by `hash=<hex>` (looked up in the log, below `size`) or
// `index=N`; an error response when neither names one.
std::optional<HttpResponse> leaf_index(const TransparencyLog& log,
                                       const std::vector<std::pair<std::string, std::string>>& q,
                                       std::uint64_t size, std::uint64_t& index) {
  if (const std::string* h = param(q, "hash")) {
    auto raw = from_hex(*h);
    if (!raw || raw->size() != 32) return error_response(400, malformed("hash must be 64 hex digits"));
    Hash lh;
    std::copy(raw->begin(), raw->end(), lh.begin());
    auto found = log.find_leaf(lh);
    if (!found || *found >= size) return error_response(404, not_found("leaf hash not in the log at this size"));
    index = *found;
  } else if (const std::string* i = param(q, "index")) {
    if (!parse_u64(*i, index)) return error_response(400, malformed("index must be a decimal number"));
  } else {
    return error_response(400, malformed("index or hash is required"));
  }
  return std::nullopt;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty() && out.size() < 32) {
    auto amp = query.find('&');
    std::string_view part = query.substr(0, amp);
    auto eq = part.find('=');
    if (eq == std::string_view::npos) {
      out.emplace_back(std::string(part), "");
    } else {
      out.emplace_back(std::string(part.substr(0, eq)), std::string(part.substr(eq + 1)));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

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

HttpResponse AttestationService::handle(std::string_view method, std::string_view path, std::string_view query) const {
  bool ours = path == "/api/v1/keys" || path == "/checkpoint" || path.rfind("/api/v1/log/", 0) == 0 ||
              path.rfind("/tile/", 0) == 0;
  if (!ours) {
    HttpResponse r;
    r.handled = false;
    r.status = 404;
    return r;
  }
  if (method != "GET" && method != "HEAD") {
    return error_response(405, Error(ErrorCode::kMalformedInput, "method not allowed"));
  }
  HttpResponse r = route(path, query);
  if (method == "HEAD") r.body.clear();
  return r;
}

HttpResponse AttestationService::route(std::string_view path, std::string_view query) const {
  auto q = parse_query(query);
  if (path == "/api/v1/keys") {
    HttpResponse r;
    r.body = keys_.to_json();
    r.cache_control = "public, max-age=300";
    return r;
  }
  if (path == "/api/v1/log/checkpoint" || path == "/checkpoint") {
    auto note = checkpoint_note();
    if (!note) return from_error(note.error());
    HttpResponse r;
    r.content_type = "text/plain; charset=utf-8";
    r.body = std::move(*note);
    r.cache_control = "no-cache";
    return r;
  }
  constexpr std::string_view kEntries = "/api/v1/log/entries/";
  if (path.rfind(kEntries, 0) == 0) {
    std::uint64_t index = 0;
    if (!parse_u64(path.substr(kEntries.size()), index)) return error_response(400, malformed("entry index must be a decimal number"));
    auto e = log_.entry(index);
    if (!e) return from_error(e.error());
    HttpResponse r;
    r.body.assign(e->begin(), e->end());
    r.cache_control = kImmutable;
    r.etag = "\"" + hex_of(leaf_hash(*e)) + "\"";
    return r;
  }
  if (path == "/api/v1/log/proof/inclusion") {
    std::uint64_t size = log_.size();
    if (const std::string* s = param(q, "size")) {
      if (!parse_u64(*s, size)) return error_response(400, malformed("size must be a decimal number"));
    }
    std::uint64_t index = 0;
    if (auto bad = leaf_index(log_, q, size, index)) return *bad;
    auto proof = log_.inclusion_proof(index, size);
    if (!proof) return from_error(proof.error());
    auto leaf = log_.leaf(index);
    if (!leaf) return from_error(leaf.error());
    nlohmann::json j;
    j["index"] = index;
    j["tree_size"] = size;
    j["leaf_hash"] = hex_of(*leaf);
    j["hashes"] = b64_hashes(*proof);
    HttpResponse r;
    r.body = j.dump() + "\n";
    r.cache_control = param(q, "size") ? kImmutable : "no-cache";
    return r;
  }
  if (path == "/api/v1/log/proof/tlog") {
    std::uint64_t size = 0;
    auto note = checkpoint_note(size);
    if (!note) return from_error(note.error());
    std::uint64_t index = 0;
    if (auto bad = leaf_index(log_, q, size, index)) return *bad;
    auto proof = log_.inclusion_proof(index, size);
    if (!proof) return from_error(proof.error());
    HttpResponse r;
    r.content_type = "text/plain; charset=utf-8";
    r.body = make_tlog_proof(index, *proof, *note);
    r.cache_control = "no-cache";
    return r;
  }
  if (path == "/api/v1/log/proof/consistency") {
    const std::string* o = param(q, "old");
    const std::string* n = param(q, "new");
    std::uint64_t old_size = 0;
    std::uint64_t new_size = 0;
    if (o == nullptr || !parse_u64(*o, old_size)) return error_response(400, malformed("old must be a decimal number"));
    if (n == nullptr || !parse_u64(*n, new_size)) return error_response(400, malformed("new must be a decimal number"));
    auto proof = log_.consistency_proof(old_size, new_size);
    if (!proof) return from_error(proof.error());
    nlohmann::json j;
    j["old_size"] = old_size;
    j["new_size"] = new_size;
    j["hashes"] = b64_hashes(*proof);
    HttpResponse r;
    r.body = j.dump() + "\n";
    r.cache_control = kImmutable;
    return r;
  }
  if (path.rfind("/tile/", 0) == 0) {
    auto t = parse_tile_path(path.substr(6));
    if (!t) return error_response(404, t.error());
    std::uint64_t size = log_.size();
    auto body = t->entries ? log_.entry_bundle(t->index, t->width, size)
                           : log_.tile(t->level, t->index, t->width, size);
    if (!body) return from_error(body.error());
    HttpResponse r;
    r.content_type = "application/octet-stream";
    r.body = std::move(*body);
    r.cache_control = kImmutable;
    return r;
  }
  return error_response(404, not_found("no such endpoint"));
}

}  // namespace kmr::attest

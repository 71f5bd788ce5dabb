#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "attest/keys.h"
#include "attest/note.h"
#include "attest/statement.h"
#include "attest/tlog.h"
#include "rebuilder/base/result.h"
#include "rebuilder/net/router.h"

namespace kmr::attest {

// Serves a rebuilder's keys and transparency log. Thread-safe: its handlers
// may run on many threads while attest() appends. It has no router of its own:
// add_routes() puts its routes into kmrd's (rebuilder/net/router.h), which
// gives the one response type and the one error shape.
//
// Routes (GET and HEAD; other methods get 405 method_not_allowed):
//   /api/v1/keys                      application/json KeySet::to_json()
//   /api/v1/log/checkpoint            text/plain; charset=utf-8, C2SP signed
//   /checkpoint                       checkpoint (tlog-tiles name), no-cache
//   /api/v1/log/entries/{index}       the entry bytes (a DSSE envelope JSON),
//                                     immutable, ETag the quoted hex leaf hash
//                                     (304 on If-None-Match); leaf hash = SHA-256(0x00||body)
//   /api/v1/log/proof/inclusion?index=I&size=N   (or hash=<hex leaf hash>;
//                                     size defaults to the current size)
//       {"index":I,"tree_size":N,"leaf_hash":"<hex>","hashes":["<base64>",...]}
//   /api/v1/log/proof/consistency?old=M&new=N
//       {"old_size":M,"new_size":N,"hashes":["<base64>",...]}
//   /api/v1/log/proof/tlog?hash=<hex leaf hash>|index=I
//       text/plain C2SP tlog-proof (inclusion proof + the signed checkpoint
//       it reaches) for offline verification (`kmr attest verify --tlog-proof`)
//   /tile/<L>/<N>[.p/<W>], /tile/entries/<N>[.p/<W>]   C2SP tlog-tiles,
//                                     application/octet-stream, immutable
//   any other /api/v1/log/ path       404 not_found
// Errors: kmrd's {"error":{"code","message"}} with Cache-Control: no-store;
// codes invalid_id (entry index), invalid_hex (hash), bad_query (other
// parameters), not_found (404), internal (500, generic message).
// Metrics labels: /api/v1/keys, /api/v1/log (checkpoints too), /tile.
class AttestationService {
 public:
  // `origin` is the checkpoint origin and note key name (no spaces or '+').
  // The log key is the signing key: clients pin one key per rebuilder.
  AttestationService(TransparencyLog& log, const Ed25519Key& signing_key, std::string origin,
                     KeySet keys);

  // Adds the routes above to `router` (which must not outlive this service).
  void add_routes(net::Router& router) const;

  // The signed checkpoint for the current log size (cached per size; Ed25519
  // is deterministic, so one size always yields the same note).
  Result<std::string> checkpoint_note() const;
  // Same, also returning the size the note signs.
  Result<std::string> checkpoint_note(std::uint64_t& size) const;
  std::string vkey() const { return make_vkey(origin_, key_); }
  const std::string& origin() const { return origin_; }

  struct Published {
    std::string statement;        // the signed payload
    std::string envelope;         // DSSE envelope JSON, exactly as logged
    std::string envelope_sha256;  // hex
    std::string leaf_hash;        // hex RFC 6962 leaf hash of the envelope
    std::uint64_t log_index = 0;
  };
  // Builds the statement, signs the DSSE envelope and appends it to the log
  // (durably) — what kmrd does when a verdict arrives.
  Result<Published> attest(const StatementInput& in);

 private:
  net::HttpResponse keys_response() const;
  net::HttpResponse checkpoint_response() const;
  net::HttpResponse entry_response(const net::RouteRequest& req) const;
  net::HttpResponse inclusion_response(const net::Query& query) const;
  net::HttpResponse tlog_proof_response(const net::Query& query) const;
  net::HttpResponse consistency_response(const net::Query& query) const;
  net::HttpResponse tile_response(std::string_view tile_path) const;

  TransparencyLog& log_;
  const Ed25519Key& key_;
  std::string origin_;
  KeySet keys_;
  mutable std::mutex cp_mu_;
  mutable std::uint64_t cp_size_ = UINT64_MAX;
  mutable std::string cp_note_;
};

}  // namespace kmr::attest

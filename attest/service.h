#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "attest/keys.h"
#include "attest/note.h"
#include "attest/statement.h"
#include "attest/tlog.h"
#include "rebuilder/base/result.h"

namespace kmr::attest {

// A transport-independent HTTP response. `handled` is false when the path
// is not one of ours (the server falls through to its own routes).
struct HttpResponse {
  bool handled = true;
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::string cache_control;  // value of the Cache-Control header
  std::string etag;           // quoted strong ETag, or empty
};

// Serves a rebuilder's keys and transparency log. Thread-safe: handle() may
// run on many threads while attest() appends.
//
// Routes (GET only; other methods get 405):
//   /api/v1/keys                      application/json KeySet::to_json()
//   /api/v1/log/checkpoint            text/plain; charset=utf-8, C2SP signed
//   /checkpoint                       checkpoint (tlog-tiles name), no-cache
//   /api/v1/log/entries/{index}       the entry bytes (a DSSE envelope JSON),
//                                     immutable; leaf hash = SHA-256(0x00||body)
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
// Errors: {"error":{"code":"<ErrorCode name>","message":"..."}} with 400/404.
class AttestationService {
 public:
  // `origin` is the checkpoint origin and note key name (no spaces or '+').
  // The log key is the signing key: clients pin one key per rebuilder.
  AttestationService(TransparencyLog& log, const Ed25519Key& signing_key, std::string origin,
                     KeySet keys);

  HttpResponse handle(std::string_view method, std::string_view path, std::string_view query) const;

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
  HttpResponse route(std::string_view path, std::string_view query) const;

  TransparencyLog& log_;
  const Ed25519Key& key_;
  std::string origin_;
  KeySet keys_;
  mutable std::mutex cp_mu_;
  mutable std::uint64_t cp_size_ = UINT64_MAX;
  mutable std::string cp_note_;
};

// Parses "a=1&b=2" (no percent-decoding needed for our parameters).
std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query);

}  // namespace kmr::attest

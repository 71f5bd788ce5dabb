#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "attest/keys.h"
#include "rebuilder/base/result.h"

namespace kmr::attest {

// One rebuilder to ask and the key(s) pinned for it (current + previous key
// after a rotation). The same key signs envelopes and log checkpoints.
struct RebuilderPin {
  std::string url;
  std::vector<Ed25519Key> keys;
};

struct QueryOptions {
  std::string sha256;  // lowercase hex of the file asked about (a package, a member of one, a NarHash)
  // Instead of sha256: a Nix store path's basename ("<hash>-<name>" or "<hash>"), asked at
  // /api/v1/artifacts/store-path/; attestations are then about that output's narinfo.
  std::string store_path;
  std::vector<RebuilderPin> rebuilders;
  std::size_t threshold = 1;
  std::string cache_dir;  // holds checkpoints/<keyid>; empty = no caching
  std::chrono::milliseconds timeout{std::chrono::seconds(20)};
};

struct AttestationReport {
  std::string url;
  std::string subject;  // the sha256 the statement must name (the artifact's)
  std::string status;  // "passed" | "failed" | "rejected"
  std::string reason;
  std::string verifier_id;
  std::string files;
  std::string module_root;
  std::uint64_t log_index = 0;
};

struct RebuilderReport {
  std::string url;
  std::string status;  // "passed" | "failed" | "no-attestation" | "error"
  std::string reason;
  std::vector<std::string> keyids;  // pinned keys that verified its attestations
  // The artifacts the rebuilder says hold the file (a member hash, a NarHash, a store path):
  // unsigned claims of its member index; the attestations are checked against each one.
  struct Resolved {
    std::string sha256, path, kind;
  };
  std::vector<Resolved> resolved;
  std::string origin;
  std::uint64_t checkpoint_size = 0;
  std::vector<AttestationReport> attestations;
};

struct QueryReport {
  std::string sha256;
  std::string store_path;  // when asked by store path
  std::string subject() const;  // "sha256:<hex>" or "/nix/store/<store_path>"
  std::size_t threshold = 0;
  std::size_t independent_passes = 0;  // distinct keys among passing rebuilders
  bool verified = false;
  std::vector<RebuilderReport> rebuilders;
  std::string to_json() const;
  std::string to_text() const;
};

// Asks every rebuilder (GET {url}/api/v1/artifacts/sha256/{hex} listing
// "attestations" as URLs or {"url","log_index"} objects; for the hash of a member
// or a NarHash, "member_of" lists each artifact shipping it with its own
// "attestations", each checked against that artifact's digest), verifies each
// envelope under that rebuilder's pinned key(s), checks the statement's
// subject digest, verifies the log checkpoint under the same key, checks the
// envelope's inclusion in it and the checkpoint's consistency with the one
// cached from the previous query (a forked log is rejected), and counts the
// DISTINCT keys of rebuilders that attest PASSED. verified = count >= K.
QueryReport run_query(const QueryOptions& options);

// $KMR_CACHE_DIR, else $XDG_CACHE_HOME/kmr, else $HOME/.cache/kmr.
std::string default_cache_dir();

}  // namespace kmr::attest

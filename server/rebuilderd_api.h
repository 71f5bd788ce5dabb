#pragma once

// rebuilderd's read API (v0 and v1) over kmrd's store, read-only, so existing
// rebuilderd frontends and consumers (repro-status tools, migration checks) can
// read kmrd. Status mapping: reproducible (is_reproducible) -> GOOD, another
// verdict on the bytes -> BAD, build-failed / environment-unavailable / error
// -> FAIL (v0 shows FAIL as BAD), no verdict yet -> UNKWN. GOOD builds are
// attested with an in-toto v0.9 link signed by kmrd's Ed25519 key, as
// rebuilderd does.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "attest/keys.h"
#include "rebuilder/base/result.h"
#include "server/http_types.h"
#include "server/store.h"

namespace kmr::server {

// securesystemslib canonical JSON: sorted keys, no whitespace, only strings
// (escaping only '\' and '"'), integers, booleans and null. Floats: an error.
Result<std::string> canonical_json(const nlohmann::json& j);

// rebuilderd's key id: hex sha256 of the canonical JSON of
// {"keyid_hash_algorithms":["sha256","sha512"],"keytype":"ed25519","keyval":{"public":<hex>},"scheme":"ed25519"}.
std::string intoto_keyid(const attest::Ed25519Key& key);

// One file of an in-toto link: its name and digests ("sha256", "sha512" when known).
struct LinkFile {
  std::string name;
  std::map<std::string, std::string> digests;
};
// The in-toto v0.9 link rebuilderd serves:
// {"signatures":[{"keyid","sig"}],"signed":{"_type":"link","name":"rebuild <file>",...}}.
Result<nlohmann::json> intoto_link(const attest::Ed25519Key& key, const std::vector<LinkFile>& materials,
                                   const std::vector<LinkFile>& products);

// The PEM of a public key with "\r\n" line ends, as rebuilderd's public-keys publishes it.
std::string crlf_pem(const std::string& pem);

// GOOD | BAD | FAIL | UNKWN of a kmr verdict (status nullopt: no verdict yet).
std::string rebuilderd_status(const std::optional<std::string>& status, const std::optional<std::string>& module_root,
                              const std::optional<std::string>& files);

class RebuilderdApi {
 public:
  using Query = std::multimap<std::string, std::string>;
  // key: kmrd's attestation key (null: no attestations, empty public-keys).
  RebuilderdApi(Store& store, const attest::Ed25519Key* key, std::int64_t now) : store_(store), key_(key), now_(now) {}

  // True for the paths this API serves at the root (they do not collide with kmr's own
  // API): /api/v0/..., /api/v1/packages/..., /api/v1/dashboard, /api/v1/meta/...
  // Every path is also served under /rebuilderd/ (including /rebuilderd/api/v1/builds...).
  static bool serves(std::string_view path);
  // serves(), or under /rebuilderd/api/; a query string is ignored.
  static bool serves_target(std::string_view target);
  // path: "/api/v0/..." or "/api/v1/..." (a "/rebuilderd" prefix already removed).
  HttpResponse handle(const HttpRequest& req, const std::string& path, const Query& query);

 private:
  HttpResponse v0(const HttpRequest& req, const std::string& rest, const Query& query);
  HttpResponse v1(const std::string& rest, const Query& query);
  Result<HttpResponse> pkgs_list(const HttpRequest& req, const Query& query);
  Result<HttpResponse> dashboard_v0();
  Result<HttpResponse> dashboard_v1();
  Result<HttpResponse> packages(bool source, const Query& query);
  Result<HttpResponse> builds(const Query& query);
  Result<HttpResponse> build_resource(std::int64_t id, const std::string& tail, bool v0);
  Result<HttpResponse> attestation(std::int64_t build_id, std::optional<std::int64_t> artifact_id);
  Result<HttpResponse> blob(const std::optional<std::string>& hex, bool html_ok);
  Result<HttpResponse> meta(const std::string& rest);
  HttpResponse public_keys() const;

  Store& store_;
  const attest::Ed25519Key* key_;
  std::int64_t now_;
};

// "YYYY-MM-DDTHH:MM:SS" (UTC, no zone), as rebuilderd's NaiveDateTime.
std::string naive_time(std::int64_t unix_seconds);

}  // namespace kmr::server

#include "server/attestor.h"

#include <sys/stat.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "attest/dsse.h"
#include "attest/statement.h"
#include "rebuilder/base/sha256.h"

namespace kmr::server {

using nlohmann::json;

Result<std::unique_ptr<Attestor>> Attestor::open(const std::string& state_dir, const std::string& key_path,
                                                 std::string verifier_id, std::string public_base) {
  std::string path = key_path.empty() ? state_dir + "/keys/attestation.pem" : key_path;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    if (!key_path.empty()) return io_error("attestation key " + path + " does not exist");
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    KMR_ASSIGN_OR_RETURN(auto k, attest::Ed25519Key::generate());
    auto saved = attest::save_private_key(k, path);
    if (!saved) return std::move(saved).error().with_context("while creating " + path);
  }
  KMR_TRY(attest::check_private_key_permissions(path));
  KMR_ASSIGN_OR_RETURN(auto key, attest::Ed25519Key::load(path));
  if (!key.has_private()) return malformed(path + ": not a private key");
  std::string nb = attest::now_rfc3339();
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    char buf[32];
    std::tm tm{};
    std::time_t t = st.st_mtime;
    gmtime_r(&t, &tm);
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    nb = buf;
  }
  std::unique_ptr<Attestor> a(new Attestor(std::move(key), std::move(verifier_id), nb));
  a->keyid_ = a->key_.keyid();
  a->public_base_ = std::move(public_base);
  return a;
}

std::string Attestor::keys_json() const {
  attest::KeySet ks;
  attest::PublishedKey pk;
  pk.keyid = keyid_;
  pk.public_pem = key_.public_pem();
  pk.not_before = not_before_;
  pk.current = true;
  ks.add(pk);
  return ks.to_json();
}

Result<int> Attestor::attest_rebuild(Store& store, std::int64_t rebuild_id, std::int64_t now) {
  KMR_ASSIGN_OR_RETURN(auto b, store.build(rebuild_id));
  if (!b) return not_found("build " + std::to_string(rebuild_id));
  const json& build = *b;
  std::string status = build["status"];
  std::string files = build["files"].is_string() ? build["files"].get<std::string>() : status;
  if (status != "verified") files = status;
  if (!build["module_root"].is_string()) return 0;
  int written = 0;
  for (const json& art : build["artifacts"]) {
    attest::StatementInput in;
    in.subjects.push_back({art["filename"], art["sha256"]});
    in.verifier_id = verifier_id_;
    in.resource_uri = public_base_ + "/api/v1/artifacts/sha256/" + art["sha256"].get<std::string>();
    in.module_root = build["module_root"];
    in.files = files;
    if (build["reason"].is_string()) in.reason = build["reason"];
    if (build["shipped_root"].is_string()) in.shipped_root = build["shipped_root"];
    if (build["rebuilt_root"].is_string()) in.rebuilt_root = build["rebuilt_root"];
    std::string env = build["environment"].dump();
    in.build_environment_sha256 =
        sha256_hex(Bytes(reinterpret_cast<const std::uint8_t*>(env.data()), env.size()));
    if (art["rebuilt_sha256"].is_string()) in.rebuilt_artifacts.push_back({art["filename"], art["rebuilt_sha256"]});
    in.own_keyid = keyid_;
    auto stmt = attest::make_statement(in);
    if (!stmt) return std::move(stmt).error().with_context("while attesting build " + std::to_string(rebuild_id));
    const std::string& payload = *stmt;
    KMR_ASSIGN_OR_RETURN(
        std::string env_json,
        attest::sign_envelope(attest::kInTotoPayloadType,
                              Bytes(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()), {&key_}));
    KMR_ASSIGN_OR_RETURN(std::string hex, store.blobs().put(env_json));
    KMR_TRY(store.add_attestation_for_sha(hex, art["sha256"], rebuild_id, std::nullopt, now));
    ++written;
  }
  return written;
}

}  // namespace kmr::server

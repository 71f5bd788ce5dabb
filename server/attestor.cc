#include "server/attestor.h"

#include <sys/stat.h>

#include <ctime>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "attest/note.h"
#include "attest/statement.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/text.h"
#include "rebuilder/verdict/rule.h"

namespace kmr::server {

using nlohmann::json;

namespace {

// The module content root verdict and both roots, as the worker reported them
// (an unknown verdict name is read as mismatch, as the store does).
void add_content_root(const json& build, attest::StatementInput& in) {
  auto hex = [&](const char* k) {
    const json& v = build.value(k, json(nullptr));
    return v.is_string() && is_sha256_hex(v.get<std::string>()) ? ascii_lower(v.get<std::string>()) : std::string();
  };
  const json& cr = build.value("module_content_root", json(nullptr));
  if (cr.is_string()) in.module_content_root = verdict::is_content_root(cr.get<std::string>()) ? cr.get<std::string>() : "mismatch";
  in.shipped_content_root = hex("shipped_content_root");
  in.rebuilt_content_root = hex("rebuilt_content_root");
  const json& levels = build.value("content_root_levels", json(nullptr));
  if (levels.is_number_unsigned() && levels.get<std::uint64_t>() <= 64) in.content_root_levels = levels.get<std::uint32_t>();
}

}  // namespace

std::string log_origin(const std::string& verifier_id) {
  std::string o = verifier_id;
  auto p = o.find("://");
  if (p != std::string::npos) o = o.substr(p + 3);
  while (!o.empty() && o.back() == '/') o.pop_back();
  std::string clean;
  for (char c : o)
    if (c != ' ' && c != '+' && static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f) clean += c;
  if (clean.empty() || !attest::is_valid_key_name(clean)) clean = "kmr.invalid/rebuilder";
  return clean;
}

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
  std::unique_ptr<Attestor> a(new Attestor());
  a->key_ = std::make_unique<attest::Ed25519Key>(std::move(key));
  a->keyid_ = a->key_->keyid();
  a->verifier_id_ = std::move(verifier_id);
  a->public_base_ = std::move(public_base);
  std::filesystem::create_directories(state_dir + "/log", ec);
  KMR_ASSIGN_OR_RETURN(a->log_, attest::TransparencyLog::open(state_dir + "/log"));
  std::string origin = log_origin(a->verifier_id_);
  attest::KeySet ks;
  attest::PublishedKey pk;
  pk.keyid = a->keyid_;
  pk.public_pem = a->key_->public_pem();
  pk.vkey = attest::make_vkey(origin, *a->key_);
  pk.not_before = nb;
  pk.current = true;
  ks.add(pk);
  a->service_ = std::make_unique<attest::AttestationService>(*a->log_, *a->key_, origin, std::move(ks));
  return a;
}

std::uint64_t Attestor::log_size() const { return log_->size(); }

Result<int> Attestor::attest_rebuild(Store& store, std::int64_t rebuild_id, std::int64_t now) {
  std::lock_guard lock(mu_);
  KMR_ASSIGN_OR_RETURN(auto b, store.build(rebuild_id));
  if (!b) return not_found("build " + std::to_string(rebuild_id));
  const json& build = *b;
  std::string status = build["status"];
  std::string files = build["files"].is_string() ? build["files"].get<std::string>() : status;
  if (status != "verified") files = status;
  if (!build["module_root"].is_string()) return 0;
  // Only a build that is its artifacts' current verdict is attested (not one awaiting
  // confirmation by other workers).
  KMR_ASSIGN_OR_RETURN(bool current, store.rebuild_is_current(rebuild_id));
  if (!current) return 0;
  int written = 0;
  for (const json& art : build["artifacts"]) {
    KMR_ASSIGN_OR_RETURN(bool done, store.attested(rebuild_id, art["sha256"]));
    if (done) continue;
    attest::StatementInput in;
    in.subjects.push_back({art["filename"], art["sha256"]});
    in.verifier_id = verifier_id_;
    in.resource_uri = public_base_ + "/api/v1/artifacts/sha256/" + art["sha256"].get<std::string>();
    in.module_root = build["module_root"];
    std::optional<std::string> rebuilt_sha;
    if (art["rebuilt_sha256"].is_string()) rebuilt_sha = art["rebuilt_sha256"].get<std::string>();
    // The hash a bit-identical rebuild has (Nix: the NarHash), stored at sync.
    const std::string expected = art.contains("expected_sha256") && art["expected_sha256"].is_string()
                                     ? art["expected_sha256"].get<std::string>()
                                     : art["sha256"].get<std::string>();
    in.files = artifact_files_tier({status, files, expected, rebuilt_sha,
                                    art["filename"].get<std::string>(), build["artifacts"].size(),
                                    build.value("differing", json::array())})
                   .value_or(files);
    if (build["reason"].is_string()) in.reason = build["reason"];
    if (build["shipped_root"].is_string()) in.shipped_root = build["shipped_root"];
    if (build["rebuilt_root"].is_string()) in.rebuilt_root = build["rebuilt_root"];
    add_content_root(build, in);
    std::string env = build["environment"].dump();
    in.build_environment_sha256 = sha256_hex(Bytes(reinterpret_cast<const std::uint8_t*>(env.data()), env.size()));
    if (art["rebuilt_sha256"].is_string()) in.rebuilt_artifacts.push_back({art["filename"], art["rebuilt_sha256"]});
    auto pub = service_->attest(in);
    if (!pub) return std::move(pub).error().with_context("while attesting build " + std::to_string(rebuild_id));
    KMR_ASSIGN_OR_RETURN(std::string hex, store.blobs().put(pub->envelope));
    KMR_TRY(store.add_attestation_for_sha(hex, art["sha256"], rebuild_id,
                                          static_cast<std::int64_t>(pub->log_index), now));
    ++written;
  }
  return written;
}

}  // namespace kmr::server

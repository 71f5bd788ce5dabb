#include "server/sync.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "rebuilder/archive/narinfo.h"
#include "rebuilder/base/bytes.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/distros/arch/repository.h"
#include "rebuilder/distros/common/repository.h"
#include "rebuilder/distros/debian/repository.h"
#include "rebuilder/distros/nixos/repository.h"
#include "rebuilder/distros/suse/repository.h"
#include "server/http_client.h"
#include "server/sync_rebuilderd.h"
#include "server/sync_sources.h"

namespace kmr::server {

using nlohmann::json;

namespace {

bool wanted(const RepositoryConfig& rc, const ImportArtifact& a) { return repository_wants(rc, a.name, a.arch); }

Result<std::string> str(const json& j, const char* k, const std::string& where) {
  auto it = j.find(k);
  if (it == j.end() || !it->is_string() || it->get<std::string>().empty())
    return malformed(where + ": missing string \"" + k + "\"");
  return it->get<std::string>();
}

}  // namespace

Result<std::vector<ImportArtifact>> parse_index(const RepositoryConfig& rc, std::string_view text) {
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return malformed(rc.url + ": index is not a JSON object");
  if (!doc.contains("artifacts") || !doc["artifacts"].is_array()) return malformed(rc.url + ": no \"artifacts\" array");
  std::vector<ImportArtifact> out;
  std::size_t i = 0;
  for (const json& a : doc["artifacts"]) {
    std::string where = rc.url + ": artifacts[" + std::to_string(i++) + "]";
    if (!a.is_object()) return malformed(where + ": not an object");
    ImportArtifact ia;
    ia.resource_class = rc.resource_class;
    if (rc.format == "fixtures-manifest") {
      KMR_ASSIGN_OR_RETURN(std::string distro, str(a, "distro", where));
      if (distro != rc.distro) continue;
      KMR_ASSIGN_OR_RETURN(ia.set_key, str(a, "set", where));
      KMR_ASSIGN_OR_RETURN(ia.name, str(a, "name", where));
      KMR_ASSIGN_OR_RETURN(ia.version, str(a, "version", where));
      KMR_ASSIGN_OR_RETURN(ia.arch, str(a, "arch", where));
      KMR_ASSIGN_OR_RETURN(std::string path, str(a, "path", where));
      ia.filename = path.substr(path.rfind('/') + 1);
      ia.url = resolve_relative(rc.url, path);
      KMR_ASSIGN_OR_RETURN(ia.sha256, str(a, "sha256", where));
      if (a.contains("size") && a["size"].is_number_integer()) ia.size = a["size"].get<std::int64_t>();
      // Sources of the set live in manifest.sets[].sources.path.
      if (doc.contains("sets") && doc["sets"].is_array())
        for (const json& s : doc["sets"])
          if (s.is_object() && s.value("set", "") == ia.set_key && s.contains("sources") && s["sources"].is_object() &&
              s["sources"].contains("path") && s["sources"]["path"].is_string())
            ia.sources = resolve_relative(rc.url, s["sources"]["path"].get<std::string>());
    } else if (rc.format == "kmr-import") {
      KMR_ASSIGN_OR_RETURN(ia.set_key, str(a, "set", where));
      KMR_ASSIGN_OR_RETURN(ia.name, str(a, "name", where));
      KMR_ASSIGN_OR_RETURN(ia.version, str(a, "version", where));
      KMR_ASSIGN_OR_RETURN(ia.arch, str(a, "arch", where));
      KMR_ASSIGN_OR_RETURN(std::string url, str(a, "url", where));
      ia.url = resolve_relative(rc.url, url);
      ia.filename = a.contains("filename") && a["filename"].is_string() ? a["filename"].get<std::string>()
                                                                          : url.substr(url.rfind('/') + 1);
      KMR_ASSIGN_OR_RETURN(ia.sha256, str(a, "sha256", where));
      if (a.contains("size") && a["size"].is_number_integer()) ia.size = a["size"].get<std::int64_t>();
      if (a.contains("sources") && a["sources"].is_string()) ia.sources = resolve_relative(rc.url, a["sources"]);
      if (a.contains("resource_class") && a["resource_class"].is_string()) ia.resource_class = a["resource_class"];
    } else {
      return unsupported(rc.name + ": repository format \"" + rc.format + "\" is not wired into kmrd sync yet");
    }
    if (!distros::lower_hex64(ia.sha256)) return malformed(where + ": sha256 is not 64 lowercase hex digits");
    if (ia.name.size() > 255 || ia.version.size() > 255 || ia.set_key.size() > 512)
      return limit_exceeded(where + ": name, version or set too long");
    if (wanted(rc, ia)) out.push_back(std::move(ia));
  }
  return out;
}

namespace {

// What a distro's repository reader is told of a configured repository.
distros::RepositorySource source_of(const RepositoryConfig& rc, std::chrono::milliseconds timeout) {
  distros::RepositorySource src;
  src.name = rc.name;
  src.url = rc.url;
  src.trusted_keys = rc.trusted_keys;
  src.architectures = rc.architectures;
  src.packages = rc.packages;
  src.resource_class = rc.resource_class;
  src.wants = [&rc](std::string_view name, std::string_view arch) { return repository_wants(rc, name, arch); };
  src.timeout = timeout;
  return src;
}

bool is_local(const RepositoryConfig& rc) { return rc.url.starts_with("file://"); }

// What signature sync verifies over the repository's index; empty when none.
std::string index_signature(const RepositoryConfig& rc) {
  if (rc.format == "nix") return "narinfo Sig";  // required by nixos::read_cache
  if (rc.trusted_keys.empty()) return "";
  if (rc.format == "arch") return "<db>.sig or each package's .sig";
  if (rc.format == "rpm-md") return "repomd.xml.asc";
  if (rc.format == "apt") return "InRelease or Release.gpg";
  return "";
}

// A remote repository needs a verified signature unless the operator opted out explicitly.
// Returns whether the index will be read unsigned (shown as insecure in the API and UI).
Result<bool> check_signature_policy(const RepositoryConfig& rc) {
  if (!index_signature(rc).empty()) return false;
  if (is_local(rc) || rc.insecure_unsigned) return true;
  const bool has_signatures = rc.format == "arch" || rc.format == "rpm-md" || rc.format == "apt";
  return Error(ErrorCode::kVerificationFailed,
               rc.name + ": remote repository " + rc.url + " has no signature check (" +
                   (has_signatures ? "format " + rc.format + " is signed, but no trusted_keys are configured"
                                   : "format " + rc.format + " carries no signature") +
                   "); configure trusted_keys, or set \"insecure_unsigned\": true to sync it unsigned");
}

// Unsigned Arch db: every package not yet known must carry a valid detached signature
// (<package>.sig next to it) by the trusted keys before it is enqueued.
Result<void> verify_arch_packages(Store& store, const distros::RepositorySource& src,
                                  const std::vector<ImportArtifact>& arts) {
  for (const auto& a : arts) {
    KMR_ASSIGN_OR_RETURN(bool known, store.artifact_known(a.sha256));
    if (!known) KMR_TRY(arch::verify_package(src, a));
  }
  return {};
}

// The hash a rebuild of a narinfo artifact is compared with: its NarHash (hex). The narinfo is
// fetched again and must still have the sha256 the index recorded.
Result<void> add_nar_hashes(Store& store, std::vector<ImportArtifact>& arts, std::chrono::milliseconds timeout) {
  for (auto& a : arts) {
    if (a.content_sha256 || !a.filename.ends_with(".narinfo")) continue;
    KMR_ASSIGN_OR_RETURN(bool known, store.artifact_known(a.sha256));
    if (known) continue;
    KMR_ASSIGN_OR_RETURN(std::string text, fetch_url(a.url, timeout, 1 << 20));
    if (sha256_hex(as_bytes(text)) != a.sha256)
      return Error(ErrorCode::kVerificationFailed, a.url + ": sha256 does not match the index");
    KMR_ASSIGN_OR_RETURN(archive::NarInfo ni, archive::parse_narinfo(text, a.url));
    KMR_ASSIGN_OR_RETURN(auto nar_hash, ni.nar_hash_bytes());
    a.content_sha256 = to_hex(Bytes(nar_hash.data(), nar_hash.size()));
  }
  return {};
}

}  // namespace

Result<std::int64_t> sync_repository(Store& store, const RepositoryConfig& rc, std::int64_t now,
                                     std::chrono::milliseconds timeout) {
  KMR_ASSIGN_OR_RETURN(std::int64_t repo_id, store.upsert_repository(rc.name, rc.distro, rc.url));
  IndexContext ctx;
  auto read = [&]() -> Result<std::vector<ImportArtifact>> {
    KMR_ASSIGN_OR_RETURN(bool insecure, check_signature_policy(rc));
    KMR_TRY(store.set_repository_insecure(repo_id, insecure));
    std::vector<ImportArtifact> arts;
    const distros::RepositorySource src = source_of(rc, timeout);
    if (rc.format == "nix") {
      KMR_ASSIGN_OR_RETURN(arts, nixos::read_cache(src));
    } else if (rc.format == "rpm-md") {
      KMR_ASSIGN_OR_RETURN(arts, suse::read_repository(src));
    } else if (rc.format == "apt") {
      KMR_ASSIGN_OR_RETURN(arts, debian::read_archive(src, &ctx));
    } else if (rc.format == "rebuilderd") {
      KMR_ASSIGN_OR_RETURN(arts, read_rebuilderd(store, rc, timeout));
    } else {
      KMR_ASSIGN_OR_RETURN(std::string text, fetch_url(rc.url, timeout, 64 << 20));
      if (rc.format == "arch") {
        bool db_signed = false;
        KMR_ASSIGN_OR_RETURN(arts, arch::read_db(src, text, &db_signed));
        if (!rc.trusted_keys.empty() && !db_signed) KMR_TRY(verify_arch_packages(store, src, arts));
      } else {
        KMR_ASSIGN_OR_RETURN(arts, parse_index(rc, text));
      }
    }
    KMR_TRY(add_nar_hashes(store, arts, timeout));
    KMR_TRY(attach_sources(store, rc, ctx, arts, timeout));
    return arts;
  };
  Result<std::vector<ImportArtifact>> arts = read();
  if (!arts) {
    (void)store.record_sync(repo_id, now, arts.error().to_string());
    return std::move(arts).error();
  }
  auto n = store.import_artifacts(repo_id, rc.distro, *arts, now);
  (void)store.record_sync(repo_id, now, n ? std::nullopt : std::optional<std::string>(n.error().to_string()));
  return n;
}

}  // namespace kmr::server

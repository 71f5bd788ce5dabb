#include "server/sync.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "rebuilder/archive/arch_meta.h"
#include "rebuilder/archive/archive_reader.h"
#include "rebuilder/archive/openpgp.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "server/http_client.h"

namespace kmr::server {

using nlohmann::json;

namespace {

bool lower_hex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool wanted(const RepositoryConfig& rc, const ImportArtifact& a) {
  bool name_ok = rc.packages.empty();
  for (const auto& p : rc.packages)
    if (glob_match(p, a.name)) name_ok = true;
  bool arch_ok = rc.architectures.empty() ||
                 std::find(rc.architectures.begin(), rc.architectures.end(), a.arch) != rc.architectures.end();
  return name_ok && arch_ok;
}

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
    if (!lower_hex64(ia.sha256)) return malformed(where + ": sha256 is not 64 lowercase hex digits");
    if (ia.name.size() > 255 || ia.version.size() > 255 || ia.set_key.size() > 512)
      return limit_exceeded(where + ": name, version or set too long");
    if (wanted(rc, ia)) out.push_back(std::move(ia));
  }
  return out;
}

Result<std::vector<ImportArtifact>> read_arch_db(const RepositoryConfig& rc, const std::string& db,
                                                 std::chrono::milliseconds timeout) {
  // Signature: <db>.sig checked with the configured keyring (sqv or gpgv, via the archive library).
  if (!rc.trusted_keys.empty()) {
    KMR_ASSIGN_OR_RETURN(std::string sig, fetch_url(rc.url + ".sig", timeout, 1 << 20));
    KMR_ASSIGN_OR_RETURN(TempDir tmp, TempDir::create("kmrd-sync"));
    auto bytes = [](const std::string& s) { return Bytes(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); };
    KMR_TRY(write_file_atomic(tmp.path() + "/db", bytes(db)));
    KMR_TRY(write_file_atomic(tmp.path() + "/db.sig", bytes(sig)));
    KMR_ASSIGN_OR_RETURN(archive::PgpResult v,
                         archive::verify_detached(rc.trusted_keys[0], tmp.path() + "/db.sig", tmp.path() + "/db"));
    if (!v.valid) return Error(ErrorCode::kVerificationFailed, rc.url + ": repository signature does not verify: " + v.output);
  }
  archive::MemoryStream in(Bytes(reinterpret_cast<const std::uint8_t*>(db.data()), db.size()));
  archive::ReaderOptions opt;
  opt.name = rc.url;
  KMR_ASSIGN_OR_RETURN(auto pkgs, archive::read_repo_db(in, opt));
  std::vector<ImportArtifact> out;
  for (const auto& p : pkgs) {
    ImportArtifact a;
    a.name = p.name;
    a.version = p.version;
    a.arch = p.arch;
    a.filename = p.filename;
    a.url = resolve_relative(rc.url, p.filename);
    a.sha256 = p.sha256;
    // Split packages of one pkgbase and version are one build: one job.
    a.set_key = (p.base.empty() ? p.name : p.base) + "-" + p.version + "-" + p.arch;
    a.resource_class = rc.resource_class;
    if (!lower_hex64(a.sha256)) return malformed(rc.url + ": " + p.name + " has no %SHA256SUM%");
    if (wanted(rc, a)) out.push_back(std::move(a));
  }
  return out;
}

Result<std::int64_t> sync_repository(Store& store, const RepositoryConfig& rc, std::int64_t now,
                                     std::chrono::milliseconds timeout) {
  KMR_ASSIGN_OR_RETURN(std::int64_t repo_id, store.upsert_repository(rc.name, rc.distro, rc.url));
  auto text = fetch_url(rc.url, timeout, 64 << 20);
  Result<std::vector<ImportArtifact>> arts = !text ? Result<std::vector<ImportArtifact>>(text.error())
                                             : rc.format == "arch" ? read_arch_db(rc, *text, timeout)
                                                                   : parse_index(rc, *text);
  if (!arts) {
    (void)store.record_sync(repo_id, now, arts.error().to_string());
    return std::move(arts).error();
  }
  auto n = store.import_artifacts(repo_id, rc.distro, *arts, now);
  (void)store.record_sync(repo_id, now, n ? std::nullopt : std::optional<std::string>(n.error().to_string()));
  return n;
}

}  // namespace kmr::server

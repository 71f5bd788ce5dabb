#include "server/sync.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "rebuilder/archive/arch_meta.h"
#include "rebuilder/archive/archive_reader.h"
#include "rebuilder/archive/deb822.h"
#include "rebuilder/archive/decompress.h"
#include "rebuilder/archive/nar.h"
#include "rebuilder/archive/narinfo.h"
#include "rebuilder/archive/openpgp.h"
#include "rebuilder/archive/rpmmd.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "server/http_client.h"
#include "server/sync_rebuilderd.h"
#include "server/sync_sources.h"

namespace kmr::server {

using nlohmann::json;

namespace {

bool lower_hex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

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
    if (!lower_hex64(ia.sha256)) return malformed(where + ": sha256 is not 64 lowercase hex digits");
    if (ia.name.size() > 255 || ia.version.size() > 255 || ia.set_key.size() > 512)
      return limit_exceeded(where + ": name, version or set too long");
    if (wanted(rc, ia)) out.push_back(std::move(ia));
  }
  return out;
}

namespace {

Bytes bytes_of(std::string_view s) { return Bytes(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); }

// Verifies a detached OpenPGP signature over `data` with the first configured keyring.
Result<void> verify_detached_bytes(const RepositoryConfig& rc, const std::string& what, std::string_view data,
                                   std::string_view sig) {
  return verify_detached_data(rc.trusted_keys[0], what, data, sig);
}

}  // namespace

// db_signed: set when <db>.sig exists and verifies. Arch mirrors usually ship an unsigned db
// and signed packages; then every new package's own .sig is checked (verify_arch_packages).
Result<std::vector<ImportArtifact>> read_arch_db(const RepositoryConfig& rc, const std::string& db,
                                                 std::chrono::milliseconds timeout, bool* db_signed) {
  *db_signed = false;
  if (!rc.trusted_keys.empty()) {
    auto sig = fetch_url(rc.url + ".sig", timeout, 1 << 20);
    if (sig) {
      KMR_TRY(verify_detached_bytes(rc, rc.url, db, *sig));
      *db_signed = true;
    }
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

namespace {


// Verifies `sig_url` (detached OpenPGP signature) over `data` with the first configured keyring.
Result<void> verify_detached_url(const RepositoryConfig& rc, const std::string& what, std::string_view data,
                                 const std::string& sig_url, std::chrono::milliseconds timeout) {
  KMR_ASSIGN_OR_RETURN(std::string sig, fetch_url(sig_url, timeout, 1 << 20));
  return verify_detached_bytes(rc, what, data, sig);
}

std::string dir_of(const std::string& url) { return url.substr(0, url.rfind('/') + 1); }

std::string with_slash(const std::string& url) { return url.empty() || url.back() == '/' ? url : url + "/"; }

// "linux-6.18.0-modules" -> "6.18.0": the first dash-separated component starting with a digit.
std::string nix_version(const std::string& name) {
  std::size_t pos = 0;
  while (pos < name.size()) {
    std::size_t dash = name.find('-', pos);
    if (dash == std::string::npos || dash + 1 >= name.size()) break;
    if (name[dash + 1] >= '0' && name[dash + 1] <= '9') {
      std::size_t end = name.find('-', dash + 1);
      return name.substr(dash + 1, end == std::string::npos ? std::string::npos : end - dash - 1);
    }
    pos = dash + 1;
  }
  return "unknown";
}

Result<std::vector<archive::PublicKey>> nix_keys(const RepositoryConfig& rc) {
  std::vector<archive::PublicKey> keys;
  for (const auto& k : rc.trusted_keys) {
    std::string text = k;
    if (!k.empty() && k[0] == '/') {  // a key file ("name:base64")
      KMR_ASSIGN_OR_RETURN(ByteVector raw, read_file(k, 1 << 16));
      text.assign(raw.begin(), raw.end());
      while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\r')) text.pop_back();
    }
    KMR_ASSIGN_OR_RETURN(archive::PublicKey pk, archive::parse_public_key(text));
    keys.push_back(std::move(pk));
  }
  if (keys.empty()) return Error(ErrorCode::kVerificationFailed, rc.name + ": a nix repository needs trusted_keys");
  return keys;
}

}  // namespace

// Nix binary cache: rc.url is the cache (directory or its nix-cache-info). Narinfos are found by
// listing a file:// cache, or named by store paths in rc.packages ("/nix/store/<hash>-<name>").
// Every narinfo kept must carry a valid Sig by a trusted key (and no invalid one), its NAR must
// match FileHash/FileSize and, decompressed, NarHash/NarSize. Outputs of one Deriver are one set.
Result<std::vector<ImportArtifact>> read_nix_cache(const RepositoryConfig& rc, std::chrono::milliseconds timeout) {
  std::string base = rc.url.ends_with("nix-cache-info") ? dir_of(rc.url) : with_slash(rc.url);
  KMR_ASSIGN_OR_RETURN(std::string info_text, fetch_url(base + "nix-cache-info", timeout, 1 << 16));
  KMR_ASSIGN_OR_RETURN(archive::NixCacheInfo info, archive::parse_nix_cache_info(info_text, base + "nix-cache-info"));
  KMR_ASSIGN_OR_RETURN(auto keys, nix_keys(rc));
  std::vector<std::string> hashes;
  std::vector<std::string> patterns;
  for (const auto& p : rc.packages) {
    if (p.starts_with(info.store_dir + "/")) {
      std::string b = p.substr(info.store_dir.size() + 1);
      hashes.push_back(b.substr(0, b.find('-')));
    } else {
      patterns.push_back(p);
    }
  }
  if (hashes.empty()) {
    if (!base.starts_with("file://"))
      return malformed(rc.name + ": an http nix cache cannot be listed; name store paths in \"packages\"");
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(base.substr(7), ec)) {
      std::string f = e.path().filename().string();
      if (f.ends_with(".narinfo")) hashes.push_back(f.substr(0, f.size() - 8));
    }
    if (ec) return Error(ErrorCode::kIo, base + ": " + ec.message());
    std::sort(hashes.begin(), hashes.end());
  }
  std::vector<ImportArtifact> out;
  for (const auto& h : hashes) {
    std::string url = base + h + ".narinfo";
    KMR_ASSIGN_OR_RETURN(std::string text, fetch_url(url, timeout, 1 << 20));
    KMR_ASSIGN_OR_RETURN(archive::NarInfo ni, archive::parse_narinfo(text, url));
    if (ni.deriver.empty()) continue;  // sources and derivations: not build outputs
    std::string base_name = ni.store_path.substr(ni.store_path.rfind('/') + 1);
    ImportArtifact a;
    a.name = base_name.size() > 33 ? base_name.substr(33) : base_name;
    a.version = nix_version(a.name);
    a.arch = rc.architectures.empty() ? "x86_64-linux" : rc.architectures[0];
    a.filename = h + ".narinfo";
    a.url = url;
    a.sha256 = sha256_hex(bytes_of(text));
    a.size = static_cast<std::int64_t>(text.size());
    a.set_key = ni.deriver.ends_with(".drv") ? ni.deriver.substr(0, ni.deriver.size() - 4) : ni.deriver;
    a.resource_class = rc.resource_class;
    bool name_ok = patterns.empty();
    for (const auto& p : patterns)
      if (glob_match(p, a.name)) name_ok = true;
    if (!name_ok) continue;
    KMR_ASSIGN_OR_RETURN(archive::SigCheck sc, archive::verify_narinfo_sigs(ni, keys));
    if (sc.valid == 0 || sc.invalid > 0)
      return Error(ErrorCode::kVerificationFailed,
                   url + ": narinfo signature does not verify with the trusted keys (" + std::to_string(sc.valid) +
                       " valid, " + std::to_string(sc.invalid) + " invalid, " + std::to_string(sc.untrusted) +
                       " untrusted)");
    // The NAR: FileHash over the compressed file, NarHash over the NAR.
    std::string nar_url = resolve_relative(base, ni.url);
    KMR_ASSIGN_OR_RETURN(std::string nar, fetch_url(nar_url, timeout, 4ull << 30));
    if (!ni.file_hash.empty()) {
      if (!ni.file_hash.starts_with("sha256:")) return malformed(url + ": FileHash is not sha256");
      auto want = archive::nix32_decode(ni.file_hash.substr(7), 32);
      if (!want) return malformed(url + ": FileHash is not nix32");
      if (sha256_hex(bytes_of(nar)) != to_hex(*want))
        return Error(ErrorCode::kVerificationFailed, nar_url + ": sha256 does not match the narinfo's FileHash");
      if (ni.file_size != 0 && ni.file_size != nar.size())
        return Error(ErrorCode::kVerificationFailed, nar_url + ": size does not match the narinfo's FileSize");
    }
    KMR_ASSIGN_OR_RETURN(ByteVector raw, archive::decompress_all(bytes_of(nar), ni.nar_size));
    KMR_ASSIGN_OR_RETURN(auto nar_hash, ni.nar_hash_bytes());
    if (raw.size() != ni.nar_size || sha256_hex(Bytes(raw.data(), raw.size())) != to_hex(nar_hash))
      return Error(ErrorCode::kVerificationFailed, nar_url + ": NAR does not match the narinfo's NarHash/NarSize");
    a.content_sha256 = to_hex(nar_hash);
    out.push_back(std::move(a));
  }
  return out;
}

// rpm-md: rc.url is the repository root (or its repodata/repomd.xml). With trusted_keys,
// repomd.xml.asc must verify. primary.xml(.gz/.zst/...) must match repomd's checksum (and
// open-checksum). One job per source rpm and architecture.
Result<std::vector<ImportArtifact>> read_rpm_md(const RepositoryConfig& rc, std::chrono::milliseconds timeout) {
  std::string base = rc.url.ends_with("repodata/repomd.xml") ? rc.url.substr(0, rc.url.size() - 19) : with_slash(rc.url);
  KMR_ASSIGN_OR_RETURN(auto pkgs, read_rpm_primary(rc.trusted_keys, base, timeout));
  const std::string primary_url = base + "repodata/repomd.xml (primary)";
  std::vector<ImportArtifact> out;
  for (const auto& p : pkgs) {
    ImportArtifact a;
    a.name = p.name;
    a.version = (p.epoch.empty() || p.epoch == "0" ? "" : p.epoch + ":") + p.version + "-" + p.release;
    a.arch = p.arch;
    a.filename = p.location.substr(p.location.rfind('/') + 1);
    a.url = resolve_relative(base, p.location);
    if (p.checksum_type != "sha256") return malformed(primary_url + ": " + p.name + " has no sha256 checksum");
    a.sha256 = p.checksum;
    if (p.package_size != 0) a.size = static_cast<std::int64_t>(p.package_size);
    a.set_key = (p.sourcerpm.empty() ? p.name + "-" + a.version : p.sourcerpm) + "-" + p.arch;
    a.resource_class = rc.resource_class;
    if (!lower_hex64(a.sha256)) return malformed(primary_url + ": " + p.name + " has a bad sha256");
    if (p.arch == "src") continue;
    if (wanted(rc, a)) out.push_back(std::move(a));
  }
  return out;
}

// apt: rc.url is dists/<suite>/Release (or InRelease, clearsigned). With trusted_keys, Release.gpg
// (or InRelease's signature) must verify. Every binary-<arch>/Packages(.xz/.gz) listed in the
// Release (one compression per index, checked against its SHA256 and size) is read. One job per
// source package, version and architecture.
Result<std::vector<ImportArtifact>> read_apt(const RepositoryConfig& rc, std::chrono::milliseconds timeout,
                                             IndexContext* ctx) {
  KMR_ASSIGN_OR_RETURN(std::string release_text, fetch_url(rc.url, timeout, 64 << 20));
  bool inrelease = rc.url.ends_with("InRelease");
  if (!rc.trusted_keys.empty()) {
    if (inrelease) {
      KMR_ASSIGN_OR_RETURN(TempDir tmp, TempDir::create("kmrd-sync"));
      KMR_TRY(write_file_atomic(tmp.path() + "/InRelease", bytes_of(release_text)));
      KMR_ASSIGN_OR_RETURN(archive::PgpResult v, archive::verify_clearsigned(rc.trusted_keys[0], tmp.path() + "/InRelease"));
      if (!v.valid) return Error(ErrorCode::kVerificationFailed, rc.url + ": repository signature does not verify: " + v.output);
    } else {
      KMR_TRY(verify_detached_url(rc, rc.url, release_text, rc.url + ".gpg", timeout));
    }
  }
  KMR_ASSIGN_OR_RETURN(auto paras, archive::parse_deb822(release_text, rc.url));
  if (paras.empty()) return malformed(rc.url + ": empty Release");
  KMR_ASSIGN_OR_RETURN(auto files, archive::release_sha256(paras[0], rc.url));
  std::string dist = dir_of(rc.url);
  std::size_t dists = rc.url.rfind("/dists/");
  if (dists == std::string::npos) return malformed(rc.url + ": a Release URL must be under dists/");
  std::string archive_root = rc.url.substr(0, dists + 1);
  *ctx = IndexContext{files, dist, archive_root};
  // Pick one index per directory: xz, then gz, then plain.
  std::map<std::string, std::string> index;  // dir -> path
  auto rank = [](const std::string& p) { return p.ends_with(".xz") ? 0 : p.ends_with(".gz") ? 1 : 2; };
  for (const auto& f : files) {
    std::string p = f.path;
    std::string stem = p.ends_with(".xz") || p.ends_with(".gz") ? p.substr(0, p.size() - 3) : p;
    if (!stem.ends_with("/Packages")) continue;
    std::string dir = stem.substr(0, stem.size() - 9);
    std::size_t bin = dir.rfind("binary-");
    if (bin == std::string::npos || dir.find("debian-installer") != std::string::npos) continue;
    std::string arch = dir.substr(bin + 7);
    if (!rc.architectures.empty() && arch != "all" &&
        std::find(rc.architectures.begin(), rc.architectures.end(), arch) == rc.architectures.end())
      continue;
    auto it = index.find(dir);
    if (it == index.end() || rank(p) < rank(it->second)) index[dir] = p;
  }
  if (index.empty()) return malformed(rc.url + ": no binary Packages index listed in the SHA256 field");
  std::vector<ImportArtifact> out;
  for (const auto& [dir, path] : index) {
    std::string url = dist + path;
    KMR_ASSIGN_OR_RETURN(std::string packed, fetch_url(url, timeout, 1ull << 30));
    KMR_TRY(archive::check_release_entry(files, path, packed));
    KMR_ASSIGN_OR_RETURN(ByteVector raw, archive::decompress_all(bytes_of(packed), 4ull << 30));
    std::string_view text(reinterpret_cast<const char*>(raw.data()), raw.size());
    KMR_ASSIGN_OR_RETURN(auto pkgs, archive::parse_deb822(text, url));
    for (const auto& p : pkgs) {
      ImportArtifact a;
      a.name = p.get_or("Package");
      a.version = p.get_or("Version");
      a.arch = p.get_or("Architecture");
      std::string filename = p.get_or("Filename");
      a.sha256 = p.get_or("SHA256");
      if (a.name.empty() || a.version.empty() || a.arch.empty() || filename.empty())
        return malformed(url + ": a paragraph lacks Package, Version, Architecture or Filename");
      if (!lower_hex64(a.sha256)) return malformed(url + ": " + a.name + " has no SHA256");
      a.filename = filename.substr(filename.rfind('/') + 1);
      a.url = resolve_relative(archive_root, filename);
      std::string size = p.get_or("Size");
      if (!size.empty() && size.size() < 19 && std::all_of(size.begin(), size.end(), [](char c) { return c >= '0' && c <= '9'; }))
        a.size = std::stoll(size);
      // Source: "name" or "name (version)".
      std::string src = p.get_or("Source", a.name);
      std::string src_version = a.version;
      if (auto paren = src.find(" ("); paren != std::string::npos && src.back() == ')') {
        src_version = src.substr(paren + 2, src.size() - paren - 3);
        src = src.substr(0, paren);
      }
      a.set_key = src + "_" + src_version + "_" + a.arch;
      a.resource_class = rc.resource_class;
      if (wanted(rc, a)) out.push_back(std::move(a));
    }
  }
  return out;
}

namespace {

bool is_local(const RepositoryConfig& rc) { return rc.url.starts_with("file://"); }

// What signature sync verifies over the repository's index; empty when none.
std::string index_signature(const RepositoryConfig& rc) {
  if (rc.format == "nix") return "narinfo Sig";  // required by read_nix_cache
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
Result<void> verify_arch_packages(Store& store, const RepositoryConfig& rc, const std::vector<ImportArtifact>& arts,
                                  std::chrono::milliseconds timeout) {
  for (const auto& a : arts) {
    KMR_ASSIGN_OR_RETURN(bool known, store.artifact_known(a.sha256));
    if (known) continue;
    KMR_ASSIGN_OR_RETURN(std::string sig, fetch_url(a.url + ".sig", timeout, 1 << 20));
    KMR_ASSIGN_OR_RETURN(std::string pkg, fetch_url(a.url, timeout, 4ull << 30));
    if (sha256_hex(bytes_of(pkg)) != a.sha256)
      return Error(ErrorCode::kVerificationFailed, a.url + ": sha256 does not match the repository db");
    KMR_TRY(verify_detached_bytes(rc, a.url, pkg, sig));
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
    if (sha256_hex(bytes_of(text)) != a.sha256)
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
    if (rc.format == "nix") {
      KMR_ASSIGN_OR_RETURN(arts, read_nix_cache(rc, timeout));
    } else if (rc.format == "rpm-md") {
      KMR_ASSIGN_OR_RETURN(arts, read_rpm_md(rc, timeout));
    } else if (rc.format == "apt") {
      KMR_ASSIGN_OR_RETURN(arts, read_apt(rc, timeout, &ctx));
    } else if (rc.format == "rebuilderd") {
      KMR_ASSIGN_OR_RETURN(arts, read_rebuilderd(store, rc, timeout));
    } else {
      KMR_ASSIGN_OR_RETURN(std::string text, fetch_url(rc.url, timeout, 64 << 20));
      if (rc.format == "arch") {
        bool db_signed = false;
        KMR_ASSIGN_OR_RETURN(arts, read_arch_db(rc, text, timeout, &db_signed));
        if (!rc.trusted_keys.empty() && !db_signed) KMR_TRY(verify_arch_packages(store, rc, arts, timeout));
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

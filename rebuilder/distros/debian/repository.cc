#include "rebuilder/distros/debian/repository.h"

#include <algorithm>
#include <map>

#include "rebuilder/archive/decompress.h"
#include "rebuilder/archive/openpgp.h"
#include "rebuilder/base/bytes.h"
#include "rebuilder/net/http_client.h"
#include "rebuilder/net/url.h"
#include "rebuilder/base/file.h"

namespace kmr::debian {

using distros::IndexedPackage;

Result<std::vector<IndexedPackage>> read_archive(const distros::RepositorySource& src, ReleaseIndex* index) {
  KMR_ASSIGN_OR_RETURN(std::string release_text, net::fetch_url(src.url, src.timeout, 64 << 20));
  bool inrelease = src.url.ends_with("InRelease");
  if (!src.trusted_keys.empty()) {
    if (inrelease) {
      KMR_ASSIGN_OR_RETURN(TempDir tmp, TempDir::create("kmrd-sync"));
      KMR_TRY(write_file_atomic(tmp.path() + "/InRelease", as_bytes(release_text)));
      KMR_ASSIGN_OR_RETURN(archive::PgpResult v, archive::verify_clearsigned(src.trusted_keys[0], tmp.path() + "/InRelease"));
      if (!v.valid) return Error(ErrorCode::kVerificationFailed, src.url + ": repository signature does not verify: " + v.output);
    } else {
      KMR_ASSIGN_OR_RETURN(std::string sig, net::fetch_url(src.url + ".gpg", src.timeout, 1 << 20));
      KMR_TRY(distros::verify_detached_data(src.trusted_keys[0], src.url, release_text, sig));
    }
  }
  KMR_ASSIGN_OR_RETURN(auto paras, archive::parse_deb822(release_text, src.url));
  if (paras.empty()) return malformed(src.url + ": empty Release");
  KMR_ASSIGN_OR_RETURN(auto files, archive::release_sha256(paras[0], src.url));
  std::string dist = distros::url_dir(src.url);
  std::size_t dists = src.url.rfind("/dists/");
  if (dists == std::string::npos) return malformed(src.url + ": a Release URL must be under dists/");
  std::string archive_root = src.url.substr(0, dists + 1);
  *index = ReleaseIndex{files, dist, archive_root};
  // Pick one index per directory: xz, then gz, then plain.
  std::map<std::string, std::string> by_dir;  // dir -> path
  auto rank = [](const std::string& p) { return p.ends_with(".xz") ? 0 : p.ends_with(".gz") ? 1 : 2; };
  for (const auto& f : files) {
    std::string p = f.path;
    std::string stem = p.ends_with(".xz") || p.ends_with(".gz") ? p.substr(0, p.size() - 3) : p;
    if (!stem.ends_with("/Packages")) continue;
    std::string dir = stem.substr(0, stem.size() - 9);
    std::size_t bin = dir.rfind("binary-");
    if (bin == std::string::npos || dir.find("debian-installer") != std::string::npos) continue;
    std::string arch = dir.substr(bin + 7);
    if (!src.architectures.empty() && arch != "all" &&
        std::find(src.architectures.begin(), src.architectures.end(), arch) == src.architectures.end())
      continue;
    auto it = by_dir.find(dir);
    if (it == by_dir.end() || rank(p) < rank(it->second)) by_dir[dir] = p;
  }
  if (by_dir.empty()) return malformed(src.url + ": no binary Packages index listed in the SHA256 field");
  std::vector<IndexedPackage> out;
  for (const auto& [dir, path] : by_dir) {
    std::string url = dist + path;
    KMR_ASSIGN_OR_RETURN(std::string packed, net::fetch_url(url, src.timeout, 1ull << 30));
    KMR_TRY(archive::check_release_entry(files, path, packed));
    KMR_ASSIGN_OR_RETURN(ByteVector raw, archive::decompress_all(as_bytes(packed), 4ull << 30));
    std::string_view text(reinterpret_cast<const char*>(raw.data()), raw.size());
    KMR_ASSIGN_OR_RETURN(auto pkgs, archive::parse_deb822(text, url));
    for (const auto& p : pkgs) {
      IndexedPackage a;
      a.name = p.get_or("Package");
      a.version = p.get_or("Version");
      a.arch = p.get_or("Architecture");
      std::string filename = p.get_or("Filename");
      a.sha256 = p.get_or("SHA256");
      if (a.name.empty() || a.version.empty() || a.arch.empty() || filename.empty())
        return malformed(url + ": a paragraph lacks Package, Version, Architecture or Filename");
      if (!distros::lower_hex64(a.sha256)) return malformed(url + ": " + a.name + " has no SHA256");
      a.filename = filename.substr(filename.rfind('/') + 1);
      a.url = net::resolve_url_or_keep(archive_root, filename);
      std::string size = p.get_or("Size");
      if (!size.empty() && size.size() < 19 && std::all_of(size.begin(), size.end(), [](char c) { return c >= '0' && c <= '9'; }))
        a.size = std::stoll(size);
      // Source: "name" or "name (version)".
      std::string source = p.get_or("Source", a.name);
      std::string source_version = a.version;
      if (auto paren = source.find(" ("); paren != std::string::npos && source.back() == ')') {
        source_version = source.substr(paren + 2, source.size() - paren - 3);
        source = source.substr(0, paren);
      }
      a.set_key = source + "_" + source_version + "_" + a.arch;
      a.resource_class = src.resource_class;
      if (src.wanted(a)) out.push_back(std::move(a));
    }
  }
  return out;
}

}  // namespace kmr::debian

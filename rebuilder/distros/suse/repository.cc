#include "rebuilder/distros/suse/repository.h"

#include "rebuilder/archive/decompress.h"
#include "rebuilder/base/bytes.h"
#include "rebuilder/net/http_client.h"
#include "rebuilder/net/url.h"

namespace kmr::suse {

using distros::IndexedPackage;

Result<std::vector<archive::RpmMdPackage>> read_primary(const std::vector<std::string>& trusted_keys,
                                                            const std::string& base, std::chrono::milliseconds timeout) {
  const std::string repomd_url = base + "repodata/repomd.xml";
  KMR_ASSIGN_OR_RETURN(std::string repomd, net::fetch_url(repomd_url, timeout, 16 << 20));
  if (!trusted_keys.empty()) {
    KMR_ASSIGN_OR_RETURN(std::string sig, net::fetch_url(repomd_url + ".asc", timeout, 1 << 20));
    KMR_TRY(distros::verify_detached_data(trusted_keys[0], repomd_url, repomd, sig));
  }
  KMR_ASSIGN_OR_RETURN(auto data, archive::parse_repomd(repomd, repomd_url));
  const archive::RepoMdData* primary = nullptr;
  for (const auto& d : data)
    if (d.type == "primary") primary = &d;
  if (primary == nullptr) return malformed(repomd_url + ": no primary data");
  const std::string primary_url = net::resolve_url_or_keep(base, primary->location);
  KMR_ASSIGN_OR_RETURN(std::string packed, net::fetch_url(primary_url, timeout, 1ull << 30));
  KMR_TRY(archive::check_digest(packed, primary->checksum_type, primary->checksum, primary_url));
  KMR_ASSIGN_OR_RETURN(ByteVector raw, archive::decompress_all(as_bytes(packed), 4ull << 30));
  std::string_view xml(reinterpret_cast<const char*>(raw.data()), raw.size());
  if (!primary->open_checksum.empty())
    KMR_TRY(archive::check_digest(xml, primary->checksum_type, primary->open_checksum, primary_url + " (decompressed)"));
  return archive::parse_primary(xml, primary_url);
}

Result<std::vector<IndexedPackage>> read_repository(const distros::RepositorySource& src) {
  std::string base = src.url.ends_with("repodata/repomd.xml") ? src.url.substr(0, src.url.size() - 19) : distros::with_slash(src.url);
  KMR_ASSIGN_OR_RETURN(auto pkgs, read_primary(src.trusted_keys, base, src.timeout));
  const std::string primary_url = base + "repodata/repomd.xml (primary)";
  std::vector<IndexedPackage> out;
  for (const auto& p : pkgs) {
    IndexedPackage a;
    a.name = p.name;
    a.version = (p.epoch.empty() || p.epoch == "0" ? "" : p.epoch + ":") + p.version + "-" + p.release;
    a.arch = p.arch;
    a.filename = p.location.substr(p.location.rfind('/') + 1);
    a.url = net::resolve_url_or_keep(base, p.location);
    if (p.checksum_type != "sha256") return malformed(primary_url + ": " + p.name + " has no sha256 checksum");
    a.sha256 = p.checksum;
    if (p.package_size != 0) a.size = static_cast<std::int64_t>(p.package_size);
    a.set_key = (p.sourcerpm.empty() ? p.name + "-" + a.version : p.sourcerpm) + "-" + p.arch;
    a.resource_class = src.resource_class;
    if (!distros::lower_hex64(a.sha256)) return malformed(primary_url + ": " + p.name + " has a bad sha256");
    if (p.arch == "src") continue;
    if (src.wanted(a)) out.push_back(std::move(a));
  }
  return out;
}

}  // namespace kmr::suse

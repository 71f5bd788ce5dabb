#include "rebuilder/distros/arch/repository.h"

#include "rebuilder/archive/arch_meta.h"
#include "rebuilder/archive/archive_reader.h"
#include "rebuilder/base/bytes.h"
#include "rebuilder/net/http_client.h"
#include "rebuilder/net/url.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"

namespace kmr::arch {

using distros::IndexedPackage;

Result<std::vector<IndexedPackage>> read_db(const distros::RepositorySource& src, const std::string& db, bool* db_signed) {
  *db_signed = false;
  if (!src.trusted_keys.empty()) {
    auto sig = net::fetch_url(src.url + ".sig", src.timeout, 1 << 20);
    if (sig) {
      KMR_TRY(distros::verify_detached_data(src.trusted_keys[0], src.url, db, *sig));
      *db_signed = true;
    }
  }
  archive::MemoryStream in(as_bytes(db));
  archive::ReaderOptions opt;
  opt.name = src.url;
  KMR_ASSIGN_OR_RETURN(auto pkgs, archive::read_repo_db(in, opt));
  std::vector<IndexedPackage> out;
  for (const auto& p : pkgs) {
    IndexedPackage a;
    a.name = p.name;
    a.version = p.version;
    a.arch = p.arch;
    a.filename = p.filename;
    a.url = net::resolve_url_or_keep(src.url, p.filename);
    a.sha256 = p.sha256;
    a.set_key = (p.base.empty() ? p.name : p.base) + "-" + p.version + "-" + p.arch;
    a.resource_class = src.resource_class;
    if (!distros::lower_hex64(a.sha256)) return malformed(src.url + ": " + p.name + " has no %SHA256SUM%");
    if (src.wanted(a)) out.push_back(std::move(a));
  }
  return out;
}

Result<void> verify_package(const distros::RepositorySource& src, const IndexedPackage& p) {
  if (src.trusted_keys.empty()) return Error(ErrorCode::kVerificationFailed, src.name + ": no trusted keys to check " + p.url);
  KMR_ASSIGN_OR_RETURN(std::string sig, net::fetch_url(p.url + ".sig", src.timeout, 1 << 20));
  KMR_ASSIGN_OR_RETURN(std::string pkg, net::fetch_url(p.url, src.timeout, 4ull << 30));
  if (sha256_hex(as_bytes(pkg)) != p.sha256)
    return Error(ErrorCode::kVerificationFailed, p.url + ": sha256 does not match the repository db");
  return distros::verify_detached_data(src.trusted_keys[0], p.url, pkg, sig);
}

}  // namespace kmr::arch

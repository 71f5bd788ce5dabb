#include "rebuilder/distros/nixos/repository.h"

#include <algorithm>
#include <filesystem>

#include "rebuilder/archive/decompress.h"
#include "rebuilder/archive/nar.h"
#include "rebuilder/archive/narinfo.h"
#include "rebuilder/base/bytes.h"
#include "rebuilder/net/http_client.h"
#include "rebuilder/net/url.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/distros/common/package_filter.h"

namespace kmr::nixos {

using distros::IndexedPackage;

std::string version_of(const std::string& name) {
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

namespace {

Result<std::vector<archive::PublicKey>> trusted_keys(const distros::RepositorySource& src) {
  std::vector<archive::PublicKey> keys;
  for (const auto& k : src.trusted_keys) {
    std::string text = k;
    if (!k.empty() && k[0] == '/') {  // a key file ("name:base64")
      KMR_ASSIGN_OR_RETURN(ByteVector raw, read_file(k, 1 << 16));
      text.assign(raw.begin(), raw.end());
      while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\r')) text.pop_back();
    }
    KMR_ASSIGN_OR_RETURN(archive::PublicKey pk, archive::parse_public_key(text));
    keys.push_back(std::move(pk));
  }
  if (keys.empty()) return Error(ErrorCode::kVerificationFailed, src.name + ": a nix repository needs trusted_keys");
  return keys;
}

}  // namespace

Result<std::vector<IndexedPackage>> read_cache(const distros::RepositorySource& src) {
  std::string base = src.url.ends_with("nix-cache-info") ? distros::url_dir(src.url) : distros::with_slash(src.url);
  KMR_ASSIGN_OR_RETURN(std::string info_text, net::fetch_url(base + "nix-cache-info", src.timeout, 1 << 16));
  KMR_ASSIGN_OR_RETURN(archive::NixCacheInfo info, archive::parse_nix_cache_info(info_text, base + "nix-cache-info"));
  KMR_ASSIGN_OR_RETURN(auto keys, trusted_keys(src));
  std::vector<std::string> hashes;
  std::vector<std::string> patterns;
  for (const auto& p : src.packages) {
    if (p.starts_with(info.store_dir + "/")) {
      std::string b = p.substr(info.store_dir.size() + 1);
      hashes.push_back(b.substr(0, b.find('-')));
    } else {
      patterns.push_back(p);
    }
  }
  if (hashes.empty()) {
    if (!base.starts_with("file://"))
      return malformed(src.name + ": an http nix cache cannot be listed; name store paths in \"packages\"");
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(base.substr(7), ec)) {
      std::string f = e.path().filename().string();
      if (f.ends_with(".narinfo")) hashes.push_back(f.substr(0, f.size() - 8));
    }
    if (ec) return Error(ErrorCode::kIo, base + ": " + ec.message());
    std::sort(hashes.begin(), hashes.end());
  }
  std::vector<IndexedPackage> out;
  for (const auto& h : hashes) {
    std::string url = base + h + ".narinfo";
    KMR_ASSIGN_OR_RETURN(std::string text, net::fetch_url(url, src.timeout, 1 << 20));
    KMR_ASSIGN_OR_RETURN(archive::NarInfo ni, archive::parse_narinfo(text, url));
    if (ni.deriver.empty()) continue;  // sources and derivations: not build outputs
    std::string base_name = ni.store_path.substr(ni.store_path.rfind('/') + 1);
    IndexedPackage a;
    a.name = base_name.size() > 33 ? base_name.substr(33) : base_name;
    a.version = version_of(a.name);
    a.arch = src.architectures.empty() ? "x86_64-linux" : src.architectures[0];
    a.filename = h + ".narinfo";
    a.url = url;
    a.sha256 = sha256_hex(as_bytes(text));
    a.size = static_cast<std::int64_t>(text.size());
    a.set_key = ni.deriver.ends_with(".drv") ? ni.deriver.substr(0, ni.deriver.size() - 4) : ni.deriver;
    a.resource_class = src.resource_class;
    bool name_ok = patterns.empty();
    for (const auto& p : patterns)
      if (distros::glob_match(p, a.name)) name_ok = true;
    if (!name_ok) continue;
    KMR_ASSIGN_OR_RETURN(archive::SigCheck sc, archive::verify_narinfo_sigs(ni, keys));
    if (sc.valid == 0 || sc.invalid > 0)
      return Error(ErrorCode::kVerificationFailed,
                   url + ": narinfo signature does not verify with the trusted keys (" + std::to_string(sc.valid) +
                       " valid, " + std::to_string(sc.invalid) + " invalid, " + std::to_string(sc.untrusted) +
                       " untrusted)");
    // The NAR: FileHash over the compressed file, NarHash over the NAR.
    std::string nar_url = net::resolve_url_or_keep(base, ni.url);
    KMR_ASSIGN_OR_RETURN(std::string nar, net::fetch_url(nar_url, src.timeout, 4ull << 30));
    if (!ni.file_hash.empty()) {
      if (!ni.file_hash.starts_with("sha256:")) return malformed(url + ": FileHash is not sha256");
      auto want = archive::nix32_decode(ni.file_hash.substr(7), 32);
      if (!want) return malformed(url + ": FileHash is not nix32");
      if (sha256_hex(as_bytes(nar)) != to_hex(*want))
        return Error(ErrorCode::kVerificationFailed, nar_url + ": sha256 does not match the narinfo's FileHash");
      if (ni.file_size != 0 && ni.file_size != nar.size())
        return Error(ErrorCode::kVerificationFailed, nar_url + ": size does not match the narinfo's FileSize");
    }
    KMR_ASSIGN_OR_RETURN(ByteVector raw, archive::decompress_all(as_bytes(nar), ni.nar_size));
    KMR_ASSIGN_OR_RETURN(auto nar_hash, ni.nar_hash_bytes());
    if (raw.size() != ni.nar_size || sha256_hex(Bytes(raw.data(), raw.size())) != to_hex(nar_hash))
      return Error(ErrorCode::kVerificationFailed, nar_url + ": NAR does not match the narinfo's NarHash/NarSize");
    a.content_sha256 = to_hex(nar_hash);
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace kmr::nixos

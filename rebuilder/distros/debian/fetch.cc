#include "rebuilder/distros/debian/fetch.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "rebuilder/archive/deb.h"
#include "rebuilder/archive/deb822.h"
#include "rebuilder/archive/decompress.h"
#include "rebuilder/archive/openpgp.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/net/http_client.h"

namespace kmr::debian {
namespace {

constexpr std::uint64_t kMaxRelease = 64ull << 20;
constexpr std::uint64_t kMaxIndex = 512ull << 20;
constexpr std::uint64_t kMaxIndexText = 2ull << 30;
constexpr std::uint64_t kMaxBuildinfo = 16ull << 20;

Bytes bytes_of(std::string_view s) { return Bytes(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); }

std::string file_name_of(const std::string& path) { return std::filesystem::path(path).filename().string(); }

Result<Digest256> digest_of(const std::string& hex) {
  auto raw = from_hex(hex);
  if (!is_sha256_hex(hex) || !raw || raw->size() != 32) return malformed("not a sha256: " + hex.substr(0, 80));
  Digest256 d{};
  std::copy(raw->begin(), raw->end(), d.begin());
  return d;
}

// The Release, its signature checked with the keyring, as parsed checksums.
Result<std::vector<archive::ReleaseFile>> verified_release(const net::HttpClient& client, const RepositoryOptions& o,
                                                           const ReleaseLocation& loc) {
  KMR_ASSIGN_OR_RETURN(std::string text, client.get(o.release_url, kMaxRelease));
  KMR_ASSIGN_OR_RETURN(TempDir tmp, TempDir::create("kmr-release"));
  const std::string data = tmp.path() + "/Release";
  KMR_TRY(write_file_atomic(data, bytes_of(text)));
  archive::PgpResult v;
  if (loc.clearsigned) {
    KMR_ASSIGN_OR_RETURN(v, archive::verify_clearsigned(o.keyring, data));
  } else {
    KMR_ASSIGN_OR_RETURN(std::string sig, client.get(o.release_url + ".gpg", 1 << 20));
    KMR_TRY(write_file_atomic(data + ".gpg", bytes_of(sig)));
    KMR_ASSIGN_OR_RETURN(v, archive::verify_detached(o.keyring, data + ".gpg", data));
  }
  if (!v.valid)
    return Error(ErrorCode::kVerificationFailed,
                 o.release_url + ": the repository's signature does not verify with " + o.keyring + ": " + v.output);
  KMR_ASSIGN_OR_RETURN(auto paras, archive::parse_deb822(text, o.release_url));
  if (paras.empty()) return malformed(o.release_url + ": empty Release");
  return archive::release_sha256(paras[0], o.release_url);
}

// The Sources paragraphs of `source` from every Sources index the Release
// lists, each index checked against the Release.
Result<std::vector<archive::Deb822Paragraph>> source_paragraphs(const net::HttpClient& client,
                                                                const std::vector<archive::ReleaseFile>& release,
                                                                const ReleaseLocation& loc, const std::string& source,
                                                                std::vector<std::string>& tried) {
  std::vector<archive::Deb822Paragraph> out;
  for (const auto& path : sources_index_paths(release)) {
    const std::string url = loc.dist_url + path;
    tried.push_back(url);
    KMR_ASSIGN_OR_RETURN(std::string packed, client.get(url, kMaxIndex));
    KMR_TRY(archive::check_release_entry(release, path, packed));
    KMR_ASSIGN_OR_RETURN(ByteVector raw, archive::decompress_all(bytes_of(packed), kMaxIndexText));
    const std::string picked =
        paragraphs_of(std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()), {source});
    KMR_ASSIGN_OR_RETURN(auto paras, archive::parse_deb822(picked, url));
    for (auto& p : paras) out.push_back(std::move(p));
  }
  return out;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// Downloads one file into dir (its sha256 and size checked when given). A
// file the server does not give is missing; one with another hash is an error.
Result<bool> download(const net::HttpClient& client, const distros::SourceFile& f, const std::string& dir,
                      std::uint64_t max_bytes, std::vector<std::string>& missing) {
  net::DownloadOptions d;
  d.max_bytes = f.size ? *f.size : max_bytes;
  if (!f.sha256.empty()) {
    KMR_ASSIGN_OR_RETURN(d.expected_sha256, digest_of(f.sha256));
  }
  auto got = client.download(f.url, dir + "/" + f.name, d);
  if (got) {
    if (f.size && got->size != *f.size)
      return Error(ErrorCode::kVerificationFailed, f.url + ": " + std::to_string(got->size) + " bytes, the index says " +
                                                       std::to_string(*f.size));
    return true;
  }
  if (got.error().code() == ErrorCode::kVerificationFailed || got.error().code() == ErrorCode::kLimitExceeded)
    return Error(ErrorCode::kVerificationFailed, f.what + ": " + got.error().message());
  missing.push_back(f.what + ": " + got.error().message());  // the message names the URL
  return false;
}

Result<void> fetch_sources(const net::HttpClient& client, const std::vector<archive::ReleaseFile>& release,
                           const ReleaseLocation& loc, const BinaryRef& ref, FetchedInputs& out,
                           std::vector<distros::SourceFile>& files) {
  std::vector<std::string> tried;
  KMR_ASSIGN_OR_RETURN(auto paras, source_paragraphs(client, release, loc, ref.source, tried));
  const archive::Deb822Paragraph* p = find_source(paras, ref.source, ref.source_version);
  if (p == nullptr) {
    out.missing.push_back("source package " + ref.source + " " + ref.source_version + ": not in " +
                          (tried.empty() ? loc.dist_url + " (the Release lists no Sources index)" : joined(tried)));
    return ok();
  }
  KMR_ASSIGN_OR_RETURN(files, dsc_files(*p, loc.archive_root));
  std::vector<std::string> names;
  for (const auto& f : files) {
    KMR_ASSIGN_OR_RETURN(bool got, download(client, f, out.dir, 0, out.missing));
    if (got) names.push_back(f.name);
  }
  if (names.size() == files.size()) out.sources = std::move(names);
  return ok();
}

}  // namespace

Result<ReleaseLocation> release_location(const std::string& release_url) {
  auto parsed = net::parse_url(release_url);
  if (!parsed) return Error(parsed.error().code(), "repository: " + parsed.error().message());
  ReleaseLocation loc;
  const auto dists = release_url.rfind("/dists/");
  const auto slash = release_url.rfind('/');
  const std::string last = release_url.substr(slash + 1);
  if (dists == std::string::npos || slash <= dists + 6 || (last != "InRelease" && last != "Release") ||
      release_url.find('?') != std::string::npos || release_url.find('#') != std::string::npos)
    return malformed("repository: " + release_url.substr(0, 200) +
                     " is not a .../dists/<suite>/InRelease or .../dists/<suite>/Release URL");
  loc.dist_url = release_url.substr(0, slash + 1);
  loc.archive_root = release_url.substr(0, dists + 1);
  loc.clearsigned = last == "InRelease";
  return loc;
}

Result<ShippedDeb> read_shipped_deb(const std::string& path) {
  ShippedDeb d;
  d.file_name = file_name_of(path);
  KMR_ASSIGN_OR_RETURN(auto fs, archive::FileStream::open(path));
  archive::ReaderOptions ro;
  ro.name = d.file_name;
  KMR_ASSIGN_OR_RETURN(auto deb, archive::read_deb(*fs, ro, nullptr));
  d.ref = binary_ref(deb.control);
  if (d.ref.source.empty() || d.ref.version.empty() || d.ref.arch.empty())
    return malformed(d.file_name + ": control lacks Package, Version or Architecture");
  KMR_ASSIGN_OR_RETURN(Digest256 digest, sha256_file(path));
  d.sha256 = to_hex(Bytes(digest.data(), digest.size()));
  std::error_code ec;
  d.size = std::filesystem::file_size(path, ec);
  if (ec) return Error(ErrorCode::kIo, path + ": " + ec.message());
  return d;
}

Result<void> check_buildinfo_binding(std::string_view text, const std::string& what, const std::vector<ShippedDeb>& debs,
                                     const distros::SourceFile* dsc) {
  KMR_ASSIGN_OR_RETURN(archive::DebBuildinfo bi, archive::parse_deb_buildinfo(text, what));
  std::map<std::string, std::pair<std::string, std::string>> listed;  // name -> (sha256, size)
  for (const auto& line : bi.checksums_sha256) {
    std::istringstream w(line);
    std::string hash, size, name;
    w >> hash >> size >> name;
    if (!name.empty()) listed[name] = {hash, size};
  }
  auto check = [&](const std::string& name, const std::string& sha, std::uint64_t size) -> Result<void> {
    auto it = listed.find(name);
    if (it == listed.end())
      return Error(ErrorCode::kVerificationFailed, what + " does not list " + name + " (it is the .buildinfo of another build)");
    if (it->second.first != sha || it->second.second != std::to_string(size))
      return Error(ErrorCode::kVerificationFailed, what + " lists " + name + " as " + it->second.first + " (" +
                                                       it->second.second + " bytes), but it is " + sha + " (" +
                                                       std::to_string(size) + " bytes)");
    return ok();
  };
  for (const auto& d : debs) KMR_TRY(check(d.file_name, d.sha256, d.size));
  if (dsc != nullptr && listed.count(dsc->name)) KMR_TRY(check(dsc->name, dsc->sha256, dsc->size.value_or(0)));
  return ok();
}

Result<FetchedInputs> fetch_rebuild_inputs(const RepositoryOptions& options, const std::vector<std::string>& debs,
                                           const std::string& dir) {
  if (debs.empty()) return malformed("no package given");
  if (options.keyring.empty()) return malformed("repository " + options.release_url + ": no keyring to verify it with");
  KMR_ASSIGN_OR_RETURN(ReleaseLocation loc, release_location(options.release_url));
  std::vector<ShippedDeb> shipped;
  for (const auto& d : debs) {
    KMR_ASSIGN_OR_RETURN(ShippedDeb s, read_shipped_deb(d));
    shipped.push_back(std::move(s));
  }
  const BinaryRef& ref = shipped[0].ref;
  const std::string tmpl =
      options.buildinfo_template.empty() ? template_specs("debian")[0].default_value : options.buildinfo_template;
  KMR_ASSIGN_OR_RETURN(distros::SourceFile buildinfo, buildinfo_source(tmpl, ref));

  FetchedInputs out;
  out.dir = dir;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error(ErrorCode::kIo, "cannot create " + dir + ": " + ec.message());
  KMR_ASSIGN_OR_RETURN(net::HttpClient client, net::HttpClient::create(net::options_with_deadline(options.timeout)));
  KMR_ASSIGN_OR_RETURN(auto release, verified_release(client, options, loc));
  std::vector<distros::SourceFile> source_files;
  KMR_TRY(fetch_sources(client, release, loc, ref, out, source_files));
  KMR_ASSIGN_OR_RETURN(bool got, download(client, buildinfo, dir, kMaxBuildinfo, out.missing));
  if (got) {
    KMR_ASSIGN_OR_RETURN(std::string text, read_text_file(dir + "/" + buildinfo.name, kMaxBuildinfo));
    const distros::SourceFile* dsc = source_files.empty() ? nullptr : &source_files[0];
    KMR_TRY(check_buildinfo_binding(text, buildinfo.url, shipped, dsc));
    out.buildinfo = buildinfo.name;
  }
  return out;
}

}  // namespace kmr::debian

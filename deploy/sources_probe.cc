// sources_probe CONFIG REPOSITORY KIND [key=value ...] [--fetch]
//
// Expands a deploy config's source templates for one package, with the same
// code sync uses (rebuilder/distros/*/sources.h, server/sync_sources.h), and
// prints one line per item:  git URL REF  |  file URL [SHA256 SIZE]
// With --fetch each item is also fetched: files through kmr's HTTPS client
// (checked against the index's sha256 when there is one), git tags with
// `git ls-remote`; then "ok ..." or "FAIL ..." lines, exit 1 on any failure.
// Kinds: arch-pkgbuild pkgbase= version= | arch-archive installed= |
//        debian-buildinfo source= source_version= version= arch= |
//        debian-dsc source= source_version= (reads the repository's Release and Sources) |
//        suse-srpm sourcerpm= | nixos-tarball [rev=] (else the channel's git-revision)
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "rebuilder/archive/deb822.h"
#include "rebuilder/archive/openpgp.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/distros/arch/sources.h"
#include "rebuilder/distros/debian/sources.h"
#include "rebuilder/distros/nixos/sources.h"
#include "rebuilder/distros/suse/sources.h"
#include "server/config.h"
#include "server/http_client.h"
#include "server/sync_sources.h"

namespace kmr {
namespace {

using namespace std::chrono_literals;

struct Item {
  std::string kind;  // "git" or "file"
  std::string url, extra;
  std::string sha256;
  std::optional<std::uint64_t> size;
};

Item file_item(const distros::SourceFile& f) { return {"file", f.url, "", f.sha256, f.size}; }

Result<std::vector<Item>> debian_dsc(const server::RepositoryConfig& rc, const debian::BinaryRef& ref) {
  KMR_ASSIGN_OR_RETURN(std::string release, server::fetch_url(rc.url, 120s, 64 << 20));
  if (!rc.trusted_keys.empty() && rc.url.ends_with("InRelease") && std::filesystem::exists(rc.trusted_keys[0])) {
    KMR_ASSIGN_OR_RETURN(TempDir tmp, TempDir::create("kmr-probe"));
    KMR_TRY(write_file_atomic(tmp.path() + "/InRelease", as_bytes(release)));
    KMR_ASSIGN_OR_RETURN(archive::PgpResult v, archive::verify_clearsigned(rc.trusted_keys[0], tmp.path() + "/InRelease"));
    if (!v.valid) return Error(ErrorCode::kVerificationFailed, rc.url + ": signature does not verify: " + v.output);
    std::printf("verified %s with %s\n", rc.url.c_str(), rc.trusted_keys[0].c_str());
  }
  KMR_ASSIGN_OR_RETURN(auto paras, archive::parse_deb822(release, rc.url));
  if (paras.empty()) return malformed(rc.url + ": empty Release");
  server::IndexContext ctx;
  KMR_ASSIGN_OR_RETURN(ctx.release_files, archive::release_sha256(paras[0], rc.url));
  ctx.dist_url = rc.url.substr(0, rc.url.rfind('/') + 1);
  ctx.archive_root = rc.url.substr(0, rc.url.rfind("/dists/") + 1);
  KMR_ASSIGN_OR_RETURN(auto dscs, server::apt_dsc_files(ctx, {ref}, 300s));
  std::vector<Item> out;
  for (const auto& [key, files] : dscs)
    for (const auto& f : files) out.push_back(file_item(f));
  if (out.empty()) return not_found(ref.source + " " + ref.source_version + " is not in the Sources indexes of " + rc.url);
  return out;
}

Result<std::vector<Item>> expand(const server::RepositoryConfig& rc, const std::string& kind,
                                 std::map<std::string, std::string>& a) {
  auto t = [&](const char* key) { return rc.sources.count(key) ? rc.sources.at(key) : std::string(); };
  if (kind == "arch-pkgbuild") {
    KMR_ASSIGN_OR_RETURN(auto g, arch::pkgbuild_source(t("pkgbuild_git"), a["pkgbase"], a["version"]));
    return std::vector<Item>{{"git", g.url, g.ref, "", std::nullopt}};
  }
  if (kind == "arch-archive") {
    KMR_ASSIGN_OR_RETURN(auto p, arch::parse_installed(a["installed"]));
    KMR_ASSIGN_OR_RETURN(std::string u, arch::archive_url(t("archive"), p));
    return std::vector<Item>{{"file", u, "", "", std::nullopt}, {"file", u + ".sig", "", "", std::nullopt}};
  }
  const debian::BinaryRef ref{a["source"], a["source_version"], a["version"], a["arch"]};
  if (kind == "debian-buildinfo") {
    if (t("buildinfo").empty()) return not_found(rc.name + ": no buildinfo template (off)");
    KMR_ASSIGN_OR_RETURN(auto f, debian::buildinfo_source(t("buildinfo"), ref));
    return std::vector<Item>{file_item(f)};
  }
  if (kind == "debian-dsc") return debian_dsc(rc, ref);
  if (kind == "suse-srpm") {
    KMR_ASSIGN_OR_RETURN(auto f, suse::srpm_source(t("srpm"), a["sourcerpm"]));
    return std::vector<Item>{file_item(f)};
  }
  if (kind == "nixos-tarball") {
    std::string rev = a.count("rev") ? a["rev"] : t("nixpkgs_rev");
    if (rev.empty()) {
      KMR_ASSIGN_OR_RETURN(std::string u, nixos::git_revision_url(t("git_revision"), t("channel")));
      if (!a.count("fetch")) return std::vector<Item>{{"file", u, "", "", std::nullopt}};
      KMR_ASSIGN_OR_RETURN(std::string text, server::fetch_url(u, 60s, 4096));
      KMR_ASSIGN_OR_RETURN(rev, nixos::parse_git_revision(text));
      std::printf("revision %s from %s\n", rev.c_str(), u.c_str());
    }
    KMR_ASSIGN_OR_RETURN(auto f, nixos::nixpkgs_source(t("nixpkgs_tarball"), rev));
    return std::vector<Item>{file_item(f)};
  }
  return malformed("unknown kind " + kind);
}

Result<std::string> fetch(const Item& it) {
  if (it.kind == "git") {
    SubprocessOptions o;
    o.timeout = 120s;
    o.env = std::vector<std::string>{"PATH=/usr/bin:/bin", "HOME=/nonexistent", "GIT_TERMINAL_PROMPT=0",
                                     "GIT_ALLOW_PROTOCOL=https:http:file"};
    KMR_ASSIGN_OR_RETURN(auto r, run_subprocess({"git", "ls-remote", "--tags", "--", it.url, "refs/tags/" + it.extra}, o));
    if (!r.success() || r.out.find("refs/tags/" + it.extra) == std::string::npos)
      return not_found("tag " + it.extra + " not found (" + r.describe() + ") " + r.err.substr(0, 300));
    return r.out.substr(0, 40);
  }
  KMR_ASSIGN_OR_RETURN(TempDir tmp, TempDir::create("kmr-probe"));
  KMR_ASSIGN_OR_RETURN(Digest256 d, server::fetch_url_to_file(it.url, tmp.path() + "/f", 30min, it.size ? *it.size : 8ull << 30));
  if (!it.sha256.empty() && to_hex(d) != it.sha256)
    return Error(ErrorCode::kVerificationFailed, "sha256 " + to_hex(d) + ", the index says " + it.sha256);
  return to_hex(d);
}

int run(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: sources_probe CONFIG REPOSITORY KIND [key=value ...] [--fetch]\n");
    return 2;
  }
  auto cfg = server::load_config(argv[1]);
  if (!cfg) {
    std::fprintf(stderr, "sources_probe: %s\n", cfg.error().to_string().c_str());
    return 2;
  }
  const server::RepositoryConfig* rc = nullptr;
  for (const auto& r : cfg->repositories)
    if (r.name == argv[2]) rc = &r;
  if (rc == nullptr) {
    std::fprintf(stderr, "sources_probe: no repository %s\n", argv[2]);
    return 2;
  }
  std::map<std::string, std::string> a;
  bool do_fetch = false;
  for (int i = 4; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--fetch") {
      do_fetch = true;
      a["fetch"] = "1";
    } else if (auto eq = s.find('='); eq != std::string::npos) {
      a[s.substr(0, eq)] = s.substr(eq + 1);
    }
  }
  auto items = expand(*rc, argv[3], a);
  if (!items) {
    std::fprintf(stderr, "sources_probe: %s\n", items.error().to_string().c_str());
    return 1;
  }
  for (const auto& it : *items) {
    std::printf("%s %s", it.kind.c_str(), it.url.c_str());
    if (!it.extra.empty()) std::printf(" %s", it.extra.c_str());
    if (!it.sha256.empty()) std::printf(" %s %llu", it.sha256.c_str(), static_cast<unsigned long long>(it.size.value_or(0)));
    std::printf("\n");
  }
  if (!do_fetch) return 0;
  int failed = 0;
  for (const auto& it : *items) {
    auto r = fetch(it);
    if (r) {
      std::printf("ok %s %s\n", it.url.c_str(), r->c_str());
    } else {
      std::printf("FAIL %s %s\n", it.url.c_str(), r.error().to_string().c_str());
      ++failed;
    }
  }
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace kmr

int main(int argc, char** argv) { return kmr::run(argc, argv); }

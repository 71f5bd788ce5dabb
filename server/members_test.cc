// The member index on the real fixture packages, checked against an independent
// implementation (server/members_expected.py: dpkg-deb, bsdtar, rpm2cpio, zstd/xz/gzip,
// nix-store --restore, nix-hash, sbattach), and end to end: verdicts stored, the indexer run,
// GET /api/v1/artifacts/sha256/{member hash}, a nix32 NarHash and a store path answered.
#include "server/members.h"

#include <fstream>
#include <set>
#include <tuple>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "attest/keys.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/require.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/subprocess.h"
#include "server/api.h"
#include "server/member_indexer.h"
#include "tests/lib/fixtures.h"

namespace kmr::server {
namespace {

using nlohmann::json;
using Triple = std::tuple<std::string, std::string, std::string>;

#define REQUIRE_TOOLS()                                                                                    \
  do {                                                                                                     \
    auto t = run_subprocess({"sh", "-c",                                                                   \
                             "command -v dpkg-deb && command -v bsdtar && command -v rpm2cpio && "         \
                             "command -v zstd && command -v nix-store && command -v nix-hash && "          \
                             "command -v sbattach && command -v sbsign"});                                 \
    if (!t || !t->success()) KMR_SKIP_OR_FAIL("dpkg-deb, bsdtar, rpm2cpio, zstd, nix, sbsigntool needed"); \
  } while (0)

json manifest() {
  std::ifstream in(kmr::testing::fixture_repos().dir + "/manifest.json");
  return json::parse(in, nullptr, false);
}

// Manifest artifacts (objects with path, sha256, name, version, arch, file) of one set.
std::vector<json> set_artifacts(const std::string& set) {
  std::vector<json> out;
  const json m = manifest();
  EXPECT_TRUE(m.is_object() && m.contains("artifacts")) << kmr::testing::fixture_repos().dir << "/manifest.json";
  if (!m.is_object() || !m.contains("artifacts")) return out;
  for (const json& a : m["artifacts"])
    if (a["set"] == set) out.push_back(a);
  EXPECT_FALSE(out.empty()) << "no artifacts of " << set << " in " << kmr::testing::fixture_repos().dir;
  return out;
}

// The artifact's file name as a repository lists it (a narinfo's own name for Nix).
std::string file_of(const json& a) {
  const std::string p = a["path"];
  return p.substr(p.rfind('/') + 1);
}

std::set<Triple> as_set(const std::vector<MemberHash>& v) {
  std::set<Triple> s;
  for (const auto& h : v) s.emplace(h.key, h.path, h.kind);
  return s;
}

std::set<Triple> expected(const std::string& pkg, const std::string& work) {
  auto r = run_subprocess({"python3", "server/members_expected.py", pkg, work});
  EXPECT_TRUE(r && r->success()) << (r ? r->describe() + r->err : r.error().to_string());
  std::set<Triple> s;
  if (!r || !r->success()) return s;
  for (const json& e : json::parse(r->out)) s.emplace(e["key"], e["path"], e["kind"]);
  return s;
}

std::size_t count_kind(const std::set<Triple>& s, const std::string& kind) {
  std::size_t n = 0;
  for (const auto& t : s) n += std::get<2>(t) == kind;
  return n;
}

// Every hash kmr indexes is the one the distribution's tools give, and nothing is missing.
TEST(MemberIndex, RealPackagesMatchTheirOwnTools) {
  KMR_REQUIRE_FIXTURE_REPOS();
  REQUIRE_TOOLS();
  auto tmp = TempDir::create("members-test");
  ASSERT_TRUE(tmp);
  std::vector<std::string> sets = {"proxmox/signed", "arch/pristine", "arch/signed", "suse/signed", "nixos/pristine",
                                   "nixos/signed"};
  std::size_t stripped = 0, decompressed = 0, nar = 0;
  for (const auto& set : sets) {
    for (const json& a : set_artifacts(set)) {
      const std::string pkg = kmr::testing::fixture_repos().dir + "/" + a["path"].get<std::string>();
      auto idx = index_package(pkg, file_of(a), tmp->path());
      ASSERT_TRUE(idx) << pkg << ": " << idx.error().to_string();
      EXPECT_FALSE(idx->truncated);
      const auto got = as_set(idx->hashes);
      const auto want = expected(pkg, tmp->path());
      EXPECT_FALSE(want.empty()) << pkg;
      EXPECT_EQ(got, want) << pkg;
      stripped += count_kind(got, "stripped");
      decompressed += count_kind(got, "decompressed");
      nar += count_kind(got, "nar");
    }
  }
  // The variants carry what the index is for: signed and Merkle modules, compressed modules, NARs.
  EXPECT_GE(stripped, 200u);
  EXPECT_GE(decompressed, 80u);
  EXPECT_EQ(nar, 6u);
}

// A PE image made by binutils and signed by sbsign: the stripped hash is that of
// `sbattach --remove`'s output, and an unsigned image has none.
TEST(MemberIndex, AuthenticodeStrippedAsSbattachRemoves) {
  REQUIRE_TOOLS();
  auto tmp = TempDir::create("members-pe");
  ASSERT_TRUE(tmp);
  auto r = run_subprocess(
      {"sh", "-c",
       "cd \"$0\" && printf 'int efi_main(void){return 0;}\\nint data_x = 42;\\n' > e.c && "
       "gcc -c -fpic -fno-stack-protector e.c -o e.o && ld -shared -Bsymbolic -nostdlib -e efi_main e.o -o e.so && "
       "objcopy -j .text -j .data -j .dynamic -j .rela --target efi-app-x86_64 e.so e.efi && "
       "openssl req -new -nodes -batch -x509 -newkey rsa:2048 -subj '/CN=Test' -keyout k.key -out k.crt 2>/dev/null && "
       "sbsign --key k.key --cert k.crt --output vmlinuz e.efi 2>/dev/null && cp vmlinuz stripped && "
       "sbattach --remove stripped && sha256sum stripped | cut -d' ' -f1",
       tmp->path()});
  ASSERT_TRUE(r && r->success()) << (r ? r->describe() + r->err : r.error().to_string());
  const std::string want = r->out.substr(0, 64);
  auto signed_img = read_file(tmp->path() + "/vmlinuz", 1 << 24);
  ASSERT_TRUE(signed_img);
  auto hashes = member_hashes("boot/vmlinuz", Bytes(signed_img->data(), signed_img->size()));
  ASSERT_EQ(hashes.size(), 2u);
  EXPECT_EQ(hashes[1].kind, "stripped");
  EXPECT_EQ(hashes[1].key, want);
  auto unsigned_img = read_file(tmp->path() + "/stripped", 1 << 24);
  ASSERT_TRUE(unsigned_img);
  EXPECT_EQ(member_hashes("boot/vmlinuz", Bytes(unsigned_img->data(), unsigned_img->size())).size(), 1u);
}

TEST(MemberIndex, HostileInputs) {
  auto tmp = TempDir::create("members-hostile");
  ASSERT_TRUE(tmp);
  // Garbage named like a compressed module or an image: the file hash only, no crash.
  ByteVector junk(4096, 0x5a);
  for (const char* p : {"a.ko.zst", "a.ko.xz", "a.ko.gz", "a.ko", "vmlinuz", "Image.gz"})
    EXPECT_EQ(member_hashes(p, Bytes(junk.data(), junk.size())).size(), 1u) << p;
  // A forged PE header pointing its certificate table outside the file: not stripped.
  ByteVector pe(512, 0);
  pe[0] = 'M';
  pe[1] = 'Z';
  pe[0x3c] = 0x40;
  pe[0x40] = 'P';
  pe[0x41] = 'E';
  EXPECT_TRUE(strip_authenticode(Bytes(pe.data(), pe.size())).empty());
  // A truncated and a garbage package: errors, not crashes.
  const std::string bad = tmp->path() + "/x.deb";
  ASSERT_TRUE(write_file_atomic(bad, Bytes(junk.data(), junk.size())));
  EXPECT_FALSE(index_package(bad, "x.deb", tmp->path()));
  EXPECT_FALSE(index_package(bad, "x.pkg.tar.zst", tmp->path()));
  EXPECT_FALSE(index_package(bad, "x.rpm", tmp->path()));
  EXPECT_FALSE(index_package(bad, "x.narinfo", tmp->path()));
  // NarHash spellings.
  const std::string hex = "b1d5c5d7e0c4d7b1b1d5c5d7e0c4d7b1b1d5c5d7e0c4d7b1b1d5c5d7e0c4d7b1";
  EXPECT_EQ(nar_hash_hex(hex), hex);
  EXPECT_EQ(nar_hash_hex("sha256:" + hex), hex);
  EXPECT_EQ(nar_hash_hex("not a hash"), "");
  EXPECT_EQ(nar_hash_hex(std::string(52, 'e')), "");  // 'e' is outside the nix32 alphabet
}

TEST(MemberIndex, CapIsReported) {
  KMR_REQUIRE_FIXTURE_REPOS();
  auto tmp = TempDir::create("members-cap");
  ASSERT_TRUE(tmp);
  const auto arts = set_artifacts("arch/pristine");
  ASSERT_FALSE(arts.empty());
  const json a = arts[0];
  MemberLimits limits;
  limits.max_hashes = 7;
  auto idx = index_package(kmr::testing::fixture_repos().dir + "/" + a["path"].get<std::string>(), file_of(a), tmp->path(), limits);
  ASSERT_TRUE(idx) << idx.error().to_string();
  EXPECT_EQ(idx->hashes.size(), 7u);
  EXPECT_TRUE(idx->truncated);
}

// Verdicts stored, the indexer run, then the end-user lookups through the API.
TEST(MemberIndex, ApiResolvesMembersNarHashesAndStorePaths) {
  KMR_REQUIRE_FIXTURE_REPOS();
  REQUIRE_TOOLS();
  auto tmp = TempDir::create("members-api");
  ASSERT_TRUE(tmp);
  Config config;
  config.origin = "http://kmrd.test";
  config.state_dir = tmp->path() + "/state";
  auto store = Store::open(config.state_dir);
  ASSERT_TRUE(store) << store.error().to_string();
  Metrics metrics;
  std::int64_t now = 1700000000;
  Api api(**store, config, metrics, nullptr, StaticFiles::load(""), [&] { return now; });
  auto get = [&](const std::string& target) {
    HttpRequest r{"GET", target, {}, "", "127.0.0.1"};
    HttpResponse resp = api.handle(r);
    return std::make_pair(resp.status, json::parse(resp.body, nullptr, false));
  };
  // Two repositories: the Proxmox signed set and the NixOS pristine set (three outputs).
  std::map<std::string, std::string> sha_of;  // manifest path -> artifact sha256
  for (const std::string set : {"proxmox/signed", "nixos/pristine"}) {
    auto repo = (*store)->upsert_repository(set, set.substr(0, set.find('/')), "file:///x");
    ASSERT_TRUE(repo);
    std::vector<ImportArtifact> arts;
    for (const json& a : set_artifacts(set)) {
      ImportArtifact ia;
      ia.set_key = set;
      ia.name = a["name"];
      ia.version = a["version"];
      ia.arch = a["arch"];
      ia.filename = file_of(a);
      ia.url = "file://" + kmr::testing::fixture_repos().dir + "/" + a["path"].get<std::string>();
      ia.sha256 = a["sha256"];
      sha_of[a["path"]] = ia.sha256;
      arts.push_back(ia);
    }
    ASSERT_TRUE((*store)->import_artifacts(*repo, set.substr(0, set.find('/')), arts, now));
  }
  auto key = attest::Ed25519Key::generate();
  ASSERT_TRUE(key);
  auto wid = (*store)->register_worker("w", to_hex(key->raw_public()), {"default"}, now);
  ASSERT_TRUE(wid);
  Worker w{*wid, "w", to_hex(key->raw_public()), {"default"}, false};
  QueuePolicy policy;
  MemberIndexer indexer(**store, tmp->path() + "/idx");
  // Nothing to index before a verdict is stored.
  auto none = indexer.run_once(now);
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, 0);
  for (int i = 0; i < 2; ++i) {
    auto job = (*store)->claim_job(w, now, policy);
    ASSERT_TRUE(job && *job);
    Report r;
    r.job_id = (**job)["id"];
    r.lease_token = (**job)["lease"];
    r.worker_id = w.id;
    r.status = "build-failed";
    ASSERT_TRUE((*store)->report(r, now, policy));
  }
  auto n = indexer.run_once(now);
  ASSERT_TRUE(n) << n.error().to_string();
  EXPECT_EQ(*n, 4);

  // A signed module of the .deb, hashed by sha256sum after dpkg-deb -x.
  const json deb = set_artifacts("proxmox/signed")[0];
  auto x = run_subprocess({"sh", "-c",
                           "dpkg-deb -x \"$0\" \"$1/deb\" && cd \"$1/deb\" && "
                           "sha256sum usr/lib/modules/*/kernel/net/wireguard/wireguard.ko boot/vmlinuz-* | cut -d' ' -f1",
                           kmr::testing::fixture_repos().dir + "/" + deb["path"].get<std::string>(), tmp->path()});
  ASSERT_TRUE(x && x->success()) << (x ? x->err : x.error().to_string());
  const std::string ko = x->out.substr(0, 64), vmlinuz = x->out.substr(65, 64);
  for (const std::string& h : {ko, vmlinuz}) {
    auto [status, body] = get("/api/v1/artifacts/sha256/" + h);
    ASSERT_EQ(status, 200) << body.dump();
    EXPECT_EQ(body["sha256"], h);
    EXPECT_EQ(body["match"], "member");
    ASSERT_EQ(body["member_of"].size(), 1u) << body.dump();
    EXPECT_EQ(body["member_of"][0]["sha256"], deb["sha256"]);
    EXPECT_EQ(body["member_of"][0]["kind"], "file");
    EXPECT_EQ(body["member_of"][0]["package"]["name"], deb["name"]);
    EXPECT_EQ(body["member_of"][0]["verdicts"]["status"], "build-failed");
  }
  // The same module without its signature (cut by the Python script's independent reading).
  auto want = expected(kmr::testing::fixture_repos().dir + "/" + deb["path"].get<std::string>(), tmp->path());
  std::string ko_stripped;
  for (const auto& [k, p, kind] : want)
    if (kind == "stripped" && p.ends_with("/wireguard.ko")) ko_stripped = k;
  ASSERT_EQ(ko_stripped.size(), 64u);
  auto [ss, sb] = get("/api/v1/artifacts/sha256/" + ko_stripped);
  ASSERT_EQ(ss, 200);
  EXPECT_EQ(sb["member_of"][0]["kind"], "stripped");

  // Nix: NarHash by nix-hash (nix32 and hex), and the store path.
  for (const json& a : set_artifacts("nixos/pristine")) {
    const std::string narinfo = kmr::testing::fixture_repos().dir + "/" + a["path"].get<std::string>();
    auto h = run_subprocess({"sh", "-c",
                             "rm -rf \"$1/out\" && u=$(sed -n 's/^URL: //p' \"$0\") && "
                             "xz -dc \"$(dirname \"$0\")/$u\" | nix-store --restore \"$1/out\" && "
                             "b=$(nix-hash --type sha256 --base32 \"$1/out\") && echo $b && "
                             "nix-hash --type sha256 --to-base16 $b && sed -n 's/^StorePath: //p' \"$0\"",
                             narinfo, tmp->path()});
    ASSERT_TRUE(h && h->success()) << (h ? h->err : h.error().to_string());
    std::vector<std::string> lines;
    for (std::size_t p = 0; p < h->out.size();) {
      auto nl = h->out.find('\n', p);
      lines.push_back(h->out.substr(p, nl - p));
      p = nl == std::string::npos ? h->out.size() : nl + 1;
    }
    ASSERT_GE(lines.size(), 3u);
    for (const std::string& q : {lines[0], lines[1]}) {
      auto [st, body] = get("/api/v1/artifacts/sha256/" + q);
      ASSERT_EQ(st, 200) << q << " " << body.dump();
      EXPECT_EQ(body["sha256"], lines[1]);
      ASSERT_EQ(body["member_of"].size(), 1u);
      EXPECT_EQ(body["member_of"][0]["sha256"], a["sha256"]);
      EXPECT_EQ(body["member_of"][0]["kind"], "nar");
    }
    const std::string base = lines[2].substr(lines[2].rfind('/') + 1);
    for (const std::string& q : {base, base.substr(0, 32)}) {
      auto [st, body] = get("/api/v1/artifacts/store-path/" + q);
      ASSERT_EQ(st, 200) << q << " " << body.dump();
      EXPECT_EQ(body["sha256"], a["sha256"]);
    }
  }
  // Unknown hash, bad nix32, bad store path.
  EXPECT_EQ(get("/api/v1/artifacts/sha256/" + std::string(64, '0')).first, 404);
  EXPECT_EQ(get("/api/v1/artifacts/sha256/" + std::string(52, 'e')).first, 400);
  EXPECT_EQ(get("/api/v1/artifacts/store-path/short").first, 400);
  EXPECT_EQ(get("/api/v1/artifacts/store-path/" + std::string(32, '0')).first, 404);
}

}  // namespace
}  // namespace kmr::server

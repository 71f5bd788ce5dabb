#include "server/sync.h"

#include <filesystem>

#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "rebuilder/base/file.h"
#include "rebuilder/base/require.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/subprocess.h"
#include "tests/lib/fixtures.h"

namespace kmr::server {
namespace {

Bytes b(const std::string& s) { return Bytes(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); }

TEST(SyncTest, ImportDocumentFiltersByPatternAndArch) {
  RepositoryConfig rc;
  rc.name = "r";
  rc.distro = "arch";
  rc.url = "http://mirror.test/repo/index.json";
  rc.packages = {"linux", "linux-*"};
  rc.architectures = {"x86_64"};
  std::string doc = R"({"artifacts":[
    {"set":"a","name":"linux","version":"1","arch":"x86_64","url":"linux.pkg","sha256":")" + std::string(64, 'a') + R"("},
    {"set":"a","name":"linux-headers","version":"1","arch":"x86_64","url":"h.pkg","sha256":")" + std::string(64, 'b') + R"("},
    {"set":"b","name":"linux","version":"1","arch":"aarch64","url":"l2.pkg","sha256":")" + std::string(64, 'c') + R"("},
    {"set":"c","name":"firefox","version":"1","arch":"x86_64","url":"f.pkg","sha256":")" + std::string(64, 'd') + R"("}]})";
  auto arts = parse_index(rc, doc);
  ASSERT_TRUE(arts.has_value()) << arts.error().to_string();
  ASSERT_EQ(arts->size(), 2u);
  EXPECT_EQ((*arts)[0].url, "http://mirror.test/repo/linux.pkg");
  EXPECT_EQ((*arts)[1].name, "linux-headers");
}

TEST(SyncTest, ImportDocumentRejectsBadHash) {
  RepositoryConfig rc;
  rc.url = "file:///x/index.json";
  auto arts = parse_index(rc, R"({"artifacts":[{"set":"a","name":"linux","version":"1","arch":"x","url":"l","sha256":"XYZ"}]})");
  ASSERT_FALSE(arts.has_value());
  EXPECT_EQ(arts.error().message(), "file:///x/index.json: artifacts[0]: sha256 is not 64 lowercase hex digits");
  EXPECT_FALSE(parse_index(rc, "[1,2]").has_value());
}

TEST(SyncTest, ArchRepoDbOneJobPerPkgbase) {
  auto t = TempDir::create("sync-test");
  ASSERT_TRUE(t.has_value());
  std::string dir = t->path() + "/db";
  auto desc = [&](const std::string& entry, const std::string& name, const std::string& base, char hash) {
    std::filesystem::create_directories(dir + "/" + entry);
    std::string d = "%FILENAME%\n" + entry + "-x86_64.pkg.tar.zst\n\n%NAME%\n" + name + "\n\n%BASE%\n" + base +
                    "\n\n%VERSION%\n6.8.1-1\n\n%ARCH%\nx86_64\n\n%SHA256SUM%\n" + std::string(64, hash) + "\n\n";
    ASSERT_TRUE(write_file_atomic(dir + "/" + entry + "/desc", b(d)).has_value());
  };
  desc("linux-6.8.1-1", "linux", "linux", 'a');
  desc("linux-headers-6.8.1-1", "linux-headers", "linux", 'b');
  desc("firefox-6.8.1-1", "firefox", "firefox", 'c');
  std::string db = t->path() + "/core.db";
  auto r = run_subprocess({"tar", "-czf", db, "-C", dir, "linux-6.8.1-1", "linux-headers-6.8.1-1", "firefox-6.8.1-1"});
  ASSERT_TRUE(r.has_value() && r->success());
  auto store = Store::open(t->path() + "/state");
  ASSERT_TRUE(store.has_value());
  RepositoryConfig rc;
  rc.name = "core";
  rc.distro = "arch";
  rc.format = "arch";
  rc.url = "file://" + db;
  rc.packages = {"linux", "linux-headers"};
  auto n = sync_repository(**store, rc, 100, std::chrono::seconds(5));
  ASSERT_TRUE(n.has_value()) << n.error().to_string();
  EXPECT_EQ(*n, 1);
  auto a = (*store)->artifact_by_sha256(std::string(64, 'b'));
  ASSERT_TRUE(a.has_value() && a->has_value());
  EXPECT_EQ((**a)["url"], "file://" + t->path() + "/linux-headers-6.8.1-1-x86_64.pkg.tar.zst");
  auto fx = (*store)->artifact_by_sha256(std::string(64, 'c'));
  EXPECT_FALSE(fx->has_value());
  // A local repository without trusted_keys syncs, shown as unsigned.
  EXPECT_TRUE((**a)["insecure_unsigned"].get<bool>());
  // A configured keyring makes a signature mandatory (the db's, else each new package's).
  rc.trusted_keys = {t->path() + "/missing-keyring.pgp"};
  auto fresh = Store::open(t->path() + "/state2");
  ASSERT_TRUE(fresh.has_value());
  EXPECT_FALSE(sync_repository(**fresh, rc, 200, std::chrono::seconds(5)).has_value());
  EXPECT_FALSE((*fresh)->artifact_by_sha256(std::string(64, 'b'))->has_value());
}


// ---- Signature policy: a remote repository needs a verified signature unless opted out ----

RepositoryConfig remote_rc(const std::string& format, const std::string& url) {
  RepositoryConfig rc;
  rc.name = "remote-" + format;
  rc.distro = "arch";
  rc.format = format;
  rc.url = url;
  return rc;
}

TEST(SyncPolicy, RemoteUnsignedRepositoryFailsWithoutTheFlag) {
  auto t = TempDir::create("sync-policy");
  ASSERT_TRUE(t.has_value());
  auto store = Store::open(t->path() + "/state");
  ASSERT_TRUE(store.has_value());
  // Port 1 refuses connections: the policy must refuse before any fetch.
  for (const auto& [format, url] : std::vector<std::pair<std::string, std::string>>{
           {"kmr-import", "http://127.0.0.1:1/index.json"},
           {"arch", "http://127.0.0.1:1/core/os/x86_64/core.db"},
           {"rpm-md", "http://127.0.0.1:1/repo/"},
           {"apt", "http://127.0.0.1:1/debian/dists/bookworm/InRelease"}}) {
    RepositoryConfig rc = remote_rc(format, url);
    auto n = sync_repository(**store, rc, 100, std::chrono::seconds(2));
    ASSERT_FALSE(n.has_value()) << format;
    EXPECT_EQ(n.error().code(), ErrorCode::kVerificationFailed) << n.error().to_string();
    EXPECT_NE(n.error().message().find("has no signature check"), std::string::npos) << n.error().message();
    EXPECT_NE(n.error().message().find("insecure_unsigned"), std::string::npos) << n.error().message();
    // Opting out, or configuring keys, passes the policy (and then fails to connect).
    rc.insecure_unsigned = true;
    n = sync_repository(**store, rc, 100, std::chrono::seconds(2));
    ASSERT_FALSE(n.has_value());
    EXPECT_EQ(n.error().message().find("no signature check"), std::string::npos) << n.error().message();
    if (format != "kmr-import") {
      rc.insecure_unsigned = false;
      rc.trusted_keys = {t->path() + "/keyring.pgp"};
      n = sync_repository(**store, rc, 100, std::chrono::seconds(2));
      ASSERT_FALSE(n.has_value());
      EXPECT_EQ(n.error().message().find("no signature check"), std::string::npos) << n.error().message();
    }
  }
}

// A throwaway OpenPGP key in a short GNUPGHOME (gpg-agent's socket path must fit).
struct TestGpg {
  std::string home, keyring;
  static std::optional<TestGpg> create(const std::string& dir, const std::string& uid) {
    char tmpl[] = "/tmp/kmrgpgXXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return std::nullopt;
    TestGpg g{tmpl, dir + "/" + uid + ".pgp"};
    if (!g.run({"--quick-gen-key", uid + " <" + uid + "@kmr.invalid>", "ed25519", "sign", "never"})) return std::nullopt;
    if (!g.run({"--output", g.keyring, "--export"})) return std::nullopt;
    return g;
  }
  bool sign(const std::string& file) const { return run({"--output", file + ".sig", "--detach-sign", file}); }
  bool run(std::vector<std::string> args) const {
    std::vector<std::string> argv = {"gpg", "--homedir", home, "--batch", "--yes", "--pinentry-mode", "loopback",
                                     "--passphrase", ""};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run_subprocess(argv);
    return r.has_value() && r->success();
  }
  ~TestGpg() {
    if (home.empty()) return;
    (void)run_subprocess({"gpgconf", "--homedir", home, "--kill", "gpg-agent"});
    std::error_code ec;
    std::filesystem::remove_all(home, ec);
  }
  TestGpg(std::string h, std::string k) : home(std::move(h)), keyring(std::move(k)) {}
  TestGpg(TestGpg&& o) noexcept : home(std::move(o.home)), keyring(std::move(o.keyring)) { o.home.clear(); }
};

TEST(SyncPolicy, UnsignedArchDbNeedsEachPackageSignature) {
  auto t = TempDir::create("sync-pkgsig");
  ASSERT_TRUE(t.has_value());
  auto gpg = TestGpg::create(t->path(), "packager");
  auto mallory = TestGpg::create(t->path(), "mallory");
  if (!gpg || !mallory) KMR_SKIP_OR_FAIL("gpg cannot create a test key");
  const std::string repo = t->path() + "/repo";
  std::filesystem::create_directories(repo + "/db");
  auto add = [&](const std::string& name, const std::string& content, const TestGpg& signer) {
    const std::string file = name + "-6.8.1-1-x86_64.pkg.tar.zst";
    ASSERT_TRUE(write_file_atomic(repo + "/" + file, b(content)).has_value());
    ASSERT_TRUE(signer.sign(repo + "/" + file));
    const std::string entry = repo + "/db/" + name + "-6.8.1-1";
    std::filesystem::create_directories(entry);
    std::string d = "%FILENAME%\n" + file + "\n\n%NAME%\n" + name + "\n\n%BASE%\nlinux\n\n%VERSION%\n6.8.1-1\n\n"
                    "%ARCH%\nx86_64\n\n%SHA256SUM%\n" + sha256_hex(b(content)) + "\n\n";
    ASSERT_TRUE(write_file_atomic(entry + "/desc", b(d)).has_value());
  };
  auto make_db = [&]() {
    auto r = run_subprocess({"tar", "-czf", repo + "/core.db", "-C", repo + "/db", "linux-6.8.1-1", "linux-headers-6.8.1-1"});
    ASSERT_TRUE(r.has_value() && r->success());
  };
  add("linux", "kernel package bytes", *gpg);
  add("linux-headers", "headers package bytes", *gpg);
  make_db();
  RepositoryConfig rc;
  rc.name = "core";
  rc.distro = "arch";
  rc.format = "arch";
  rc.url = "file://" + repo + "/core.db";
  rc.trusted_keys = {gpg->keyring};
  {
    auto store = Store::open(t->path() + "/s1");
    ASSERT_TRUE(store.has_value());
    auto n = sync_repository(**store, rc, 100, std::chrono::seconds(30));
    ASSERT_TRUE(n.has_value()) << n.error().to_string();
    EXPECT_EQ(*n, 1);
    auto a = (*store)->artifact_by_sha256(sha256_hex(b("kernel package bytes")));
    ASSERT_TRUE(a.has_value() && a->has_value());
    EXPECT_FALSE((**a)["insecure_unsigned"].get<bool>());
  }
  // The mirror swaps linux-headers for a package signed by another key: nothing is enqueued.
  add("linux-headers", "evil headers", *mallory);
  make_db();
  auto store = Store::open(t->path() + "/s2");
  ASSERT_TRUE(store.has_value());
  auto n = sync_repository(**store, rc, 100, std::chrono::seconds(30));
  ASSERT_FALSE(n.has_value());
  EXPECT_NE(n.error().message().find("linux-headers-6.8.1-1-x86_64.pkg.tar.zst: repository signature does not verify"),
            std::string::npos)
      << n.error().message();
  EXPECT_FALSE((*store)->artifact_by_sha256(sha256_hex(b("kernel package bytes")))->has_value());
}

// ---- Native indexes of the real fixture repositories (tests/fixtures/repos, pristine variant) ----

// The fixture repositories, from the shared cache (tests/lib/fixtures.h).
const std::string& fixtures_dir() { return kmr::testing::fixture_repos().dir; }

nlohmann::json manifest_artifacts(const std::string& set) {
  std::ifstream in(fixtures_dir() + "/manifest.json");
  nlohmann::json m = nlohmann::json::parse(in);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& a : m["artifacts"])
    if (a["set"] == set) out.push_back(a);
  return out;
}

struct Synced {
  std::unique_ptr<Store> store;
  Result<std::int64_t> first = std::int64_t{0};
  Result<std::int64_t> second = std::int64_t{0};
};

Synced sync_twice(const std::string& state, const RepositoryConfig& rc) {
  Synced s;
  auto st = Store::open(state);
  EXPECT_TRUE(st.has_value());
  s.store = std::move(*st);
  s.first = sync_repository(*s.store, rc, 100, std::chrono::seconds(30));
  if (s.first) s.second = sync_repository(*s.store, rc, 200, std::chrono::seconds(30));
  return s;
}

// Every manifest artifact of `set` is stored with its sha256, name and version, all in one job.
void expect_manifest_set(Store& store, const std::string& set) {
  auto want = manifest_artifacts(set);
  ASSERT_FALSE(want.empty());
  std::optional<nlohmann::json> job;
  for (const auto& a : want) {
    auto got = store.artifact_by_sha256(a["sha256"].get<std::string>());
    ASSERT_TRUE(got.has_value() && got->has_value()) << set << ": " << a["name"] << " not synced";
    EXPECT_EQ((**got)["package"]["name"], a["name"]);
    EXPECT_EQ((**got)["package"]["version"], a["version"]);
    if (!job) job = (**got)["job"]["id"];
    EXPECT_EQ((**got)["job"]["id"], *job) << a["name"] << " is not in the set's job";
  }
}

std::string copy_tree(const std::string& from, const std::string& to) {
  std::filesystem::create_directories(to);
  std::filesystem::copy(from, to, std::filesystem::copy_options::recursive);
  return to;
}

void flip_last_byte(const std::string& path) {
  auto data = read_file(path, 1 << 30);
  ASSERT_TRUE(data.has_value());
  data->back() ^= 0x01;
  ASSERT_TRUE(write_file_atomic(path, Bytes(data->data(), data->size())).has_value());
}

RepositoryConfig nix_rc(const std::string& cache) {
  RepositoryConfig rc;
  rc.name = "nixos";
  rc.distro = "nixos";
  rc.format = "nix";
  rc.url = "file://" + cache + "/";
  rc.packages = {"linux-kmrfix-*"};
  rc.trusted_keys = {fixtures_dir() + "/nixos/cache-key.pub"};
  return rc;
}

TEST(SyncFixtures, NixCacheOutputsOfOneDeriverAreOneJob) {
  KMR_REQUIRE_FIXTURE_REPOS();
  auto t = TempDir::create("sync-nix");
  ASSERT_TRUE(t.has_value());
  auto s = sync_twice(t->path() + "/state", nix_rc(fixtures_dir() + "/nixos/pristine/cache"));
  ASSERT_TRUE(s.first.has_value()) << s.first.error().to_string();
  EXPECT_EQ(*s.first, 1);  // out, modules, dev: one derivation
  ASSERT_TRUE(s.second.has_value());
  EXPECT_EQ(*s.second, 0);  // idempotent
  expect_manifest_set(*s.store, "nixos/pristine");
  EXPECT_EQ(manifest_artifacts("nixos/pristine").size(), 3u);
  // Each output remembers its NarHash (what a bit-identical rebuild must hash to), checked
  // here against an independent decompression of the NAR.
  for (const auto& a : manifest_artifacts("nixos/pristine")) {
    auto got = s.store->artifact_by_sha256(a["sha256"].get<std::string>());
    ASSERT_TRUE(got.has_value() && got->has_value());
    auto r = run_subprocess({"sh", "-c", "xz -dc \"$0\" | sha256sum", fixtures_dir() + "/" + a["nar"].get<std::string>()});
    ASSERT_TRUE(r.has_value() && r->success());
    EXPECT_EQ((**got)["content_sha256"], r->out.substr(0, 64)) << a["name"];
    EXPECT_FALSE((**got)["insecure_unsigned"].get<bool>());
  }
}

TEST(SyncFixtures, NixUntrustedOrForgedSignatureOrBadNarEnqueuesNothing) {
  KMR_REQUIRE_FIXTURE_REPOS();
  auto t = TempDir::create("sync-nix-bad");
  ASSERT_TRUE(t.has_value());
  std::string out_narinfo = manifest_artifacts("nixos/pristine")[0]["path"];
  std::string hash = out_narinfo.substr(out_narinfo.rfind('/') + 1);
  // 1. Another key: no signature by a trusted key.
  {
    RepositoryConfig rc = nix_rc(fixtures_dir() + "/nixos/pristine/cache");
    rc.trusted_keys = {"kmr-fixtures-1:" + std::string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")};
    auto s = sync_twice(t->path() + "/s1", rc);
    ASSERT_FALSE(s.first.has_value());
    EXPECT_NE(s.first.error().message().find("narinfo signature does not verify"), std::string::npos)
        << s.first.error().message();
  }
  // 2. A narinfo whose NarSize was changed: the signed fingerprint no longer matches.
  {
    std::string cache = copy_tree(fixtures_dir() + "/nixos/pristine/cache", t->path() + "/c2");
    auto text = read_file(cache + "/" + hash, 1 << 20);
    ASSERT_TRUE(text.has_value());
    std::string s(text->begin(), text->end());
    auto pos = s.find("NarSize: ");
    ASSERT_NE(pos, std::string::npos);
    s.insert(pos + 9, "1");
    ASSERT_TRUE(write_file_atomic(cache + "/" + hash, b(s)).has_value());
    auto r = sync_twice(t->path() + "/s2", nix_rc(cache));
    ASSERT_FALSE(r.first.has_value());
    EXPECT_NE(r.first.error().message().find(hash + ": narinfo signature does not verify"), std::string::npos)
        << r.first.error().message();
    for (const auto& a : manifest_artifacts("nixos/pristine"))
      EXPECT_FALSE(r.store->artifact_by_sha256(a["sha256"].get<std::string>())->has_value());
  }
  // 3. A NAR file changed on the mirror: FileHash mismatch.
  {
    std::string cache = copy_tree(fixtures_dir() + "/nixos/pristine/cache", t->path() + "/c3");
    std::string nar = manifest_artifacts("nixos/pristine")[0]["nar"];
    flip_last_byte(cache + "/nar/" + nar.substr(nar.rfind('/') + 1));
    auto r = sync_twice(t->path() + "/s3", nix_rc(cache));
    ASSERT_FALSE(r.first.has_value());
    EXPECT_NE(r.first.error().message().find("sha256 does not match the narinfo's FileHash"), std::string::npos)
        << r.first.error().message();
    for (const auto& a : manifest_artifacts("nixos/pristine"))
      EXPECT_FALSE(r.store->artifact_by_sha256(a["sha256"].get<std::string>())->has_value());
  }
}

TEST(SyncFixtures, ArchRepoDbOfTheFixtures) {
  KMR_REQUIRE_FIXTURE_REPOS();
  auto t = TempDir::create("sync-arch");
  ASSERT_TRUE(t.has_value());
  RepositoryConfig rc;
  rc.name = "arch";
  rc.distro = "arch";
  rc.format = "arch";
  rc.url = "file://" + fixtures_dir() + "/arch/pristine/os/x86_64/kmrfix.db";
  rc.packages = {"linux-kmrfix*"};
  auto s = sync_twice(t->path() + "/state", rc);
  ASSERT_TRUE(s.first.has_value()) << s.first.error().to_string();
  EXPECT_EQ(*s.first, 1);  // linux-kmrfix + linux-kmrfix-headers: one pkgbase
  EXPECT_EQ(*s.second, 0);
  expect_manifest_set(*s.store, "arch/pristine");
  EXPECT_EQ(manifest_artifacts("arch/pristine").size(), 2u);
}

RepositoryConfig rpm_rc(const std::string& repo) {
  RepositoryConfig rc;
  rc.name = "suse";
  rc.distro = "suse";
  rc.format = "rpm-md";
  rc.url = "file://" + repo + "/";
  rc.packages = {"kernel-*"};
  rc.architectures = {"x86_64"};
  return rc;
}

TEST(SyncFixtures, RpmMdPrimaryChecked) {
  KMR_REQUIRE_FIXTURE_REPOS();
  auto t = TempDir::create("sync-rpm");
  ASSERT_TRUE(t.has_value());
  auto s = sync_twice(t->path() + "/state", rpm_rc(fixtures_dir() + "/suse/pristine/repo"));
  ASSERT_TRUE(s.first.has_value()) << s.first.error().to_string();
  EXPECT_EQ(*s.first, 1);
  EXPECT_EQ(*s.second, 0);
  expect_manifest_set(*s.store, "suse/pristine");
  auto a = s.store->artifact_by_sha256(manifest_artifacts("suse/pristine")[0]["sha256"].get<std::string>());
  EXPECT_EQ((**a)["url"], "file://" + fixtures_dir() + "/suse/pristine/repo/x86_64/kernel-kmrfix-6.18.0-1.x86_64.rpm");
  // primary.xml.gz changed on the mirror: checksum mismatch, nothing enqueued.
  std::string repo = copy_tree(fixtures_dir() + "/suse/pristine/repo", t->path() + "/bad");
  for (const auto& e : std::filesystem::directory_iterator(repo + "/repodata"))
    if (e.path().string().ends_with("-primary.xml.gz")) flip_last_byte(e.path().string());
  auto r = sync_twice(t->path() + "/s2", rpm_rc(repo));
  ASSERT_FALSE(r.first.has_value());
  EXPECT_NE(r.first.error().message().find("primary.xml.gz"), std::string::npos) << r.first.error().message();
  EXPECT_FALSE(r.store->artifact_by_sha256(manifest_artifacts("suse/pristine")[0]["sha256"].get<std::string>())->has_value());
}

RepositoryConfig apt_rc(const std::string& root) {
  RepositoryConfig rc;
  rc.name = "pve";
  rc.distro = "proxmox";
  rc.format = "apt";
  rc.url = "file://" + root + "/dists/bookworm/Release";
  rc.packages = {"proxmox-kernel-*"};
  rc.architectures = {"amd64"};
  return rc;
}

TEST(SyncFixtures, AptReleasePackagesChecked) {
  KMR_REQUIRE_FIXTURE_REPOS();
  auto t = TempDir::create("sync-apt");
  ASSERT_TRUE(t.has_value());
  auto s = sync_twice(t->path() + "/state", apt_rc(fixtures_dir() + "/proxmox/pristine"));
  ASSERT_TRUE(s.first.has_value()) << s.first.error().to_string();
  EXPECT_EQ(*s.first, 1);
  EXPECT_EQ(*s.second, 0);
  expect_manifest_set(*s.store, "proxmox/pristine");
  auto want = manifest_artifacts("proxmox/pristine")[0];
  auto a = s.store->artifact_by_sha256(want["sha256"].get<std::string>());
  EXPECT_EQ((**a)["url"], "file://" + fixtures_dir() + "/" + want["path"].get<std::string>());
  // Packages.gz changed on the mirror: Release SHA256 mismatch, nothing enqueued.
  std::string root = t->path() + "/bad";
  copy_tree(fixtures_dir() + "/proxmox/pristine/dists", root + "/dists");
  flip_last_byte(root + "/dists/bookworm/pve-no-subscription/binary-amd64/Packages.gz");
  auto r = sync_twice(t->path() + "/s2", apt_rc(root));
  ASSERT_FALSE(r.first.has_value());
  EXPECT_NE(r.first.error().message().find("Packages.gz"), std::string::npos) << r.first.error().message();
  EXPECT_FALSE(r.store->artifact_by_sha256(want["sha256"].get<std::string>())->has_value());
}

}  // namespace
}  // namespace kmr::server

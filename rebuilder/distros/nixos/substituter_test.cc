// A real signed binary cache made by Nix (nix copy --to file:// with a key
// from nix-store --generate-binary-cache-key) over derivations instantiated
// by nix-instantiate in a private store: kmr fetches the closure, verifies
// it, and Nix itself imports kmr's export into a fresh store and checks it
// (nix-store --verify-path, nix-store --query --hash). Then copies of the cache with a
// forged signature, a swapped NAR, a wrong StorePath, a traversing URL, and a
// path the cache lacks.
#include "rebuilder/distros/nixos/substituter.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <string>

#include "rebuilder/base/file.h"
#include "rebuilder/base/require.h"
#include "rebuilder/base/subprocess.h"

namespace kmr::nixos {
namespace {

class Cache : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* t : {"nix", "nix-store", "nix-instantiate", "xz"}) {
      if (!have_program(t)) KMR_SKIP_OR_FAIL(std::string(t) + " not installed");
    }
    const char* t = std::getenv("TEST_TMPDIR");
    tmp_ = std::string(t ? t : "/tmp") + "/subst";
    sh("rm -rf '" + tmp_ + "' && mkdir -p '" + tmp_ + "/src'");
    std::ofstream(tmp_ + "/src/builder.sh") << "echo hi > $out\n";
    std::ofstream(tmp_ + "/src/default.nix")
        << "let dep = derivation { name = \"dep\"; system = \"x86_64-linux\"; builder = \"/bin/sh\"; "
           "args = [ ./builder.sh ]; };\n"
           "in derivation { name = \"top-1.0\"; system = \"x86_64-linux\"; builder = \"/bin/sh\"; "
           "args = [ ./builder.sh ]; inherit dep; outputs = [ \"out\" \"dev\" ]; }\n";
    store_ = "local?root=" + tmp_ + "/root";
    drv_ = sh("nix-instantiate --store '" + store_ + "' '" + tmp_ + "/src/default.nix'");
    sh("nix-store --generate-binary-cache-key kmr-subst-test-1 '" + tmp_ + "/sk' '" + tmp_ + "/pk'");
    sh("nix copy --derivation --store '" + store_ + "' --to 'file://" + tmp_ + "/cache?compression=xz&secret-key=" +
       tmp_ + "/sk' " + drv_);
    auto pk = read_text_file(tmp_ + "/pk", 4096);
    ASSERT_TRUE(pk);
    auto keys = parse_trusted_keys(*pk);
    ASSERT_TRUE(keys) << keys.error().to_string();
    options_.url = "file://" + tmp_ + "/cache";
    options_.trusted_keys = *keys;
  }

  std::string sh(const std::string& cmd) {
    SubprocessOptions o;
    o.env = std::vector<std::string>{"PATH=/usr/bin:/bin", "HOME=" + tmp_, "XDG_CACHE_HOME=" + tmp_ + "/xdg",
                                     "NIX_CONFIG=experimental-features = nix-command\nbuild-users-group =\nsandbox = false\nsubstituters ="};
    auto r = run_subprocess({"/bin/sh", "-c", cmd}, o);
    EXPECT_TRUE(r && r->success()) << cmd << ": " << (r ? r->err : r.error().to_string());
    std::string out = r ? r->out : "";
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

  // The narinfo file of `path` in the cache copy `dir`.
  std::string narinfo(const std::string& dir, const std::string& path) {
    return dir + "/" + store_path_hash(path) + ".narinfo";
  }
  std::string copy_cache(const std::string& name) {
    sh("rm -rf '" + tmp_ + "/" + name + "' && cp -r '" + tmp_ + "/cache' '" + tmp_ + "/" + name + "'");
    return tmp_ + "/" + name;
  }

  std::string tmp_, store_, drv_;
  CacheOptions options_;
};

TEST_F(Cache, ClosureVerifiedAndImportedByNix) {
  Closure c;
  ASSERT_TRUE(fetch_closure(http_fetcher(std::chrono::seconds(30)), options_, {drv_}, {}, c));
  EXPECT_TRUE(c.missing.empty());
  const std::string want = sh("nix-store --store '" + store_ + "' --query --requisites " + drv_ + " | sort");
  std::string got;
  for (const auto& [p, _] : c.paths) got += (got.empty() ? "" : "\n") + p;
  EXPECT_EQ(got, want);
  ASSERT_EQ(c.order.size(), 3u);
  EXPECT_EQ(c.order.back(), drv_);  // references first
  ASSERT_TRUE(write_export(c, tmp_ + "/export"));
  const std::string fresh = "local?root=" + tmp_ + "/fresh";
  sh("nix-store --store '" + fresh + "' --import < '" + tmp_ + "/export' > /dev/null");
  for (const auto& [p, cp] : c.paths) {
    sh("nix-store --store '" + fresh + "' --verify-path " + p);
    EXPECT_EQ(sh("nix-store --store '" + fresh + "' --query --hash " + p), cp.info.nar_hash);
    EXPECT_EQ(sh("nix-store --store '" + store_ + "' --query --hash " + p), cp.info.nar_hash);
  }
  // The derivation from the cache, parsed; its input's output is not cached:
  // missing, with the store path and the URL tried.
  Derivation d;
  auto inputs = fetch_build_inputs(http_fetcher(std::chrono::seconds(30)), options_, drv_, d);
  ASSERT_TRUE(inputs) << inputs.error().to_string();
  EXPECT_EQ(d.outputs.size(), 2u);
  ASSERT_EQ(inputs->missing.size(), 1u);
  const std::string dep_out = sh("nix-store --store '" + store_ + "' --query --outputs " + d.input_drvs.begin()->first);
  EXPECT_EQ(inputs->missing[0].rfind(dep_out + ": file://" + tmp_ + "/cache/" + store_path_hash(dep_out) + ".narinfo: ", 0), 0u)
      << inputs->missing[0];
}

TEST_F(Cache, ForgedOrSwappedContentIsRefused) {
  const auto fetch = http_fetcher(std::chrono::seconds(30));
  auto expect_error = [&](const std::string& dir, const std::string& what) {
    CacheOptions o = options_;
    o.url = "file://" + dir;
    Closure c;
    auto r = fetch_closure(fetch, o, {drv_}, {}, c);
    ASSERT_FALSE(r) << what;
    EXPECT_NE(r.error().message().find(what), std::string::npos) << r.error().message();
  };
  const std::string drv_info = narinfo(tmp_ + "/cache", drv_);
  auto text = read_text_file(drv_info, 1 << 20);
  ASSERT_TRUE(text);
  {  // one base64 character of the signature changed
    std::string dir = copy_cache("badsig");
    std::string t = *text;
    const auto k = t.find("Sig: kmr-subst-test-1:") + 22;
    t[k] = t[k] == 'A' ? 'B' : 'A';
    std::ofstream(narinfo(dir, drv_)) << t;
    expect_error(dir, "no signature verifies with a trusted key (kmr-subst-test-1): 1 signature(s)");
  }
  {  // signed by another key only
    std::string dir = copy_cache("otherkey");
    sh("nix-store --generate-binary-cache-key someone-else '" + tmp_ + "/sk2' '" + tmp_ + "/pk2'");
    sh("rm -rf '" + dir + "' && nix copy --derivation --store '" + store_ + "' --to 'file://" + dir +
       "?compression=xz&secret-key=" + tmp_ + "/sk2' " + drv_);
    expect_error(dir, "0 signature(s) by a trusted key name do not verify, 1 by other keys");
  }
  {  // the NAR replaced (FileHash and FileSize rewritten to match: they are unsigned)
    std::string dir = copy_cache("swapped");
    const std::string url = std::regex_replace(*text, std::regex("(?:.|\n)*URL: ([^\n]*)\n(?:.|\n)*"), "$1");
    sh("printf 'nix-archive-1' | xz > '" + dir + "/" + url + "'");
    const std::string hash = sh("nix-hash --type sha256 --flat --base32 '" + dir + "/" + url + "'");
    const std::string size = sh("stat -c %s '" + dir + "/" + url + "'");
    std::string t = std::regex_replace(*text, std::regex("FileHash: [^\n]*"), "FileHash: sha256:" + hash);
    t = std::regex_replace(t, std::regex("FileSize: [^\n]*"), "FileSize: " + size);
    std::ofstream(narinfo(dir, drv_)) << t;
    expect_error(dir, "mismatch");
  }
  {  // another path's narinfo served under this hash
    std::string dir = copy_cache("otherpath");
    std::string t = *text;
    const auto k = t.find("StorePath: /nix/store/") + 22;
    t[k] = t[k] == '0' ? '1' : '0';
    std::ofstream(narinfo(dir, drv_)) << t;
    expect_error(dir, "not the path asked for");
  }
  {  // a NAR URL leaving the cache
    std::string dir = copy_cache("traversal");
    std::ofstream(narinfo(dir, drv_)) << std::regex_replace(*text, std::regex("URL: nar/"), "URL: ../../etc/");
    expect_error(dir, "has an empty, '.' or '..' segment");
  }
  {  // the output being rebuilt never comes from the cache
    Closure c;
    const std::string builder = sh("nix-store --store '" + store_ + "' --query --references " + drv_ + " | grep builder.sh");
    auto r = fetch_closure(fetch, options_, {drv_}, {builder}, c);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("it is built, never substituted"), std::string::npos) << r.error().message();
  }
  {  // a path the cache does not have: missing, not an error
    Closure c;
    const std::string absent = "/nix/store/00000000000000000000000000000000-absent";
    ASSERT_TRUE(fetch_closure(fetch, options_, {absent}, {}, c));
    ASSERT_EQ(c.missing.size(), 1u);
    EXPECT_EQ(c.missing[0].rfind(absent + ": " + options_.url + "/00000000000000000000000000000000.narinfo: ", 0), 0u)
        << c.missing[0];
  }
}

TEST(TrustedKeys, Forms) {
  auto k = parse_trusted_keys("# comment\ncache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=\n");
  ASSERT_TRUE(k) << k.error().to_string();
  ASSERT_EQ(k->size(), 1u);
  EXPECT_EQ((*k)[0].name, "cache.nixos.org-1");
  EXPECT_FALSE(parse_trusted_keys(""));
  EXPECT_FALSE(parse_trusted_keys("cache.nixos.org-1:notbase64"));
  EXPECT_FALSE(parse_trusted_keys("nocolon"));
}

TEST(NarUrl, OnlyRelativePathsInsideTheCache) {
  EXPECT_EQ(*nar_url("https://c", "nar/0abc.nar.xz"), "https://c/nar/0abc.nar.xz");
  for (const char* bad : {"", "/etc/passwd", "../x", "nar/../../x", "nar//x", "https://evil/x", "nar/x?y", "nar/%2e%2e",
                          "nar/./x", "nar/x#y"}) {
    EXPECT_FALSE(nar_url("https://c", bad)) << bad;
  }
}

}  // namespace
}  // namespace kmr::nixos

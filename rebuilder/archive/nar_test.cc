#include "rebuilder/archive/nar.h"

#include <gtest/gtest.h>

#include "rebuilder/base/require.h"
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "rebuilder/archive/narinfo.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/subprocess.h"

namespace kmr::archive {
namespace {

// A tiny NAR token writer for hand-made (also non-canonical) archives.
struct W {
  std::string out;
  W& raw_u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return *this;
  }
  W& s(std::string_view x, char pad = '\0') {
    raw_u64(x.size());
    out += x;
    while (out.size() % 8) out.push_back(pad);
    return *this;
  }
  W& ss(std::initializer_list<std::string_view> xs) {
    for (auto x : xs) s(x);
    return *this;
  }
};

W dir_with(std::initializer_list<std::string_view> names) {
  W w;
  w.ss({"nix-archive-1", "(", "type", "directory"});
  for (auto n : names) {
    w.ss({"entry", "(", "name"}).s(n).ss({"node", "(", "type", "regular", "contents"}).s("x").ss({")", ")"});
  }
  w.s(")");
  return w;
}

std::string nar_error(const std::string& nar) {
  ReaderOptions o;
  o.name = "t.nar";
  auto r = read_nar_memory(as_bytes(nar), o, [](const Entry&, MemberStream&) -> Result<void> { return ok(); });
  return r ? "no error" : r.error().message();
}

TEST(Nix32, KnownVectors) {
  const auto empty = sha256(Bytes());
  EXPECT_EQ(nix32_encode(empty), "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73");
  auto back = nix32_decode("0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73", 32);
  ASSERT_TRUE(back);
  EXPECT_EQ(to_hex(*back), to_hex(empty));
  EXPECT_FALSE(nix32_decode("0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c7e", 32));  // 'e'
  EXPECT_FALSE(nix32_decode("zmdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73", 32));  // excess bits
  EXPECT_FALSE(nix32_decode("0mdq", 32));
}

TEST(Nar, ParsesCanonicalHandMade) {
  W w;
  w.ss({"nix-archive-1", "(", "type", "directory", "entry", "(", "name", "a", "node", "(", "type", "regular",
        "executable", "", "contents"})
      .s("#!/bin/sh\n")
      .ss({")", ")", "entry", "(", "name", "b", "node", "(", "type", "symlink", "target", "a", ")", ")", ")"});
  std::vector<std::string> seen;
  ReaderOptions o;
  auto r = read_nar_memory(as_bytes(w.out), o, [&](const Entry& e, MemberStream& s) -> Result<void> {
    KMR_ASSIGN_OR_RETURN(auto c, s.read_all(100));
    seen.push_back(e.path + ":" + std::string(entry_type_name(e.type)) + ":" + std::to_string(e.mode) + ":" +
                   std::string(c.begin(), c.end()) + e.link_target);
    return ok();
  });
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], "a:file:493:#!/bin/sh\n");
  EXPECT_EQ(seen[1], "b:symlink:511:a");
  EXPECT_EQ(r->nar_size, w.out.size());
  EXPECT_EQ(to_hex(r->nar_hash), sha256_hex(as_bytes(w.out)));
}

TEST(Nar, RejectsNonCanonicalForms) {
  EXPECT_EQ(nar_error(dir_with({"b", "a"}).out),
            "t.nar: NAR: entries not strictly increasing: 'a' after 'b' in '' at offset 336");
  EXPECT_EQ(nar_error(dir_with({"a", "a"}).out),
            "t.nar: NAR: entries not strictly increasing: 'a' after 'a' in '' at offset 336");
  EXPECT_EQ(nar_error(dir_with({""}).out), "t.nar: NAR: empty entry name in '' at offset 136");
  EXPECT_EQ(nar_error(dir_with({"."}).out), "t.nar: NAR: entry name '.' in '' at offset 144");
  EXPECT_EQ(nar_error(dir_with({".."}).out), "t.nar: NAR: entry name '..' in '' at offset 144");
  EXPECT_EQ(nar_error(dir_with({"a/b"}).out), "t.nar: NAR: '/' in entry name in '' at offset 144");
  EXPECT_EQ(nar_error(dir_with({std::string_view("a\0b", 3)}).out),
            "t.nar: NAR: NUL in entry name in '' at offset 144");
  EXPECT_EQ(nar_error(dir_with({std::string(256, 'n')}).out),
            "t.nar: NAR: entry name longer than 255 bytes at offset 136");

  W pad;
  pad.ss({"nix-archive-1", "(", "type", "regular", "contents"}).s("x", '\1').s(")");
  EXPECT_EQ(nar_error(pad.out), "t.nar: NAR: non-zero padding at offset 104");

  W exe;
  exe.ss({"nix-archive-1", "(", "type", "regular", "executable", "1", "contents"}).s("x").s(")");
  EXPECT_EQ(nar_error(exe.out), "t.nar: NAR: executable marker not empty at '' at offset 112");

  W magic;
  magic.ss({"nix-archive-2", "(", ")"});
  EXPECT_EQ(nar_error(magic.out), "t.nar: NAR: not a NAR (bad magic) at offset 24");

  W type;
  type.ss({"nix-archive-1", "(", "type", "fifo", ")"});
  EXPECT_EQ(nar_error(type.out), "t.nar: NAR: unknown node type 'fifo' at offset 72");

  W trailing = dir_with({"a"});
  trailing.s("x");
  EXPECT_EQ(nar_error(trailing.out), "t.nar: NAR: trailing data after the NAR at offset 289");

  W trunc = dir_with({"a"});
  trunc.out.resize(trunc.out.size() - 3);
  EXPECT_EQ(nar_error(trunc.out), "t.nar: NAR: truncated in padding at offset 285");

  W big;
  big.ss({"nix-archive-1", "(", "type", "regular", "contents"}).raw_u64(1ull << 62);
  EXPECT_EQ(nar_error(big.out), "t.nar: NAR: '': file larger than 4294967296 bytes");

  W link;
  link.ss({"nix-archive-1", "(", "type", "symlink", "target"}).s(std::string(4096, 't')).s(")");
  EXPECT_EQ(nar_error(link.out), "t.nar: NAR: symlink target longer than 4095 bytes at offset 96");

  W empty_link;
  empty_link.ss({"nix-archive-1", "(", "type", "symlink", "target", "", ")"});
  EXPECT_EQ(nar_error(empty_link.out), "t.nar: NAR: empty symlink target at '' at offset 96");

  // 65 nested directories.
  W deep;
  deep.ss({"nix-archive-1"});
  for (int i = 0; i < 66; ++i) deep.ss({"(", "type", "directory", "entry", "(", "name", "d", "node"});
  auto err = nar_error(deep.out);
  EXPECT_EQ(err.rfind("t.nar: NAR: directory depth exceeds 64 at 'd/d/d", 0), 0u) << err;

  W longtag;
  longtag.s("nix-archive-1").s(std::string(40, '('));
  EXPECT_EQ(nar_error(longtag.out), "t.nar: NAR: tag longer than 32 bytes at offset 32");
}

// Real archives from Nix's own tools.
class RealNix : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_program("nix-store") || !have_program("nix-hash")) KMR_SKIP_OR_FAIL("nix tools not installed");
    const char* t = std::getenv("TEST_TMPDIR");
    tmp_ = std::string(t ? t : "/tmp") + "/nar";
    run({"rm", "-rf", tmp_});
    ::mkdir(tmp_.c_str(), 0755);
    dir_ = tmp_ + "/tree";
    ::mkdir(dir_.c_str(), 0755);
    ::mkdir((dir_ + "/lib").c_str(), 0755);
    ::mkdir((dir_ + "/lib/modules").c_str(), 0755);
    write(dir_ + "/bzImage", std::string(3000, 'k'));
    write(dir_ + "/lib/modules/a.ko.xz", "module");
    write(dir_ + "/run.sh", "#!/bin/sh\n");
    ::chmod((dir_ + "/run.sh").c_str(), 0755);
    ASSERT_EQ(::symlink("bzImage", (dir_ + "/vmlinuz").c_str()), 0);
  }
  static void write(const std::string& p, const std::string& c) { std::ofstream(p) << c; }
  static std::string run(const std::vector<std::string>& argv, const std::vector<std::string>& env = {}) {
    SubprocessOptions o;
    if (!env.empty()) {
      std::vector<std::string> e = env;
      for (char** v = environ; *v; ++v) e.emplace_back(*v);
      o.env = e;
    }
    auto r = run_subprocess(argv, o);
    EXPECT_TRUE(r && r->success()) << argv[0] << ": " << (r ? r->err : r.error().to_string());
    return r ? r->out : "";
  }
  std::string tmp_, dir_;
};

TEST_F(RealNix, NarHashMatchesNixHash) {
  run({"sh", "-c", "nix-store --dump '" + dir_ + "' > '" + tmp_ + "/t.nar'"});
  std::string expect = run({"nix-hash", "--type", "sha256", "--base32", dir_});
  while (!expect.empty() && expect.back() == '\n') expect.pop_back();
  std::vector<std::string> paths;
  ReaderOptions o;
  o.name = "t.nar";
  auto r = read_archive_file(tmp_ + "/t.nar", o, [](const Entry&, MemberStream&) -> Result<void> { return ok(); });
  EXPECT_FALSE(r);  // not a tar
  auto fs = FileStream::open(tmp_ + "/t.nar");
  ASSERT_TRUE(fs);
  auto n = read_nar(**fs, o, [&](const Entry& e, MemberStream&) -> Result<void> {
    paths.push_back(e.path);
    return ok();
  });
  ASSERT_TRUE(n) << n.error().to_string();
  EXPECT_EQ(nix32_encode(n->nar_hash), expect);
  EXPECT_EQ(paths, (std::vector<std::string>{"bzImage", "lib", "lib/modules", "lib/modules/a.ko.xz", "run.sh",
                                             "vmlinuz"}));
}

TEST_F(RealNix, SignedNarinfoFromNixCopy) {
  if (!have_program("nix")) KMR_SKIP_OR_FAIL("nix not installed");
  const std::vector<std::string> env = {"NIX_CONFIG=extra-experimental-features = nix-command",
                                        "HOME=" + tmp_, "XDG_CACHE_HOME=" + tmp_ + "/xdg"};
  run({"nix-store", "--generate-binary-cache-key", "kmr-test-1", tmp_ + "/sk", tmp_ + "/pk"}, env);
  std::string store_path = run({"nix", "store", "add-path", "--store", tmp_ + "/root", dir_}, env);
  while (!store_path.empty() && store_path.back() == '\n') store_path.pop_back();
  ASSERT_FALSE(store_path.empty());
  run({"nix", "copy", "--store", tmp_ + "/root", "--to",
       "file://" + tmp_ + "/cache?compression=xz&secret-key=" + tmp_ + "/sk", store_path},
      env);
  const std::string hashpart = store_path.substr(store_path.rfind('/') + 1, 32);
  auto text = read_text_file(tmp_ + "/cache/" + hashpart + ".narinfo", 1 << 20);
  ASSERT_TRUE(text);
  auto info = parse_narinfo(*text, hashpart + ".narinfo");
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_EQ(info->store_path, store_path);
  EXPECT_EQ(info->compression, "xz");
  auto pktext = read_text_file(tmp_ + "/pk", 1000);
  ASSERT_TRUE(pktext);
  auto pk = parse_public_key(*pktext);
  ASSERT_TRUE(pk) << pk.error().to_string();
  auto check = verify_narinfo_sigs(*info, {*pk});
  ASSERT_TRUE(check);
  EXPECT_EQ(check->valid, 1);
  EXPECT_EQ(check->invalid, 0);

  // A changed NarSize breaks the signature.
  NarInfo bad = *info;
  bad.nar_size += 1;
  check = verify_narinfo_sigs(bad, {*pk});
  ASSERT_TRUE(check);
  EXPECT_EQ(check->valid, 0);
  EXPECT_EQ(check->invalid, 1);
  // An unknown key name is untrusted.
  PublicKey other = *pk;
  other.name = "someone-else";
  check = verify_narinfo_sigs(*info, {other});
  EXPECT_EQ(check->untrusted, 1);

  // The compressed NAR decompresses to the signed NarHash/NarSize.
  auto fs = FileStream::open(tmp_ + "/cache/" + info->url);
  ASSERT_TRUE(fs);
  ByteVector nar;
  ReaderOptions o;
  o.name = info->url;
  auto d = decompress_stream(**fs, o, [&](Bytes b) -> Result<bool> {
    nar.insert(nar.end(), b.begin(), b.end());
    return true;
  });
  ASSERT_TRUE(d) << d.error().to_string();
  auto n = read_nar_memory(nar, o, [](const Entry&, MemberStream&) -> Result<void> { return ok(); });
  ASSERT_TRUE(n);
  EXPECT_EQ(n->nar_hash_nix32(), info->nar_hash);
  EXPECT_EQ(n->nar_size, info->nar_size);
}

TEST(NarInfo, ParseErrors) {
  EXPECT_EQ(parse_narinfo("URL: x\n", "a.narinfo").error().message(), "a.narinfo: missing StorePath");
  EXPECT_EQ(parse_narinfo("garbage\n", "a.narinfo").error().message(), "a.narinfo: line 1: expected 'Key: value'");
  EXPECT_EQ(parse_narinfo("StorePath: /nix/store/x\nURL: u\nNarHash: sha256:zz\nNarSize: 1\n", "a.narinfo")
                .error()
                .message(),
            "NarHash is not a valid sha256 hash: 'sha256:zz'");
  EXPECT_EQ(parse_narinfo("NarSize: 12a\n", "a.narinfo").error().message(), "a.narinfo: line 1: NarSize: not a number");
  Limits lim;
  lim.max_line_len = 100;
  EXPECT_EQ(parse_narinfo("Deriver: " + std::string(200, 'd') + "\n", "a.narinfo", lim).error().message(),
            "a.narinfo: line 1 longer than 100 bytes");
  auto ci = parse_nix_cache_info("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n", "nix-cache-info");
  ASSERT_TRUE(ci);
  EXPECT_EQ(ci->priority, 40);
  EXPECT_TRUE(ci->want_mass_query);
}

TEST(NarInfo, FingerprintFormat) {
  auto info = parse_narinfo(
      "StorePath: /nix/store/lxbjvcnpj52mdasriqfhvly6r40wy5m1-d\nURL: nar/x.nar.xz\n"
      "NarHash: sha256:180ijh0r4xz12xznga8s2ywig6fxfy4924hjh8nhz2jfz2jn6kk5\nNarSize: 880\n"
      "References: zzz-b aaa-a\n",
      "n");
  ASSERT_TRUE(info);
  EXPECT_EQ(*info->fingerprint(),
            "1;/nix/store/lxbjvcnpj52mdasriqfhvly6r40wy5m1-d;sha256:180ijh0r4xz12xznga8s2ywig6fxfy4924hjh8nhz2jfz2jn6kk5;"
            "880;/nix/store/aaa-a,/nix/store/zzz-b");
}

}  // namespace
}  // namespace kmr::archive

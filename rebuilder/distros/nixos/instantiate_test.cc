// The nixpkgs tarball unpacked as tar(1) unpacks it, hostile members refused
// (tarballs written by Python's tarfile, which writes what it is told), the
// attribute names nixpkgs uses, and nix-instantiate in kmr's sandbox: the
// .drv equals what nix-instantiate on the host gives for the same tree, host
// files and the network are out of reach, another .drv is refused naming both.
#include "rebuilder/distros/nixos/instantiate.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "rebuilder/base/file.h"
#include "rebuilder/base/require.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/distros/nixos/test_nix.h"
#include "rebuilder/buildenv/sandbox.h"

namespace kmr::nixos {
namespace {

namespace fs = std::filesystem;

std::string tmp_dir(const std::string& name) {
  const char* t = std::getenv("TEST_TMPDIR");
  const std::string d = std::string(t ? t : "/tmp") + "/inst-" + name;
  std::error_code ec;
  fs::remove_all(d, ec);
  fs::create_directories(d);
  return d;
}

using testing::run;

// A tarball from Python's tarfile: each spec line is
//   f NAME CONTENT | d NAME | l NAME TARGET | h NAME TARGET | c NAME
std::string make_tar(const std::string& dir, const std::string& spec) {
  const std::string path = dir + "/t.tar.gz";
  std::ofstream(dir + "/spec") << spec;
  run({"python3", "-c",
       "import io, sys, tarfile\n"
       "t = tarfile.open(sys.argv[1], 'w:gz')\n"
       "for line in open(sys.argv[2]).read().splitlines():\n"
       "    k, name, *rest = line.split(' ')\n"
       "    i = tarfile.TarInfo(name)\n"
       "    if k == 'f':\n"
       "        data = ' '.join(rest).encode(); i.size = len(data); i.mode = 0o644; t.addfile(i, io.BytesIO(data)); continue\n"
       "    i.type = {'d': tarfile.DIRTYPE, 'l': tarfile.SYMTYPE, 'h': tarfile.LNKTYPE, 'c': tarfile.CHRTYPE}[k]\n"
       "    if rest: i.linkname = rest[0]\n"
       "    i.mode = 0o755; t.addfile(i)\n"
       "t.close()\n",
       path, dir + "/spec"},
      dir);
  return path;
}

TEST(Unpack, SameTreeAsTar) {
  if (!have_program("tar") || !have_program("diff")) KMR_SKIP_OR_FAIL("tar or diff not installed");
  const std::string d = tmp_dir("same");
  fs::create_directories(d + "/src/nixpkgs-abc/pkgs/os-specific/linux");
  std::ofstream(d + "/src/nixpkgs-abc/default.nix") << "{ ... }: { }\n";
  std::ofstream(d + "/src/nixpkgs-abc/pkgs/os-specific/linux/builder.sh") << "echo hi\n";
  fs::permissions(d + "/src/nixpkgs-abc/pkgs/os-specific/linux/builder.sh", fs::perms::owner_exec, fs::perm_options::add);
  fs::create_directory_symlink("pkgs/os-specific", d + "/src/nixpkgs-abc/os");
  run({"tar", "-C", d + "/src", "-czf", d + "/n.tar.gz", "nixpkgs-abc"}, d);
  auto st = unpack_tree(d + "/n.tar.gz", d + "/kmr");
  ASSERT_TRUE(st) << st.error().to_string();
  EXPECT_EQ(st->top, "nixpkgs-abc");
  EXPECT_EQ(st->files, 2u);
  EXPECT_EQ(st->symlinks, 1u);
  fs::create_directories(d + "/tar");
  run({"tar", "-C", d + "/tar", "--strip-components=1", "-xzf", d + "/n.tar.gz"}, d);
  run({"diff", "-r", "--no-dereference", d + "/tar", d + "/kmr"}, d);
  // Modes are normalised as git stores them: 0755 when any x bit is set, else 0644.
  EXPECT_TRUE(fs::status(d + "/kmr/pkgs/os-specific/linux/builder.sh").permissions() == static_cast<fs::perms>(0755));
  EXPECT_TRUE(fs::status(d + "/kmr/default.nix").permissions() == static_cast<fs::perms>(0644));
  // The destination must not exist.
  auto again = unpack_tree(d + "/n.tar.gz", d + "/kmr");
  EXPECT_FALSE(again);
}

TEST(Unpack, HostileMembersRefused) {
  if (!have_program("python3")) KMR_SKIP_OR_FAIL("python3 not installed");
  struct Case {
    std::string spec, want;
  } cases[] = {
      {"d top\nf /etc/cron.d/x boom", "absolute path"},
      {"d top\nf top/../../x boom", "'..' component"},
      {"d top\nl top/l ../../etc", "points outside the archive"},
      {"d top\nd top/a\nl top/a/l ../../x", "top/a/l: symbolic link target '../../x' leaves the tree"},
      {"d top\nl top/l /etc/shadow", "top/l: symbolic link to the absolute path '/etc/shadow'"},
      {"d top\nd top/sub\nl top/l sub\nf top/l/f x", "'top/l/f' lies beneath a symbolic link"},
      {"d top\nf top/a x\nh top/b top/a", "top/b: hard link to 'top/a'"},
      {"d top\nc top/tty", "character device not allowed"},
      {"d top\nd other\nf other/x y", "'other' is outside the one top-level directory 'top'"},
      {"f top x", "the top-level member 'top' is not a directory"},
      {"d top\nf top/a x\nf top/a y", "duplicate entry 'top/a'"},
  };
  int n = 0;
  for (const auto& c : cases) {
    const std::string d = tmp_dir("hostile" + std::to_string(n++));
    const std::string tar = make_tar(d, c.spec);
    auto st = unpack_tree(tar, d + "/out");
    ASSERT_FALSE(st) << c.spec;
    EXPECT_NE(st.error().message().find(c.want), std::string::npos) << c.spec << " -> " << st.error().message();
    EXPECT_FALSE(fs::exists("/x") && fs::is_regular_file("/x")) << c.spec;
  }
  // Caps.
  const std::string d = tmp_dir("caps");
  const std::string tar = make_tar(d, "d top\nf top/a 1\nf top/b 2\nf top/c 3\nd top/d\nd top/d/e\nf top/d/e/f x");
  UnpackLimits few;
  few.max_members = 3;
  auto st = unpack_tree(tar, d + "/o1", few);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kLimitExceeded) << st.error().to_string();
  UnpackLimits shallow;
  shallow.max_depth = 1;
  st = unpack_tree(tar, d + "/o2", shallow);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("deeper than 1"), std::string::npos) << st.error().to_string();
  EXPECT_TRUE(unpack_tree(tar, d + "/o3"));
}

TEST(Attribute, FromDeriverName) {
  const std::string h = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-";
  EXPECT_EQ(*attribute_for_deriver(h + "linux-6.6.30.drv"), "linux_6_6");
  EXPECT_EQ(*attribute_for_deriver(h + "linux-6.12.1-rt.drv"), "linux_6_12");
  EXPECT_EQ(*attribute_for_deriver("0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.1.drv"), "hello");
  EXPECT_EQ(*attribute_for_deriver(h + "linux-kmrfix-6.18.0.drv"), "linux-kmrfix");
  EXPECT_EQ(*attribute_for_deriver(h + "zfs-kernel-2.2.4-6.6.30.drv"), "zfs-kernel");
  EXPECT_FALSE(attribute_for_deriver(h + "1.0.drv"));
  EXPECT_FALSE(attribute_for_deriver(h + "perl5.36.0-x-1.drv"));
  EXPECT_FALSE(attribute_for_deriver(h + "hello-2.12.1"));
  EXPECT_FALSE(attribute_for_deriver("short-hello.drv"));
  EXPECT_EQ(*parse_attribute_path("linuxPackages_6_6.kernel\n"), "linuxPackages_6_6.kernel");
  for (const char* bad : {"", "a..b", ".a", "a.", "a b", "${x}", "1a", "a/b"}) EXPECT_FALSE(parse_attribute_path(bad)) << bad;
  EXPECT_FALSE(parse_attribute_path(std::string(257, 'a')));
}

TEST(Sources, FindsTheTarball) {
  const std::string d = tmp_dir("find");
  EXPECT_EQ(find_nixpkgs_tarball(d).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(find_nixpkgs_tarball("").error().code(), ErrorCode::kNotFound);
  std::ofstream(d + "/nixpkgs-0123.tar.gz") << "x";
  std::ofstream(d + "/other.tar.gz") << "x";
  EXPECT_EQ(*find_nixpkgs_tarball(d), d + "/nixpkgs-0123.tar.gz");
  EXPECT_EQ(*find_nixpkgs_tarball(d + "/nixpkgs-0123.tar.gz"), d + "/nixpkgs-0123.tar.gz");
  std::ofstream(d + "/nixpkgs-4567.tar.gz") << "x";
  EXPECT_EQ(find_nixpkgs_tarball(d).error().code(), ErrorCode::kMalformedInput);
  EXPECT_EQ(*explicit_attribute(d), "");
  std::ofstream(d + "/nix-attr") << "linuxPackages.kernel\n";
  EXPECT_EQ(*explicit_attribute(d), "linuxPackages.kernel");
  std::ofstream(d + "/nix-attr") << "x; rm -rf /\n";
  EXPECT_FALSE(explicit_attribute(d));
}

TEST(ReadBeneath, FollowsNoLink) {
  const std::string d = tmp_dir("beneath");
  fs::create_directories(d + "/r/nix/store");
  std::ofstream(d + "/r/nix/store/a.drv") << "A";
  std::ofstream(d + "/secret") << "S";
  fs::create_symlink(d + "/secret", d + "/r/nix/store/b.drv");
  fs::create_directory_symlink(d, d + "/r/up");
  EXPECT_EQ(*read_beneath(d + "/r", "nix/store/a.drv", 10), "A");
  EXPECT_FALSE(read_beneath(d + "/r", "nix/store/b.drv", 10));
  EXPECT_FALSE(read_beneath(d + "/r", "up/secret", 10));
  EXPECT_FALSE(read_beneath(d + "/r", "nix/../../secret", 10));
  EXPECT_EQ(read_beneath(d + "/r", "nix/store/c.drv", 10).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(read_beneath(d + "/r", "nix/store/a.drv", 0).error().code(), ErrorCode::kLimitExceeded);
}

// nix-instantiate in the sandbox.
class Instantiate : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* t : {"nix-instantiate", "tar"}) {
      if (!have_program(t)) KMR_SKIP_OR_FAIL(std::string(t) + " not installed");
    }
    auto sa = build::sandbox_available();
    if (!sa) KMR_SKIP_OR_FAIL("sandbox unavailable: " + sa.error().message());
  }
};

TEST_F(Instantiate, InTheSandbox) {
  const std::string d = tmp_dir("sandbox");
  // A host file the evaluation must not see: under the test's temporary
  // directory, which is not bound into the sandbox.
  const std::string secret = d + "/host-secret";
  std::ofstream(secret) << "secret\n";
  // A listening socket on the host's loopback: the sandbox has its own.
  const int sock = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(sock, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(sock, 16), 0);
  socklen_t len = sizeof a;
  ::getsockname(sock, reinterpret_cast<sockaddr*>(&a), &len);
  const std::string port = std::to_string(ntohs(a.sin_port));

  const std::string top = d + "/src/nixpkgs-0123";
  fs::create_directories(top + "/pkgs");
  std::ofstream(top + "/pkgs/builder.sh") << "echo hi > $out; echo dev > $dev\n";
  std::ofstream(top + "/default.nix")
      << "{ ... }: let mk = name: derivation { inherit name; system = \"x86_64-linux\"; builder = \"/bin/sh\";\n"
         "  args = [ ./pkgs/builder.sh ]; outputs = [ \"out\" \"dev\" ]; }; in {\n"
         "  dep = mk \"dep-1.0\";\n"
         "  hello = derivation { name = \"hello-1.0\"; system = \"x86_64-linux\";\n"
         "    builder = \"/bin/sh\"; args = [ ./pkgs/builder.sh ]; outputs = [ \"out\" \"dev\" ]; dep = mk \"dep-1.0\"; };\n"
         "  other = mk \"other-1.0\";\n"
         "  shadow = mk (builtins.readFile \"/etc/shadow\");\n"
         "  secret = mk (builtins.readFile \"" << secret << "\");\n"
         "  net = mk (builtins.readFile (builtins.fetchurl \"http://127.0.0.1:" << port << "/x\"));\n"
         "}\n";
  run({"tar", "-C", d + "/src", "-czf", d + "/nixpkgs-0123.tar.gz", "nixpkgs-0123"}, d);
  // What Nix gives on the host (a private store) for the same tree.
  const std::string store = "local?root=" + d + "/hostroot";
  const std::string want = run({"nix-instantiate", "--store", store, top, "-A", "hello"}, d);
  const std::string other = run({"nix-instantiate", "--store", store, top, "-A", "other"}, d);
  const std::string out = run({"nix-store", "--store", store, "--query", "--outputs", want}, d);
  ASSERT_TRUE(is_store_path(want)) << want;

  InstantiateRequest req;
  req.tarball = d + "/nixpkgs-0123.tar.gz";
  req.attr = "hello";
  req.deriver = want;
  req.shipped_outputs = {out.substr(0, out.find('\n'))};
  req.work_dir = d + "/job1";
  req.memory_bytes = 2ull << 30;
  req.wall_time = std::chrono::minutes(5);
  auto got = instantiate(req);
  ASSERT_TRUE(got) << got.error().to_string();
  EXPECT_EQ(got->drv, want);
  // The input derivation was read back from the job's store too.
  ASSERT_EQ(got->closure.size(), 2u);
  ASSERT_EQ(got->derivation.input_drvs.size(), 1u);
  EXPECT_TRUE(got->closure.count(got->derivation.input_drvs.begin()->first));
  EXPECT_TRUE(got->derivation.input_drvs.begin()->first.ends_with("-dep-1.0.drv"));
  EXPECT_EQ(got->unpacked.top, "nixpkgs-0123");
  EXPECT_EQ(got->tarball_sha256.size(), 64u);
  auto host_text = read_text_file(d + "/hostroot" + want, 1 << 20);
  ASSERT_TRUE(host_text);
  auto job_text = read_text_file(got->store_root + want, 1 << 20);
  ASSERT_TRUE(job_text);
  EXPECT_EQ(*host_text, *job_text);

  // Another .drv than the Deriver: refused, both named.
  req.work_dir = d + "/job2";
  req.attr = "other";
  auto mismatch = instantiate(req);
  ASSERT_FALSE(mismatch);
  EXPECT_EQ(mismatch.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(mismatch.error().message().find("instantiates " + other + ", not the narinfo's Deriver " + want), std::string::npos)
      << mismatch.error().message();

  // The Deriver's outputs lack the shipped path.
  req.work_dir = d + "/job3";
  req.attr = "hello";
  req.shipped_outputs = {"/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-1.0"};
  auto notours = instantiate(req);
  ASSERT_FALSE(notours);
  EXPECT_EQ(notours.error().code(), ErrorCode::kVerificationFailed) << notours.error().to_string();

  // Host files and the network are out of reach (on the host, as root, the
  // first two read fine).
  struct Probe {
    const char* attr;
    std::string want;
  } probes[] = {
      {"shadow", "/etc/shadow"},
      {"secret", secret},
      {"net", "127.0.0.1:" + port},
  };
  int n = 4;
  for (const auto& p : probes) {
    req.work_dir = d + "/job" + std::to_string(n++);
    req.attr = p.attr;
    auto r = instantiate(req);
    ASSERT_FALSE(r) << p.attr;
    const std::string& m = r.error().message();
    EXPECT_EQ(r.error().code(), ErrorCode::kNotFound) << m;
    EXPECT_NE(m.find(p.want), std::string::npos) << m;
    EXPECT_TRUE(m.find("No such file or directory") != std::string::npos || m.find("Couldn't connect") != std::string::npos ||
                m.find("Connection refused") != std::string::npos || m.find("resolve") != std::string::npos)
        << m;
  }
  ::close(sock);
}

}  // namespace
}  // namespace kmr::nixos

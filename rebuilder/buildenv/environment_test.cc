#include "rebuilder/buildenv/environment.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "rebuilder/base/file.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/subprocess.h"

namespace kmr::build {
namespace {

std::string testdata(const std::string& name) {
  auto r = read_text_file("rebuilder/buildenv/testdata/" + name, 1 << 20);
  EXPECT_TRUE(r) << r.error().to_string();
  return r ? *r : "";
}

// A .BUILDINFO written by the real makepkg 6.0.2 (testdata/arch.BUILDINFO).
TEST(ArchBuildinfo, ParsesMakepkgOutput) {
  auto env = parse_arch_buildinfo(testdata("arch.BUILDINFO"));
  ASSERT_TRUE(env) << env.error().to_string();
  EXPECT_EQ(env->distro, "arch");
  EXPECT_EQ(env->source_date_epoch, 1700000000);
  EXPECT_EQ(env->env.at("SOURCE_DATE_EPOCH"), "1700000000");
  EXPECT_EQ(env->build_path, "/tmp/build-gen/arch/b");
  EXPECT_EQ(env->fields.at("pkgname"), "kmr-hello");
  EXPECT_EQ(env->fields.at("pkgver"), "1.0-1");
  EXPECT_EQ(env->fields.at("packager"), "Kmr Test <kmr@example.org>");
  EXPECT_EQ(env->fields.at("pkgbuild_sha256sum"), "5916a29bb7e3d017e403a10863cd2593b90cbd3202426a53f80c71596a960769");
  EXPECT_EQ(env->buildenv, (std::vector<std::string>{"!distcc", "color", "!ccache", "check", "!sign"}));
  ASSERT_EQ(env->options.size(), 9u);
  EXPECT_EQ(env->options.back(), "!lto");
  EXPECT_TRUE(env->installed.empty());
}

TEST(ArchBuildinfo, InstalledRepeats) {
  auto env = parse_arch_buildinfo(
      "format = 2\npkgname = linux\npkgver = 6.1-1\nbuilddate = 5\ninstalled = gcc-13.2.1-3-x86_64\n"
      "installed = binutils-2.41-2-x86_64\n");
  ASSERT_TRUE(env);
  EXPECT_EQ(env->installed, (std::vector<std::string>{"gcc-13.2.1-3-x86_64", "binutils-2.41-2-x86_64"}));
}

struct Bad {
  const char* text;
  const char* error;
};

TEST(ArchBuildinfo, HostileInputs) {
  const Bad cases[] = {
      {"format = 2\npkgname = a\npkgver = 1\n", ".BUILDINFO: missing 'builddate'"},
      {"format = 2\npkgname = a\npkgname = b\npkgver = 1\nbuilddate = 1\n", ".BUILDINFO: line 3: duplicate key 'pkgname'"},
      {"format = 2\npkgname a\n", ".BUILDINFO: line 2: expected 'key = value'"},
      {"format = 2\nPKG NAME = a\n", ".BUILDINFO: line 2: invalid key 'PKG NAME'"},
      {"format = 2\npkgname = a\npkgver = 1\nbuilddate = -5\n", ".BUILDINFO: builddate is not a non-negative integer: '-5'"},
      {"format = 2\npkgname = a\npkgver = 1\nbuilddate = 99999999999999999999\n",
       ".BUILDINFO: builddate is not a non-negative integer: '99999999999999999999'"},
      {"format = 2\npkgname = a\npkgver = 1\nbuilddate = 12x\n", ".BUILDINFO: builddate is not a non-negative integer: '12x'"},
      {"format = 3\npkgname = a\npkgver = 1\nbuilddate = 1\n", ".BUILDINFO: unsupported format '3'"},
      {"format = 2\npkgname = a\npkgver = 1\nbuilddate = 1\npkgbuild_sha256sum = abc\n",
       ".BUILDINFO: pkgbuild_sha256sum is not a SHA-256: 'abc'"},
      {"format = 2\npkgname = a\npkgbase = ../../../../etc\npkgver = 1\nbuilddate = 1\n",
       ".BUILDINFO: pkgbase is not a safe package name or version: '../../../../etc'"},
      {"format = 2\npkgname = a/b\npkgver = 1\nbuilddate = 1\n",
       ".BUILDINFO: pkgname is not a safe package name or version: 'a/b'"},
      {"format = 2\npkgname = a\npkgver = 1$(id)\nbuilddate = 1\n",
       ".BUILDINFO: pkgver is not a safe package name or version: '1$(id)'"},
      {"format = 2\npkgname = \xff\xfe\n", ".BUILDINFO: invalid UTF-8"},
      {"format = 2\npkgname = \xed\xa0\x80\n", ".BUILDINFO: invalid UTF-8"},  // surrogate
      {"format = 2\npkgname = \xc0\xaf\n", ".BUILDINFO: invalid UTF-8"},      // overlong
      {"format = 2\npkgname = \xe2\x82", ".BUILDINFO: invalid UTF-8"},        // truncated
  };
  for (const auto& c : cases) {
    auto env = parse_arch_buildinfo(c.text);
    ASSERT_FALSE(env) << c.text;
    EXPECT_EQ(env.error().message(), c.error);
  }
  auto nul = parse_arch_buildinfo(std::string("format = 2\0\n", 12));
  ASSERT_FALSE(nul);
  EXPECT_EQ(nul.error().message(), ".BUILDINFO: NUL byte");
  Limits small;
  small.max_line_len = 16;
  auto long_line = parse_arch_buildinfo("format = 2\npkgname = aaaaaaaaaaaaaaaaaaaaa\n", small);
  ASSERT_FALSE(long_line);
  EXPECT_EQ(long_line.error().message(), ".BUILDINFO: line 2 longer than 16 bytes");
  EXPECT_EQ(long_line.error().code(), ErrorCode::kLimitExceeded);
}

// A .buildinfo written by the real dpkg-genbuildinfo (dpkg 1.21).
TEST(DebianBuildinfo, ParsesDpkgOutput) {
  auto env = parse_debian_buildinfo(testdata("kmr-hello_1.0-1_amd64.buildinfo"), "proxmox");
  ASSERT_TRUE(env) << env.error().to_string();
  EXPECT_EQ(env->distro, "proxmox");
  EXPECT_EQ(env->fields.at("Source"), "kmr-hello");
  EXPECT_EQ(env->fields.at("Version"), "1.0-1");
  EXPECT_EQ(env->source_date_epoch, 1700000000);
  EXPECT_EQ(env->env.at("LANG"), "C.UTF-8");
  EXPECT_EQ(env->env.at("DEB_BUILD_OPTIONS"), "parallel=2");
  ASSERT_GT(env->installed.size(), 50u);
  EXPECT_EQ(env->installed.front(), "base-files=12.4+deb12u11");
  EXPECT_EQ(env->installed.back(), "zlib1g=1:1.2.13.dfsg-1");
  EXPECT_NE(env->fields.at("Checksums-Sha256").find("kmr-hello_1.0-1_amd64.deb"), std::string::npos);
}

TEST(DebianBuildinfo, Clearsigned) {
  const std::string text =
      "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nFormat: 1.0\nSource: linux\nVersion: 6.1-1\n"
      "Build-Path: /build/reproducible-path/linux-6.1\nEnvironment:\n SOURCE_DATE_EPOCH=\"42\"\n"
      "- Dash-Escaped: yes\n\n-----BEGIN PGP SIGNATURE-----\n\niQIzBAEB\n-----END PGP SIGNATURE-----\n";
  auto env = parse_debian_buildinfo(text);
  ASSERT_TRUE(env) << env.error().to_string();
  EXPECT_EQ(env->build_path, "/build/reproducible-path/linux-6.1");
  EXPECT_EQ(env->source_date_epoch, 42);
  EXPECT_EQ(env->fields.at("Dash-Escaped"), "yes");
}

TEST(DebianBuildinfo, HostileInputs) {
  const Bad cases[] = {
      {"Format: 1.0\nVersion: 1\n", ".buildinfo: missing field 'Source'"},
      {" continuation\n", ".buildinfo: line 1: continuation line before any field"},
      {"Source: a\nSource: b\n", ".buildinfo: line 2: duplicate field 'Source'"},
      {"Source: a\nnot a field\n", ".buildinfo: line 2: expected 'Field: value'"},
      {"Source: a\n\nVersion: 1\n", ".buildinfo: line 3: more than one paragraph"},
      {"Source a b: x\n", ".buildinfo: line 1: invalid field name 'Source a b'"},
      {"Source: a\nVersion: 1\nInstalled-Build-Depends:\n gcc (>= 12)\n",
       ".buildinfo: Installed-Build-Depends entry without '=' version: 'gcc (>= 12)'"},
      {"Source: a\nVersion: 1\nEnvironment:\n NOEQUALS\n", ".buildinfo: Environment entry is not KEY=value: 'NOEQUALS'"},
      {"Source: a\nVersion: 1\nEnvironment:\n SOURCE_DATE_EPOCH=\"soon\"\n",
       ".buildinfo: SOURCE_DATE_EPOCH is not a non-negative integer: 'soon'"},
      {"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n", ".buildinfo: clearsigned message without a body"},
      {"Source: ../../srv/x\nVersion: 1\n", ".buildinfo: Source is not a safe package name or version: '../../srv/x'"},
      {"Source: linux (6.1-1)\nVersion: 6.1-1/../../x\n",
       ".buildinfo: Version is not a safe package name or version: '6.1-1/../../x'"},
  };
  for (const auto& c : cases) {
    auto env = parse_debian_buildinfo(c.text);
    ASSERT_FALSE(env) << c.text;
    EXPECT_EQ(env.error().message(), c.error);
  }
}

// Recorded variables are untrusted: only allow-listed names with validated
// values reach the build; the rest is recorded, literally, as dropped.
TEST(DebianBuildinfo, EnvironmentAllowList) {
  const std::string text =
      "Source: linux\nVersion: 6.1-1\nEnvironment:\n"
      " DEB_BUILD_OPTIONS=\"parallel=4 nocheck hardening=+all,-pie\"\n"
      " DEB_BUILD_PROFILES=\"$(touch /tmp/p)\"\n"
      " LANG=\"C.UTF-8\"\n"
      " LC_ALL=\"en_US.UTF-8;id\"\n"
      " PATH=\"/evil/bin\"\n"
      " PERL5OPT=\"-M5;system(q{touch /tmp/x})\"\n"
      " SOURCE_DATE_EPOCH=\"1700000000\"\n";
  auto env = parse_debian_buildinfo(text);
  ASSERT_TRUE(env) << env.error().to_string();
  EXPECT_EQ(env->env, (std::map<std::string, std::string>{{"DEB_BUILD_OPTIONS", "parallel=4 nocheck hardening=+all,-pie"},
                                                          {"LANG", "C.UTF-8"},
                                                          {"SOURCE_DATE_EPOCH", "1700000000"}}));
  EXPECT_EQ(env->dropped_env, (std::map<std::string, std::string>{{"DEB_BUILD_PROFILES", "$(touch /tmp/p)"},
                                                                  {"LC_ALL", "en_US.UTF-8;id"},
                                                                  {"PATH", "/evil/bin"},
                                                                  {"PERL5OPT", "-M5;system(q{touch /tmp/x})"}}));
  const auto j = nlohmann::json::parse(env->canonical_json());
  EXPECT_EQ(j["dropped_env"]["PERL5OPT"], "-M5;system(q{touch /tmp/x})");
  EXPECT_FALSE(j["env"].contains("PERL5OPT"));
  auto twice = parse_debian_buildinfo("Source: a\nVersion: 1\nEnvironment:\n PERL5OPT=\"a\"\n PERL5OPT=\"b\"\n");
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().message(), ".buildinfo: Environment sets 'PERL5OPT' twice");
  auto sign = parse_debian_buildinfo("Source: a\nVersion: 1\nEnvironment:\n SOURCE_DATE_EPOCH=\"+5\"\n");
  ASSERT_FALSE(sign);
}

TEST(BuildValues, EnvAllowed) {
  EXPECT_TRUE(build_env_allowed("SOURCE_DATE_EPOCH", "0"));
  EXPECT_FALSE(build_env_allowed("SOURCE_DATE_EPOCH", "-1"));
  EXPECT_FALSE(build_env_allowed("SOURCE_DATE_EPOCH", "1 2"));
  EXPECT_TRUE(build_env_allowed("DEB_BUILD_OPTIONS", ""));
  EXPECT_TRUE(build_env_allowed("DEB_BUILD_OPTIONS", "parallel=8 noautodbgsym optimize=-lto"));
  for (const char* bad : {"parallel=$(nproc)", "a;b", "x=`id`", "a=b/c", "-x", "a\tb", "a='1'", "x=${HOME}"}) {
    EXPECT_FALSE(build_env_allowed("DEB_BUILD_OPTIONS", bad)) << bad;
  }
  EXPECT_TRUE(build_env_allowed("LC_CTYPE", "de_DE.UTF-8@euro"));
  EXPECT_FALSE(build_env_allowed("LANG", ""));
  EXPECT_FALSE(build_env_allowed("LANG", "../../x"));
  for (const char* name : {"PATH", "HOME", "PERL5OPT", "PERL5LIB", "LD_PRELOAD", "BASH_ENV", "ENV", "CFLAGS", "MAKEFLAGS",
                           "PYTHONPATH", "DEB_VENDOR", "TZ"}) {
    EXPECT_FALSE(build_env_allowed(name, "x")) << name;
  }
}

// Checked against what POSIX sh makes of the quoted word: each value read
// back through a real /bin/sh is the original bytes.
TEST(BuildValues, ConfigLineAndShellQuote) {
  EXPECT_EQ(shell_quote("a'b"), "'a'\\''b'");
  EXPECT_EQ(*config_line_value("PACKAGER", "$(touch /tmp/y) `id` ${X}"), "'$(touch /tmp/y) `id` ${X}'");
  for (const char* bad : {"a\nb", "a\rb"}) {
    auto r = config_line_value("PACKAGER", bad);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), "PACKAGER holds a line break or NUL; refused for a generated config line");
  }
  EXPECT_FALSE(config_line_value("PACKAGER", std::string("a\0b", 3)));
  for (const std::string v : {"plain", "it's", "''", "$(touch /tmp/kmr-env-test-y)", "`id` ${HOME} \\ \" ; | & * ?"}) {
    auto quoted = config_line_value("V", v);
    ASSERT_TRUE(quoted);
    auto r = run_subprocess({"/bin/sh", "-c", "V=" + *quoted + "\nprintf %s \"$V\""});
    ASSERT_TRUE(r && r->success()) << v;
    EXPECT_EQ(r->out, v);
  }
  EXPECT_FALSE(std::filesystem::exists("/tmp/kmr-env-test-y"));
}

TEST(BuildValues, RpmMacroBody) {
  EXPECT_EQ(*rpm_macro_body("packager", "%(touch /tmp/x) %{name} 100%"), "%%(touch /tmp/x) %%{name} 100%%");
  EXPECT_EQ(*rpm_macro_body("vendor", "openSUSE"), "openSUSE");
  for (const char* bad : {"$(touch /tmp/x)", "`id`", "${HOME}", "a\nb", "a\rb"}) {
    EXPECT_FALSE(rpm_macro_body("packager", bad)) << bad;
  }
  EXPECT_EQ(rpm_macro_body("packager", "x $(id)").error().message(),
            "packager holds '$('; refused as an rpm macro body: 'x $(id)'");
}

TEST(BuildValues, BuildPathAndUser) {
  for (const char* good : {"/build", "/startdir", "/home/abuild/rpmbuild", "/usr/src/packages", "/tmp/build-gen/arch/b",
                           "/build/reproducible-path/linux-6.1", "/var/tmp/kmrfix-work/arch/start"}) {
    EXPECT_TRUE(check_build_path("p", good)) << good;
  }
  for (const char* bad : {"", "/", "build", "/etc", "/etc/x", "/usr", "/usr/lib/x", "/usr/src", "/proc/1", "/var/tmp", "/var/lib/x",
                          "/nix/store", "/kmr", "/pkgdest", "/tmp", "/build/../etc", "/build/./x", "/build//x", "/build/",
                          "/bu ild", "/b$(id)", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q"}) {
    EXPECT_FALSE(check_build_path("p", bad)) << bad;
  }
  EXPECT_TRUE(check_user_name("u", "abuild"));
  EXPECT_TRUE(check_user_name("u", "root"));
  for (const char* bad : {"", "Root", "a:b", "a/b", "x\ny", "-x", "0abc", "abcdefghijabcdefghijabcdefghijabc"}) {
    EXPECT_FALSE(check_user_name("u", bad)) << bad;
  }
}

TEST(Disturl, Parses) {
  auto d = parse_disturl("obs://build.opensuse.org/openSUSE:Factory/standard/9f8e7d6c5b4a-kernel-source:default");
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(d->host, "build.opensuse.org");
  EXPECT_EQ(d->project, "openSUSE:Factory");
  EXPECT_EQ(d->repository, "standard");
  EXPECT_EQ(d->srcmd5, "9f8e7d6c5b4a");
  EXPECT_EQ(d->package, "kernel-source");
  EXPECT_EQ(d->flavor, "default");
  auto bad = parse_disturl("https://example.org/x");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "DISTURL 'https://example.org/x': not an obs:// URL");
  bad = parse_disturl("obs://h/p/r/nodash");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "DISTURL 'obs://h/p/r/nodash': last component has no '<srcmd5>-<package>'");
  bad = parse_disturl("obs://h/p");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "DISTURL 'obs://h/p': expected obs://host/project/repository/srcmd5-package");
}

TEST(SuseEnvironment, FromRpmFacts) {
  RpmBuildFacts f;
  f.name = "kernel-default";
  f.version = "6.1";
  f.release = "1.1";
  f.arch = "x86_64";
  f.disturl = "obs://build.example/home:kmr/standard/abc123-kernel-default";
  f.buildtime = 1700000000;
  f.buildhost = "buildhost";
  auto env = suse_environment(f);
  ASSERT_TRUE(env) << env.error().to_string();
  EXPECT_EQ(env->source_date_epoch, 1700000000);
  EXPECT_EQ(env->build_host, "buildhost");
  EXPECT_EQ(env->fields.at("obs_srcmd5"), "abc123");
  f.buildtime = -1;
  EXPECT_FALSE(suse_environment(f));
}

TEST(NixNarinfo, ParsesAndDropsUnsignedFields) {
  auto env = parse_nix_narinfo(testdata("environment_corpus/narinfo"));
  ASSERT_TRUE(env) << env.error().to_string();
  EXPECT_EQ(env->fields.at("Deriver"), "0123456789abcdfghijklmnpqrsvwxyz-linux-6.12.41.drv");
  EXPECT_EQ(env->fields.count("URL"), 0u);
  EXPECT_EQ(env->fields.count("Sig"), 0u);
  auto bad = parse_nix_narinfo("StorePath: /nix/store/x\nDeriver: ../../etc/passwd\n");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "narinfo: Deriver is not a .drv basename: '../../etc/passwd'");
  bad = parse_nix_narinfo("Deriver: a.drv\n");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "narinfo: missing 'StorePath'");
}

// The digest is over canonical JSON: keys sorted, no whitespace. Checked
// against an independently written expected string.
TEST(Environment, CanonicalJsonAndDigest) {
  BuildEnvironment env;
  env.distro = "arch";
  env.description = ".BUILDINFO";
  env.source_date_epoch = 7;
  env.env = {{"Z", "1"}, {"A", "\xc3\xa9"}};
  env.fields = {{"pkgname", "linux"}};
  const std::string expected =
      "{\"build_host\":\"\",\"build_path\":\"\",\"build_user\":\"\",\"buildenv\":[],\"description\":\".BUILDINFO\","
      "\"distro\":\"arch\",\"env\":{\"A\":\"\xc3\xa9\",\"Z\":\"1\"},\"fields\":{\"pkgname\":\"linux\"},\"installed\":[],"
      "\"options\":[],\"source_date_epoch\":7}";
  EXPECT_EQ(env.canonical_json(), expected);
  EXPECT_EQ(env.digest(), "sha256:" + sha256_hex(as_bytes(expected)));
  // Any change moves the digest.
  auto other = env;
  other.installed.push_back("gcc-13");
  EXPECT_NE(other.digest(), env.digest());
}

}  // namespace
}  // namespace kmr::build

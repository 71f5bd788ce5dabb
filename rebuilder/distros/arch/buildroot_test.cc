// The pinned set, the cache key and pacman's desc format; the installed-set
// check against a database the real pacman writes (a package made with
// bsdtar, installed with `pacman --root` into a temporary root).
#include "rebuilder/distros/arch/buildroot.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "rebuilder/base/file.h"
#include "rebuilder/base/require.h"
#include "rebuilder/base/subprocess.h"

namespace kmr::arch {
namespace {

namespace fs = std::filesystem;

TEST(PinnedPackages, ParsesAndSorts) {
  auto p = pinned_packages({"zstd-1.5.5-1-x86_64", "gcc-libs-13.2.1-3-x86_64", "ca-certificates-20220905-1-any",
                            "libsigc++-2.12.1-1-x86_64", "python-3.11.6-1-x86_64", "iana-etc-20231117-1-any",
                            "tzdata-2023c-2-x86_64", "pacman-mirrorlist-20231001-1-any", "gnupg-2.4.3-2-x86_64",
                            "shadow-4.14.2-1-x86_64", "glibc-2:2.38-7-x86_64", "perl-5.38.1-1.1-x86_64"});
  ASSERT_TRUE(p) << p.error().to_string();
  ASSERT_EQ(p->size(), 12u);
  EXPECT_EQ((*p)[0].name, "ca-certificates");
  EXPECT_EQ((*p)[2].name, "glibc");
  EXPECT_EQ((*p)[2].version, "2:2.38-7");
  EXPECT_EQ((*p)[2].arch, "x86_64");
  EXPECT_EQ(p->back().name, "zstd");
}

TEST(PinnedPackages, RejectsHostileAndAmbiguousEntries) {
  for (const char* bad : {"-rf-1-1-x86_64", ".hidden-1-1-x86_64", "Zstd-1-1-x86_64", "zstd-1.5-x-x86_64",
                          "zstd-1.5-1-x86 64", "zstd-1.5-1-x86/64", "zstd-1;id-1-x86_64", "zstd-$(id)-1-x86_64",
                          "zstd-a:1-1-x86_64", "zstd-1-1", "zstd", "", "z\nstd-1-1-x86_64", "zstd-1-1-..",
                          "zstd-1-1-x86_64\r", "zstd-1--x86_64"}) {
    EXPECT_FALSE(pinned_packages({bad})) << bad;
  }
  EXPECT_FALSE(pinned_packages({"zstd-1-1-x86_64", "zstd-2-1-x86_64"}));
  EXPECT_FALSE(pinned_packages({}));
  EXPECT_FALSE(pinned_packages(std::vector<std::string>(4097, "zstd-1-1-x86_64")));
}

TEST(RootKey, DependsOnTheSetAndTheKeyringOnly) {
  auto a = pinned_packages({"b-1-1-any", "a-1-1-x86_64"});
  auto b = pinned_packages({"a-1-1-x86_64", "b-1-1-any"});
  auto c = pinned_packages({"a-1-2-x86_64", "b-1-1-any"});
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(root_key(*a, "k1"), root_key(*b, "k1"));
  EXPECT_NE(root_key(*a, "k1"), root_key(*c, "k1"));
  EXPECT_NE(root_key(*a, "k1"), root_key(*a, "k2"));
  EXPECT_EQ(root_key(*a, "k1").size(), 64u);
}

TEST(Desc, ParsesPacmansFormat) {
  auto d = parse_desc("%NAME%\nzstd\n\n%VERSION%\n1.5.5-1\n\n%BASE%\nzstd\n\n%DESC%\nZstandard\n\n%ARCH%\nx86_64\n\n"
                      "%DEPENDS%\nglibc\ngcc-libs\nzlib\n\n");
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(d->name, "zstd");
  EXPECT_EQ(d->version, "1.5.5-1");
  EXPECT_EQ(d->arch, "x86_64");
  EXPECT_EQ(d->fields.at("DEPENDS").size(), 3u);
}

TEST(Desc, RejectsMalformedAndOversized) {
  for (const char* bad : {"", "%NAME%\nzstd\n", "NAME\nzstd\n", "%name%\nx\n", "%NAME%\na\nb\n\n%VERSION%\n1-1\n\n%ARCH%\nany\n",
                          "%NAME%\na\n\n%NAME%\nb\n\n%VERSION%\n1-1\n\n%ARCH%\nany\n", "%%\n", "%NAME\nx\n"}) {
    EXPECT_FALSE(parse_desc(bad)) << bad;
  }
  EXPECT_FALSE(parse_desc(std::string("%NAME%\na\0b\n\n%VERSION%\n1-1\n\n%ARCH%\nany\n", 38)));
  EXPECT_FALSE(parse_desc("%NAME%\n" + std::string(5000, 'a') + "\n\n%VERSION%\n1-1\n\n%ARCH%\nany\n"));
  EXPECT_FALSE(parse_desc(std::string(2 << 20, '\n')));
  std::string many;
  for (int i = 0; i < 70; ++i) many += "%K" + std::to_string(i) + "%\nv\n\n";
  EXPECT_FALSE(parse_desc(many + "%NAME%\na\n\n%VERSION%\n1-1\n\n%ARCH%\nany\n"));
}

// A package made with bsdtar and installed by the real pacman: the
// comparison reads the database pacman wrote.
TEST(CompareInstalled, AgainstARealPacmanDatabase) {
  if (!have_program("pacman") || !have_program("bsdtar")) KMR_SKIP_OR_FAIL("pacman or bsdtar not installed");
  const char* tmpdir = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmpdir ? tmpdir : "/tmp") + "/arch-compare";
  fs::remove_all(dir);
  fs::create_directories(dir + "/pkg/usr/share/kmr");
  fs::create_directories(dir + "/root/var/lib/pacman");
  std::ofstream(dir + "/pkg/.PKGINFO") << "pkgname = kmr-unit\npkgbase = kmr-unit\npkgver = 2:1.2-3\npkgdesc = test\n"
                                          "builddate = 1\npackager = kmr\nsize = 2\narch = x86_64\n";
  std::ofstream(dir + "/pkg/usr/share/kmr/x") << "x\n";
  auto tar = run_subprocess({"bsdtar", "-C", dir + "/pkg", "--zstd", "-cf", dir + "/kmr-unit-2:1.2-3-x86_64.pkg.tar.zst", ".PKGINFO", "usr"});
  ASSERT_TRUE(tar && tar->success()) << (tar ? tar->err : tar.error().to_string());
  std::ofstream(dir + "/pacman.conf") << "[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\n";
  std::vector<std::string> argv;
  if (::geteuid() != 0) argv = {"unshare", "--user", "--map-root-user", "--"};
  for (const std::string& a : std::initializer_list<std::string>{"pacman", "--config", dir + "/pacman.conf", "--root", dir + "/root",
                                                                 "--dbpath", dir + "/root/var/lib/pacman", "--noconfirm",
                                                                 "--noscriptlet", "-U", dir + "/kmr-unit-2:1.2-3-x86_64.pkg.tar.zst"}) {
    argv.push_back(a);
  }
  auto inst = run_subprocess(argv);
  ASSERT_TRUE(inst) << inst.error().to_string();
  if (!inst->success()) KMR_SKIP_OR_FAIL("pacman -U into a temporary root failed here: " + inst->out + inst->err);

  auto same = pinned_packages({"kmr-unit-2:1.2-3-x86_64"});
  ASSERT_TRUE(same);
  auto d = compare_installed(dir + "/root", *same);
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_TRUE(d->empty()) << (d->empty() ? "" : d->front());

  auto other = pinned_packages({"kmr-unit-2:1.2-4-any", "zlib-1.3-1-x86_64"});
  ASSERT_TRUE(other);
  d = compare_installed(dir + "/root", *other);
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(*d, (std::vector<std::string>{"kmr-unit installed at 2:1.2-3 (pinned 2:1.2-4)", "kmr-unit arch x86_64 (pinned any)",
                                          "missing zlib-1.3-1-x86_64"}));
  auto none = pinned_packages({"zlib-1.3-1-x86_64"});
  d = compare_installed(dir + "/root", *none);
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, (std::vector<std::string>{"missing zlib-1.3-1-x86_64", "extra kmr-unit-2:1.2-3-x86_64"}));

  // A desc that pacman and the file disagree on is reported.
  const std::string desc = dir + "/root/var/lib/pacman/local/kmr-unit-2:1.2-3/desc";
  ASSERT_TRUE(fs::exists(desc));
  auto text = read_text_file(desc, 1 << 20);
  ASSERT_TRUE(text);
  std::ofstream(desc) << "%NAME%\nkmr-unit\n\n%VERSION%\n2:1.2-3\n\n%ARCH%\nx86_64\n\n%NAME%\nevil\n\n";
  EXPECT_FALSE(compare_installed(dir + "/root", *same));
}

}  // namespace
}  // namespace kmr::arch

// The banner parser on real banners (Debian's, both forms in its 6.1 image;
// the fixture kernel's) and on hostile lines.
#include "rebuilder/kmod/banner.h"

#include <gtest/gtest.h>

#include <string>

namespace kmr::kmod {
namespace {

constexpr const char* kDebian =
    "Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, "
    "GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)";

TEST(BannerTest, Debian) {
  auto id = parse_banner(kDebian);
  ASSERT_TRUE(id) << id.error().to_string();
  EXPECT_EQ(id->release, "6.1.0-57-amd64");
  EXPECT_EQ(id->user, "debian-kernel");
  EXPECT_EQ(id->host, "lists.debian.org");
  EXPECT_EQ(id->compiler, "gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40");
  EXPECT_EQ(id->version, "1");
  EXPECT_EQ(id->flags, "SMP PREEMPT_DYNAMIC");
  EXPECT_EQ(id->timestamp, "Debian 6.1.192-3 (2026-11-26)");
  EXPECT_EQ(id->banner, kDebian);
}

TEST(BannerTest, FixtureAndVariants) {
  auto f = parse_banner("Linux version 6.18.0-kmrfix (kmr@kmrbuild) (gcc (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT_DYNAMIC "
                        "Thu Jan  1 00:00:00 UTC 2026");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->timestamp, "Thu Jan  1 00:00:00 UTC 2026");
  auto n = parse_banner("Linux version 6.9.1 (u@h) (clang version 18) #7 Mon May  1 00:00:00 UTC 2024");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->version, "7");
  EXPECT_EQ(n->flags, "");
  EXPECT_EQ(n->timestamp, "Mon May  1 00:00:00 UTC 2024");
  auto rt = parse_banner("Linux version 6.1 (a@b@c) (gcc) #1kmrbars SMP PREEMPT_RT ");
  ASSERT_TRUE(rt);
  EXPECT_EQ(rt->user, "a");
  EXPECT_EQ(rt->host, "b@c");
  EXPECT_EQ(rt->version, "1kmrbars");
  EXPECT_EQ(rt->flags, "SMP PREEMPT_RT");
  EXPECT_EQ(rt->timestamp, "");
}

TEST(BannerTest, FindsTheNumberedBannerInAnImage) {
  std::string img(1000, '\0');
  img += "Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org) (gcc-12) # SMP PREEMPT_DYNAMIC Debian x\n";
  img += std::string(50, '\0') + "Linux version broken\n" + kDebian + std::string("\n") + std::string(10, 'x');
  auto id = find_build_identity(as_bytes(img));
  ASSERT_TRUE(id);
  EXPECT_EQ(id->version, "1");
  EXPECT_EQ(id->compiler.substr(0, 6), "gcc-12");
  // Only the unnumbered one: still found.
  auto u = find_build_identity(as_bytes("..Linux version 6.1 (u@h) (cc) # SMP t\0.."));
  ASSERT_TRUE(u);
  EXPECT_EQ(u->version, "");
  EXPECT_FALSE(find_build_identity(as_bytes(std::string(5000, 'L'))));
  EXPECT_FALSE(find_build_identity(Bytes()));
}

TEST(BannerTest, HostileLines) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "kernel banner: does not start with 'Linux version '"},
      {"Linux version ", "kernel banner: no release"},
      {"Linux version 6.1", "kernel banner: no release"},
      {"Linux version 6.1 ", "kernel banner: no (user@host)"},
      {"Linux version 6.1 (u@h", "kernel banner: no (user@host)"},
      {"Linux version 6.1 (uh) (cc) #1", "kernel banner: no user@host"},
      {"Linux version 6.1 (@h) (cc) #1", "kernel banner: no user@host"},
      {"Linux version 6.1 (u@) (cc) #1", "kernel banner: no user@host"},
      {"Linux version 6.1 (u@h)", "kernel banner: no compiler"},
      {"Linux version 6.1 (u@h) (cc", "kernel banner: no (compiler)"},
      {"Linux version 6.1 (u@h) () #1", "kernel banner: no (compiler)"},
      {"Linux version 6.1 (u@h) ((((cc) #1", "kernel banner: no (compiler)"},
      {"Linux version 6.1 (u@h) (cc)", "kernel banner: no #version after the compiler"},
      {"Linux version 6.1 (u@h) (cc) 1 SMP", "kernel banner: no #version after the compiler"},
      {"Linux version 6.1 (u@h) (cc) #1(x) SMP", "kernel banner: malformed build version"},
      {"Linux version 6.1 (u@h) (cc) #1 SMP\x01", "kernel banner: control character"},
      {std::string("Linux version 6.1 (u@h) (cc) #1\0 SMP", 36), "kernel banner: control character"},
      {"Linux version 6.1 (u@h) (cc) #1 " + std::string(2000, 'x'), "kernel banner: longer than 1024 bytes"},
  };
  for (const auto& [line, want] : cases) {
    auto r = parse_banner(line);
    ASSERT_FALSE(r) << line;
    EXPECT_EQ(r.error().message(), want) << line;
  }
  // Deep nesting stays linear and bounded.
  std::string deep = "Linux version 6.1 (u@h) (" + std::string(900, '(') + "cc" + std::string(900, ')') + ") #1 t";
  EXPECT_FALSE(parse_banner(deep));  // longer than the limit
  std::string nested = "Linux version 6.1 (u@h) (" + std::string(400, '(') + "cc" + std::string(400, ')') + ") #1 t";
  auto ok = parse_banner(nested);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->compiler.size(), 802u);
}

}  // namespace
}  // namespace kmr::kmod

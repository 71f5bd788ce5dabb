// The distros' layouts together, as kmr inspect sees them: asked in name
// order; a path two distros ship (Arch's and SUSE's image in the modules
// directory, Debian's and SUSE's boot/vmlinuz-<release>) is classified
// alike by both; paths no layout claims are ignored by the collector.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "rebuilder/distro/kernel_layout.h"
#include "rebuilder/distro/package_layout.h"
#include "rebuilder/distro/test_layouts.h"

namespace kmr::distros {
namespace {

using distro::testing::claim;
using distro::testing::feed;

TEST(Layouts, EveryDistroInNameOrder) {
  std::vector<std::string> names;
  for (const auto* l : distro::registered_layouts()) names.emplace_back(l->name());
  EXPECT_EQ(names, (std::vector<std::string>{"arch", "debian", "nixos", "suse"}));
}

TEST(Layouts, SharedPathsClassifiedAlike) {
  EXPECT_EQ(claim("usr/lib/modules/6.11.8-1-default/vmlinuz"), "arch: image 6.11.8-1-default");
  EXPECT_EQ(claim("boot/vmlinuz-5.14.21-150500.55.83-default"), "debian: image 5.14.21-150500.55.83-default");
  for (const char* p : {"usr/lib/modules/6.11.8-1-default/vmlinuz", "lib/modules/6.6.0-1.fc39.x86_64/vmlinuz",
                        "boot/vmlinuz-5.14.21-150500.55.83-default", "boot/vmlinuz-6.1.0-56-amd64"}) {
    std::vector<std::string> claims;
    for (const auto* l : distro::registered_layouts()) {
      if (auto m = l->classify(p)) {
        claims.push_back(std::to_string(static_cast<int>(m->role)) + " " + m->release.value_or("-"));
      }
    }
    ASSERT_EQ(claims.size(), 2u) << p;
    EXPECT_EQ(claims[0], claims[1]) << p;
  }
}

TEST(Layouts, UnclaimedPaths) {
  for (const char* p : {"", "usr/bin/kmod", "etc/modprobe.d/blacklist.conf", "boot/System.map-6.1.0-56-amd64",
                        "boot/config-6.1.0-56-amd64", "lib/modules/6.1.0-56-amd64/modules.order",
                        "lib/modules/6.1.0-56-amd64/kernel/fs/ext4/ext4.ko",
                        "usr/lib/modules/6.12.4-arch1-1/build/Makefile", "usr/lib/debug/boot/vmlinux-6.1.0-56-amd64",
                        "usr/share/doc/linux-image-6.1.0-56-amd64/copyright", "System.map", "PKGINFO"}) {
    EXPECT_EQ(claim(p), "") << p;
  }
}

TEST(Layouts, CollectorIgnoresUnclaimedPaths) {
  distro::LayoutCollector c;
  for (const char* p : {"usr/bin/kmod", "boot/System.map-6.1.0-56-amd64", "etc/modprobe.d/blacklist.conf",
                        "usr/lib/modules/6.12.4-arch1-1/build/Makefile", "usr/lib/debug/boot/vmlinux-6.1.0-56-amd64",
                        "lib/modules/6.1.0-56-amd64/modules.builtin"}) {
    ASSERT_TRUE(feed(c, p, "content")) << p;
  }
  EXPECT_EQ(c.kernel_members(), 0u);
  EXPECT_TRUE(c.metadata().empty());
  auto L = c.finish();
  ASSERT_TRUE(L) << L.error().to_string();
  EXPECT_FALSE(L->image);
  EXPECT_FALSE(L->vmlinux);
  EXPECT_EQ(L->vmlinux_path, "");
  EXPECT_TRUE(L->modules.empty());
  EXPECT_EQ(L->kernel_release, "");
}

TEST(Layouts, CollectorReadsWhatTheLayoutsClaim) {
  distro::LayoutCollector c;
  ASSERT_TRUE(feed(c, ".PKGINFO", "pkgname = linux\n"));
  ASSERT_TRUE(feed(c, "usr/share/doc/proxmox-kernel-6.8.12-4-pve-signed/SOURCE", "git clone ...\n"));
  ASSERT_TRUE(feed(c, "boot/vmlinuz-6.8.12-4-pve", "not a kernel image"));
  ASSERT_TRUE(feed(c, "usr/lib/modules/6.8.12-4-pve/vmlinuz", "a second image"));
  EXPECT_EQ(c.metadata().at(".PKGINFO"), "pkgname = linux\n");
  EXPECT_EQ(c.metadata().at("SOURCE"), "git clone ...\n");
  EXPECT_EQ(c.kernel_members(), 1u);
  auto L = c.finish();
  ASSERT_TRUE(L) << L.error().to_string();
  ASSERT_TRUE(L->image);
  EXPECT_EQ(L->image->path, "boot/vmlinuz-6.8.12-4-pve");
  EXPECT_EQ(L->kernel_release, "6.8.12-4-pve");
  ASSERT_FALSE(L->warnings.empty());
  EXPECT_EQ(L->warnings[0], "test.pkg: second image 'usr/lib/modules/6.8.12-4-pve/vmlinuz' ignored");
}

// The first vmlinux is the one analysed, and its path is the one reported: a
// second one is ignored whole, path and bytes.
TEST(Layouts, CollectorKeepsTheFirstVmlinux) {
  distro::LayoutCollector c;
  ASSERT_TRUE(feed(c, "usr/lib/modules/6.12.4-arch1-1/build/vmlinux", "first vmlinux"));
  ASSERT_TRUE(feed(c, "vmlinux", "second vmlinux"));
  EXPECT_EQ(c.kernel_members(), 1u);
  auto L = c.finish();
  ASSERT_TRUE(L) << L.error().to_string();
  EXPECT_EQ(L->vmlinux_path, "usr/lib/modules/6.12.4-arch1-1/build/vmlinux");
  ASSERT_FALSE(L->warnings.empty());
  EXPECT_EQ(L->warnings[0], "test.pkg: second vmlinux 'vmlinux' ignored");
}

}  // namespace
}  // namespace kmr::distros

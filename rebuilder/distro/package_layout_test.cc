// The layout registry with two stand-in layouts (no distro's is linked):
// name order whatever the registration order, the first claim wins, paths
// nobody claims stay unclaimed; the modules-directory split.
#include "rebuilder/distro/package_layout.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kmr::distro {
namespace {

// Registered first, asked second: "zeta" sorts after "alpha".
class ZetaLayout final : public PackageLayout {
 public:
  std::string_view name() const override { return "zeta"; }
  std::optional<LayoutMember> classify(std::string_view path) const override {
    if (path == "shared" || path == "zeta-only") return LayoutMember::vmlinux();
    return std::nullopt;
  }
};
KMR_REGISTER_LAYOUT(zeta, ZetaLayout);

class AlphaLayout final : public PackageLayout {
 public:
  std::string_view name() const override { return "alpha"; }
  std::optional<LayoutMember> classify(std::string_view path) const override {
    if (path == "shared") return LayoutMember::image("1.0");
    return std::nullopt;
  }
};
KMR_REGISTER_LAYOUT(alpha, AlphaLayout);

std::vector<std::string> names() {
  std::vector<std::string> out;
  for (const PackageLayout* l : registered_layouts()) out.emplace_back(l->name());
  return out;
}

TEST(PackageLayout, AskedInNameOrder) { EXPECT_EQ(names(), (std::vector<std::string>{"alpha", "zeta"})); }

TEST(PackageLayout, FirstClaimWins) {
  auto c = classify_member("shared");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->layout->name(), "alpha");
  EXPECT_EQ(c->member.role, MemberRole::kImage);
  EXPECT_EQ(c->member.release, "1.0");

  c = classify_member("zeta-only");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->layout->name(), "zeta");
  EXPECT_EQ(c->member.role, MemberRole::kVmlinux);
  EXPECT_FALSE(c->member.release);
}

TEST(PackageLayout, UnclaimedPathIsNobodys) {
  for (const char* p : {"", "other", "shared/x", "Shared", "lib/modules/6.1.0/kernel/a.ko"}) {
    EXPECT_FALSE(classify_member(p)) << p;
  }
}

TEST(PackageLayout, SplitsModulesPaths) {
  auto m = split_modules_path("usr/lib/modules/6.12.4-arch1-1/kernel/fs/btrfs/btrfs.ko.zst");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->dir, "usr/lib/modules/6.12.4-arch1-1");
  EXPECT_EQ(m->release, "6.12.4-arch1-1");
  EXPECT_EQ(m->rest, "kernel/fs/btrfs/btrfs.ko.zst");

  m = split_modules_path("lib/modules/6.1.0-56-amd64");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->dir, "lib/modules/6.1.0-56-amd64");
  EXPECT_EQ(m->release, "6.1.0-56-amd64");
  EXPECT_EQ(m->rest, "");

  for (const char* p : {"lib/modules/", "usr/lib/modules//x", "usr/lib/modules", "boot/vmlinuz-6.1.0-56-amd64",
                        "usr/src/lib/modules/6.1/x", "nix/lib/modules/6.1/x"}) {
    EXPECT_FALSE(split_modules_path(p)) << p;
  }
}

TEST(PackageLayout, AfterPrefix) {
  EXPECT_EQ(after_prefix("boot/vmlinuz-6.1.0-56-amd64", "boot/vmlinuz-"), "6.1.0-56-amd64");
  EXPECT_EQ(after_prefix("boot/vmlinuz-", "boot/vmlinuz-"), "");
  EXPECT_FALSE(after_prefix("usr/lib/debug/boot/vmlinuz-6.1", "boot/vmlinuz-"));
}

}  // namespace
}  // namespace kmr::distro

// A program that links no distro's layout: the collector refuses to read
// packages (it would otherwise find no image and no metadata in any).
#include <gtest/gtest.h>

#include "rebuilder/distro/kernel_layout.h"
#include "rebuilder/distro/package_layout.h"
#include "rebuilder/distro/test_layouts.h"

namespace kmr::distro {
namespace {

constexpr std::string_view kWant = "no package layout is registered (link //rebuilder/distros:layouts)";

TEST(KernelLayoutUnregistered, VisitFails) {
  ASSERT_TRUE(registered_layouts().empty());
  LayoutCollector c;
  auto r = testing::feed(c, "boot/vmlinuz-6.1.0-56-amd64", "not an image");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "test.pkg: boot/vmlinuz-6.1.0-56-amd64: " + std::string(kWant));
}

TEST(KernelLayoutUnregistered, FinishFails) {
  LayoutCollector c;
  auto r = c.finish();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "inspect: " + std::string(kWant));
}

}  // namespace
}  // namespace kmr::distro

// The backend registry as the binaries see it: every distro's backend joins it
// by linking //rebuilder/distros:backends, under the names kmr rebuild's
// --backend accepts and detect_backend gives.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "rebuilder/rebuild/backend.h"
#include "rebuilder/rebuild/rebuild.h"

namespace kmr::build {
namespace {

TEST(Backends, EveryDistroIsRegisteredUnderItsNames) {
  EXPECT_EQ(registered_backends(), (std::vector<std::string>{"arch", "debian", "nix", "nixos", "proxmox", "suse"}));
  for (const auto& [asked, named] : std::vector<std::pair<std::string, std::string>>{
           {"arch", "arch"}, {"debian", "debian"}, {"proxmox", "proxmox"}, {"suse", "suse"}, {"nixos", "nixos"}, {"nix", "nixos"}}) {
    auto b = make_backend(asked);
    ASSERT_NE(b, nullptr) << asked;
    EXPECT_EQ(b->name(), named) << asked;
  }
}

TEST(Backends, UnknownNameHasNone) {
  EXPECT_EQ(make_backend("fedora"), nullptr);
  EXPECT_EQ(make_backend(""), nullptr);
  EXPECT_EQ(make_backend("Arch"), nullptr);
}

// The package types kmr rebuild detects all name a registered backend.
TEST(Backends, DetectedTypesAreRegistered) {
  for (const char* f : {"linux-6.1-1-x86_64.pkg.tar.zst", "kernel-default-6.1.rpm", "linux-image-6.1_amd64.deb", "pve-kernel-6.1_amd64.deb",
                        "abc.narinfo"}) {
    const std::string name = detect_backend(f);
    ASSERT_FALSE(name.empty()) << f;
    EXPECT_NE(make_backend(name), nullptr) << f << " -> " << name;
  }
}

}  // namespace
}  // namespace kmr::build

// Nix's package layout: the kernel derivation's `out` output holds the image
// at its top (bzImage on x86, Image on arm64, zImage on 32-bit arm, vmlinuz
// on some others) and its `dev` output the ELF vmlinux; the modules sit in an
// output's lib/modules/<release>/. Paths are relative to the output.

#include "rebuilder/distro/package_layout.h"

namespace kmr::nixos {
namespace {

using distro::LayoutMember;

class NixLayout final : public distro::PackageLayout {
 public:
  std::string_view name() const override { return "nixos"; }
  std::optional<LayoutMember> classify(std::string_view path) const override {
    if (path == "bzImage" || path == "Image" || path == "zImage" || path == "vmlinuz") return LayoutMember::image();
    if (path == "vmlinux") return LayoutMember::vmlinux();
    return std::nullopt;
  }
};

KMR_REGISTER_LAYOUT(nixos, NixLayout);

}  // namespace
}  // namespace kmr::nixos

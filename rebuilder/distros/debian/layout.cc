// Debian's package layout (Proxmox's too): linux-image-<release> ships the
// image as boot/vmlinuz-<release>; Proxmox's kernel packages record their
// source commit in usr/share/doc/<package>/SOURCE.

#include "rebuilder/distro/package_layout.h"

namespace kmr::debian {
namespace {

using distro::LayoutMember;

class DebianLayout final : public distro::PackageLayout {
 public:
  std::string_view name() const override { return "debian"; }
  std::optional<LayoutMember> classify(std::string_view path) const override {
    if (auto release = distro::after_prefix(path, "boot/vmlinuz-")) return LayoutMember::image(std::move(*release));
    if (path.starts_with("usr/share/doc/") && path.ends_with("/SOURCE")) return LayoutMember::metadata();
    return std::nullopt;
  }
};

KMR_REGISTER_LAYOUT(debian, DebianLayout);

}  // namespace
}  // namespace kmr::debian

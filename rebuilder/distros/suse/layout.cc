// SUSE's package layout: kernel-default ships the image and the compressed
// ELF vmlinux in the modules directory (usr/lib/modules/<release>/vmlinuz,
// vmlinux.xz; vmlinux.gz or plain vmlinux in older flavours); SLE before the
// usr merge ships boot/vmlinuz-<release> and boot/vmlinux-<release>.xz.

#include "rebuilder/distro/package_layout.h"

namespace kmr::suse {
namespace {

using distro::LayoutMember;

class SuseLayout final : public distro::PackageLayout {
 public:
  std::string_view name() const override { return "suse"; }
  std::optional<LayoutMember> classify(std::string_view path) const override {
    if (auto release = distro::after_prefix(path, "boot/vmlinuz-")) return LayoutMember::image(std::move(*release));
    if (path.starts_with("boot/vmlinux-")) return LayoutMember::vmlinux();
    auto m = distro::split_modules_path(path);
    if (!m) return std::nullopt;
    if (m->rest == "vmlinuz") return LayoutMember::image(m->release);
    if (m->rest == "vmlinux.xz" || m->rest == "vmlinux.gz" || m->rest == "vmlinux") return LayoutMember::vmlinux();
    return std::nullopt;
  }
};

KMR_REGISTER_LAYOUT(suse, SuseLayout);

}  // namespace
}  // namespace kmr::suse

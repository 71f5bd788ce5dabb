// Arch's package layout: `linux` ships the image in the modules directory
// (usr/lib/modules/<release>/vmlinuz), `linux-headers` the ELF vmlinux in
// its build tree; every package carries pacman's .PKGINFO, .BUILDINFO and
// .MTREE at the top.

#include "rebuilder/distro/package_layout.h"

namespace kmr::arch {
namespace {

using distro::LayoutMember;

class ArchLayout final : public distro::PackageLayout {
 public:
  std::string_view name() const override { return "arch"; }
  std::optional<LayoutMember> classify(std::string_view path) const override {
    if (path == ".PKGINFO" || path == ".BUILDINFO" || path == ".MTREE") return LayoutMember::metadata();
    auto m = distro::split_modules_path(path);
    if (!m) return std::nullopt;
    if (m->rest == "vmlinuz") return LayoutMember::image(m->release);
    if (m->rest == "build/vmlinux") return LayoutMember::vmlinux();
    return std::nullopt;
  }
};

KMR_REGISTER_LAYOUT(arch, ArchLayout);

}  // namespace
}  // namespace kmr::arch

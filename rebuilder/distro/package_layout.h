#pragma once

// Where a distro's packages keep the kernel: each distro folder
// (rebuilder/distros/<name>/layout.cc) registers one PackageLayout that
// names the members of its packages the collector reads besides the modules
// (kernel_layout.h): the image, the ELF vmlinux, package metadata. The
// modules directory (lib/modules/<release>/: modules, modules.order, the
// build/ and source/ links) is the kernel's own layout, not a distro's, and
// stays in kernel_layout.cc.
//
// A package is inspected without knowing its distro, so the collector asks
// every registered layout, in name order; the first that claims a path
// wins (two layouts claiming one path must classify it alike). Layouts
// register at static-initialisation time, as backends do
// (rebuilder/rebuild/backend.h); their libraries are alwayslink, gathered
// by //rebuilder/distros:layouts, which every program reading packages
// links. Without any registered layout the collector fails.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kmr::distro {

enum class MemberRole {
  kImage,     // the bootable kernel (bzImage, Image, vmlinuz)
  kVmlinux,   // the ELF vmlinux, plain or compressed
  kMetadata,  // package metadata, kept by file name (LayoutCollector::metadata)
};

struct LayoutMember {
  MemberRole role = MemberRole::kMetadata;
  // kImage: the kernel release the path names; nullopt when it names none.
  std::optional<std::string> release;

  static LayoutMember image(std::optional<std::string> release = std::nullopt) {
    return {MemberRole::kImage, std::move(release)};
  }
  static LayoutMember vmlinux() { return {MemberRole::kVmlinux, std::nullopt}; }
  static LayoutMember metadata() { return {MemberRole::kMetadata, std::nullopt}; }
};

class PackageLayout {
 public:
  virtual ~PackageLayout() = default;
  // The distro, e.g. "debian"; names are unique and fix the order.
  virtual std::string_view name() const = 0;
  // What `path` (a normalised member path, relative to the package or Nix
  // output root) is in this distro's packages; nullopt when not one of its.
  virtual std::optional<LayoutMember> classify(std::string_view path) const = 0;
};

struct PackageLayoutRegistrar {
  explicit PackageLayoutRegistrar(const PackageLayout& layout);
};

// Every registered layout, in name order: the order they are asked in.
const std::vector<const PackageLayout*>& registered_layouts();

struct ClassifiedMember {
  const PackageLayout* layout = nullptr;  // the layout that claimed it
  LayoutMember member;
};
// The first registered layout's claim on `path`; nullopt when none claims it.
std::optional<ClassifiedMember> classify_member(std::string_view path);

#define KMR_REGISTER_LAYOUT(ident, type)                 \
  static const type kmr_layout_##ident{};                \
  static const ::kmr::distro::PackageLayoutRegistrar kmr_layout_registrar_##ident { kmr_layout_##ident }

// ---- helpers shared by the layouts ----

// A path below the modules directory `make modules_install` writes:
// lib/modules/<release>/<rest> or usr/lib/modules/<release>/<rest>.
struct ModulesPath {
  std::string dir;      // ".../lib/modules/<release>"
  std::string release;  // <release>, never empty
  std::string rest;     // the path below it, "" for the directory itself
};
std::optional<ModulesPath> split_modules_path(std::string_view path);

// The rest of `path` after `prefix`; nullopt when it does not start with it.
std::optional<std::string> after_prefix(std::string_view path, std::string_view prefix);

}  // namespace kmr::distro

#include "rebuilder/distro/package_layout.h"

#include <algorithm>

namespace kmr::distro {

namespace {
std::vector<const PackageLayout*>& registry() {
  static std::vector<const PackageLayout*> layouts;
  return layouts;
}
}  // namespace

PackageLayoutRegistrar::PackageLayoutRegistrar(const PackageLayout& layout) {
  auto& r = registry();
  r.push_back(&layout);
  std::sort(r.begin(), r.end(), [](const PackageLayout* a, const PackageLayout* b) { return a->name() < b->name(); });
}

const std::vector<const PackageLayout*>& registered_layouts() { return registry(); }

std::optional<ClassifiedMember> classify_member(std::string_view path) {
  for (const PackageLayout* layout : registry()) {
    if (auto m = layout->classify(path)) return ClassifiedMember{layout, std::move(*m)};
  }
  return std::nullopt;
}

std::optional<ModulesPath> split_modules_path(std::string_view p) {
  std::size_t at = std::string_view::npos;
  if (p.rfind("lib/modules/", 0) == 0) at = 0;
  else if (p.rfind("usr/lib/modules/", 0) == 0) at = 4;
  if (at == std::string_view::npos) return std::nullopt;
  const std::size_t rel_start = at + 12;
  const std::size_t slash = p.find('/', rel_start);
  ModulesPath m;
  m.release = std::string(p.substr(rel_start, slash == std::string_view::npos ? std::string_view::npos : slash - rel_start));
  m.dir = std::string(p.substr(0, slash));
  m.rest = slash == std::string_view::npos ? "" : std::string(p.substr(slash + 1));
  if (m.release.empty()) return std::nullopt;
  return m;
}

std::optional<std::string> after_prefix(std::string_view path, std::string_view prefix) {
  if (path.rfind(prefix, 0) != 0) return std::nullopt;
  return std::string(path.substr(prefix.size()));
}

}  // namespace kmr::distro

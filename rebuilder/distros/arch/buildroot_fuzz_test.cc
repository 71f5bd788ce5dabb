// Fuzzes what a build root reads from the mirror's packages: pacman's desc
// entries (written from each package's .PKGINFO) and the .BUILDINFO's
// installed list. Every accepted entry holds only pacman's characters (each
// becomes a file name, a URL path segment and an argument of pacman).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "rebuilder/distros/arch/buildroot.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto d = kmr::arch::parse_desc(text)) {
    if (d->name.find('\n') != std::string::npos || d->fields.size() > 64) __builtin_trap();
  }
  kmr::Limits limits;
  limits.max_line_len = 4096;
  auto env = kmr::build::parse_arch_buildinfo(text, limits);
  if (!env) return 0;
  auto pinned = kmr::arch::pinned_packages(env->installed);
  if (!pinned) return 0;
  for (const auto& p : *pinned) {
    const std::string e = p.name + "-" + p.version + "-" + p.arch;
    for (char c : e) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      std::string_view("@._+~:-").find(c) != std::string_view::npos;
      if (!ok) __builtin_trap();
    }
    if (p.name.front() == '-' || p.name.front() == '.') __builtin_trap();
  }
  (void)kmr::arch::root_key(*pinned, "keyring");
  return 0;
}

// Fuzzes the pinned set taken from a .buildinfo: every input either yields
// packages whose name, version and architecture hold only Debian's
// characters (each becomes one apt argument), or an error.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "rebuilder/distros/debian/buildroot.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  kmr::Limits limits;
  limits.max_line_len = 4096;
  auto env = kmr::build::parse_debian_buildinfo(text, "debian", limits);
  if (!env) return 0;
  auto pinned = kmr::debian::pinned_packages(*env);
  if (!pinned) return 0;
  for (const auto& p : *pinned) {
    for (char c : p.spec()) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      std::string_view(".+~:-=").find(c) != std::string_view::npos;
      if (!ok) __builtin_trap();
    }
    if (p.spec().front() == '-') __builtin_trap();
  }
  (void)kmr::debian::root_key(*pinned, {"deb http://x y main"}, "bookworm", "amd64");
  return 0;
}

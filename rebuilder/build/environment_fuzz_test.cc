// Fuzzes the build-description parsers: every input either parses (and then
// dumps to canonical JSON without throwing) or returns an error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "rebuilder/build/environment.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  kmr::Limits limits;
  limits.max_line_len = 4096;
  for (auto r : {kmr::build::parse_arch_buildinfo(text, limits), kmr::build::parse_debian_buildinfo(text, "debian", limits),
                 kmr::build::parse_nix_narinfo(text, limits)}) {
    if (r) (void)r->digest();
  }
  (void)kmr::build::parse_disturl(text);
  return 0;
}

// Cache bytes kmr parses before trusting them: a .drv (ATerm), a narinfo
// checked for a store path against a key, a NAR URL, a single-file NAR.
// The first byte picks the parser.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "rebuilder/distros/nixos/derivation.h"
#include "rebuilder/distros/nixos/substituter.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0: {
      auto d = kmr::nixos::parse_derivation(text, "fuzz.drv");
      if (d) {
        for (const auto& p : d->output_paths()) {
          if (!kmr::nixos::is_store_path(p)) __builtin_trap();
        }
        for (const auto& s : d->input_srcs) {
          if (!kmr::nixos::is_store_path(s)) __builtin_trap();
        }
      }
      break;
    }
    case 1: {
      static const auto keys =
          kmr::nixos::parse_trusted_keys("cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=");
      (void)kmr::nixos::check_narinfo(text, "/nix/store/00000000000000000000000000000000-a", "fuzz.narinfo", *keys);
      break;
    }
    case 2: {
      auto u = kmr::nixos::nar_url("https://c", std::string(text));
      if (u) {
        // Every accepted URL stays under the cache: no "." or ".." segment
        // (a file name such as "x...xz" is fine), no query, no fragment.
        if (u->rfind("https://c/", 0) != 0) __builtin_trap();
        std::string_view rest(*u);
        rest.remove_prefix(10);
        while (true) {
          const auto slash = rest.find('/');
          const auto seg = rest.substr(0, slash);
          if (seg.empty() || seg == "." || seg == ".." || seg.find_first_of("?#%") != std::string_view::npos) __builtin_trap();
          if (slash == std::string_view::npos) break;
          rest.remove_prefix(slash + 1);
        }
      }
      break;
    }
    case 3:
      (void)kmr::nixos::nar_single_file(
          kmr::Bytes(data + 1, size - 1), "fuzz.nar", 1 << 20);
      break;
    default:
      (void)kmr::nixos::parse_trusted_keys(text);
      break;
  }
  return 0;
}

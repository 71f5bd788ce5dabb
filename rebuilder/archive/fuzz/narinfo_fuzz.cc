// Fuzz target: narinfo / nix-cache-info parsing, fingerprints and Sig checks.
#include <cstddef>
#include <cstdint>

#include "rebuilder/archive/narinfo.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kmr;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto info = archive::parse_narinfo(text, "fuzz.narinfo");
  if (info) {
    (void)info->fingerprint();
    static const auto key = archive::parse_public_key("test-1:NSZF0l2pLFizmZVvmRcaT8rHCFBVhQL8YhodaetZosE=");
    if (key) (void)archive::verify_narinfo_sigs(*info, {*key});
  }
  (void)archive::parse_nix_cache_info(text, "nix-cache-info");
  (void)archive::parse_public_key(text);
  return 0;
}

// Fuzz target: narinfo / nix-cache-info parsing, fingerprints, Sig checks and
// the checked loading of the NAR behind a narinfo.
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
  // The input as a cache file behind a fixed narinfo: size/hash checks and
  // decompression capped at NarSize never crash or inflate beyond it.
  archive::NarInfo fixed;
  fixed.store_path = "/nix/store/00000000000000000000000000000000-x";
  fixed.nar_hash = "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73";
  fixed.nar_size = 4096;
  if (auto nar = archive::load_verified_nar(Bytes(data, size), fixed, "fuzz.nar"); nar && nar->size() != 4096) {
    __builtin_trap();
  }
  (void)archive::parse_nix_cache_info(text, "nix-cache-info");
  (void)archive::parse_public_key(text);
  return 0;
}

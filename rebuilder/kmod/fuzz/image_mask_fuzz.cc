// libFuzzer target: the masked ranges of any kernel image (ELF, bzImage,
// compressed ELF, PE) and their comparison.
#include <cstddef>
#include <cstdint>

#include "rebuilder/kmod/image_mask.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  kmr::kmod::ImageMaskLimits limits;
  limits.max_decompressed = 16 << 20;
  auto m = kmr::kmod::mask_image(kmr::Bytes(data, size), "fuzz", limits);
  if (!m) return 0;
  for (const auto& r : m->ranges) {
    if (r.length == 0) __builtin_trap();  // every named range has bytes
  }
  return kmr::kmod::compare_masks(*m, *m).empty() ? 0 : 1;
}

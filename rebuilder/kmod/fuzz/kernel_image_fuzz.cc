// libFuzzer target: root discovery in any kernel image (ELF, bzImage,
// compressed, zboot, raw search).
#include <cstddef>
#include <cstdint>

#include "rebuilder/kmod/kernel_image.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  kmr::kmod::ImageOptions o;
  o.max_decompressed = 16 << 20;
  kmr::kmod::MerkleRoot expected;
  expected.levels = 1;
  o.expected = expected;
  auto r = kmr::kmod::root_from_image(kmr::Bytes(data, size), "fuzz", o);
  return r && r->offset == 0xdeadbeef ? 1 : 0;
}

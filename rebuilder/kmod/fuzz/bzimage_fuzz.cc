// libFuzzer target: the bzImage setup header and payload extraction.
#include <cstddef>
#include <cstdint>

#include "rebuilder/kmod/bzimage.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const kmr::Bytes in(data, size);
  (void)kmr::kmod::is_bzimage(in);
  auto h = kmr::kmod::parse_bzimage_header(in, "fuzz");
  if (!h) return 0;
  auto p = kmr::kmod::extract_bzimage_payload(in, "fuzz", 16 << 20);
  return p && p->vmlinux.size() == 0xdeadbeef ? 1 : 0;
}

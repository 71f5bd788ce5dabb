// libFuzzer target: module trailer parsing and the kernel's proof check.
#include <cstddef>
#include <cstdint>

#include "rebuilder/kmod/module_tree.h"
#include "rebuilder/kmod/trailer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const kmr::Bytes in(data, size);
  auto t = kmr::kmod::parse_trailer(in, "fuzz");
  if (t && t->content_length > size) __builtin_trap();
  kmr::kmod::MerkleRoot root;
  root.levels = 1;
  auto r = kmr::kmod::verify_module_bytes(in, root, "fuzz");
  return r.reason.size() == 0xdeadbeef ? 1 : 0;
}

// libFuzzer target: the ELF reader on arbitrary bytes.
#include <cstddef>
#include <cstdint>

#include "rebuilder/kmod/elf.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto f = kmr::kmod::ElfFile::parse(kmr::Bytes(data, size), "fuzz");
  if (!f) return 0;
  std::size_t sum = 0;
  for (const auto& s : f->sections()) {
    const kmr::Bytes b = f->section_data(s);
    if (!b.empty()) sum += b[0] + b[b.size() - 1];
  }
  for (const char* name : {".symtab", ".dynsym"}) {
    auto syms = f->symbols(name);
    if (syms) sum += syms->size();
  }
  auto id = f->build_id();
  if (id && *id) sum += (*id)->size();
  (void)f->find_section(".module_hashes");
  return sum == 0xdeadbeef ? 1 : 0;
}

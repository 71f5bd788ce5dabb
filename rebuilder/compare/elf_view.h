#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"

namespace kmr::compare {

// A read-only view of an ELF file for comparison: headers, sections and
// textual renderings. Untrusted input: every table is bounds-checked;
// sections outside the file are kept (flagged) with a warning instead of
// failing, because a dumper should show as much as it can.
struct ElfSectionHeader {
  std::string name;
  std::uint32_t type = 0;
  std::uint64_t flags = 0;
  std::uint64_t addr = 0;
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
  std::uint32_t link = 0;
  std::uint32_t info = 0;
  std::uint64_t align = 0;
  std::uint64_t entsize = 0;
  bool in_file = false;  // NOBITS or range inside the file
};

struct ElfProgramHeader {
  std::uint32_t type = 0;
  std::uint32_t flags = 0;
  std::uint64_t offset = 0;
  std::uint64_t vaddr = 0;
  std::uint64_t paddr = 0;
  std::uint64_t filesz = 0;
  std::uint64_t memsz = 0;
  std::uint64_t align = 0;
};

struct ElfView {
  Bytes data;
  bool is64 = true;
  bool little = true;
  std::uint8_t osabi = 0;
  std::uint16_t type = 0;
  std::uint16_t machine = 0;
  std::uint64_t entry = 0;
  std::uint64_t phoff = 0;
  std::uint64_t shoff = 0;
  std::uint32_t flags = 0;
  std::uint16_t ehsize = 0;
  std::uint16_t phentsize = 0;
  std::uint16_t shentsize = 0;
  std::uint32_t shstrndx = 0;
  std::vector<ElfProgramHeader> phdrs;
  std::vector<ElfSectionHeader> sections;
  std::vector<std::string> warnings;

  // Section bytes; empty for NOBITS or out-of-range sections.
  Bytes section_bytes(std::size_t index) const;
};

inline constexpr std::uint32_t kShtNobits = 8;

// Fails only when the ELF header itself is unusable.
Result<ElfView> parse_elf(Bytes data);

std::string elf_file_header_text(const ElfView& e);
std::string elf_program_headers_text(const ElfView& e);
std::string elf_section_headers_text(const ElfView& e);
std::string elf_symbols_text(const ElfView& e);
std::string elf_notes_text(const ElfView& e);
std::string elf_build_id(const ElfView& e);  // hex, empty when absent
// NUL-separated strings, one per line (string tables, .modinfo).
std::string nul_strings_text(Bytes data);
// [offset, end) ranges of the file no header, table or section covers.
std::vector<std::pair<std::uint64_t, std::uint64_t>> elf_uncovered_ranges(const ElfView& e);

}  // namespace kmr::compare

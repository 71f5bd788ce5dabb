#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "rebuilder/base/bytes.h"
#include "rebuilder/kmod/elf.h"

namespace kmr::compare {

// Textual views of an ELF file parsed by //rebuilder/kmod:elf, for diffing.
std::string elf_file_header_text(const kmod::ElfFile& e);
std::string elf_program_headers_text(const kmod::ElfFile& e);
std::string elf_section_headers_text(const kmod::ElfFile& e);
std::string elf_symbols_text(const kmod::ElfFile& e);
std::string elf_notes_text(const kmod::ElfFile& e);
// NUL-separated strings, one per line (string tables, .modinfo).
std::string nul_strings_text(Bytes data);
// [offset, end) ranges of the file that no header, table or section covers.
std::vector<std::pair<std::uint64_t, std::uint64_t>> elf_uncovered_ranges(const kmod::ElfFile& e);

}  // namespace kmr::compare

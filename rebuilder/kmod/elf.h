#pragma once

// A general, bounds-checked ELF reader over bytes in memory (ELF32/ELF64,
// little and big endian): header, section headers with names, program
// headers, symbols (.symtab/.dynsym) and notes (NT_GNU_BUILD_ID).
// Everything is validated at parse time: tables and section data inside the
// file, no offset arithmetic overflow, entry sizes as the class requires,
// a valid e_shstrndx. The ElfFile keeps a view: the bytes must outlive it.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"

namespace kmr::kmod {

inline constexpr std::uint32_t kShtNull = 0;
inline constexpr std::uint32_t kShtSymtab = 2;
inline constexpr std::uint32_t kShtStrtab = 3;
inline constexpr std::uint32_t kShtNote = 7;
inline constexpr std::uint32_t kShtNobits = 8;
inline constexpr std::uint32_t kShtDynsym = 11;
inline constexpr std::uint32_t kPtLoad = 1;
inline constexpr std::uint32_t kPtNote = 4;
inline constexpr std::uint32_t kNtGnuBuildId = 3;

struct ElfHeader {
  bool is64 = false;
  bool little_endian = true;
  std::uint8_t osabi = 0;
  std::uint8_t abiversion = 0;
  std::uint16_t type = 0;
  std::uint16_t machine = 0;
  std::uint32_t version = 0;
  std::uint64_t entry = 0;
  std::uint64_t phoff = 0;
  std::uint64_t shoff = 0;
  std::uint32_t flags = 0;
  std::uint16_t ehsize = 0;
  std::uint16_t phentsize = 0;
  std::uint32_t phnum = 0;  // after PN_XNUM resolution
  std::uint16_t shentsize = 0;
  std::uint32_t shnum = 0;     // after extended numbering
  std::uint32_t shstrndx = 0;  // after SHN_XINDEX
};

struct ElfSection {
  std::uint32_t index = 0;
  std::string name;
  std::uint32_t name_offset = 0;
  std::uint32_t type = 0;
  std::uint64_t flags = 0;
  std::uint64_t addr = 0;
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
  std::uint32_t link = 0;
  std::uint32_t info = 0;
  std::uint64_t addralign = 0;
  std::uint64_t entsize = 0;
};

struct ElfSegment {
  std::uint32_t type = 0;
  std::uint32_t flags = 0;
  std::uint64_t offset = 0;
  std::uint64_t vaddr = 0;
  std::uint64_t paddr = 0;
  std::uint64_t filesz = 0;
  std::uint64_t memsz = 0;
  std::uint64_t align = 0;
};

struct ElfSymbol {
  std::string name;
  std::uint64_t value = 0;
  std::uint64_t size = 0;
  std::uint8_t bind = 0;   // STB_*
  std::uint8_t type = 0;   // STT_*
  std::uint8_t other = 0;
  std::uint16_t shndx = 0;
};

struct ElfNote {
  std::string name;  // without the trailing NUL
  std::uint32_t type = 0;
  Bytes desc;
};

struct ElfLimits {
  std::uint32_t max_sections = 1 << 20;
  std::uint32_t max_segments = 1 << 16;
  std::uint64_t max_symbols = 16 << 20;
  std::uint32_t max_name_len = 4096;
};

bool is_elf(Bytes data);

class ElfFile {
 public:
  static Result<ElfFile> parse(Bytes data, std::string what = "ELF", const ElfLimits& limits = {});

  const ElfHeader& header() const { return header_; }
  bool is64() const { return header_.is64; }
  bool little_endian() const { return header_.little_endian; }
  Bytes data() const { return data_; }
  const std::string& what() const { return what_; }

  const std::vector<ElfSection>& sections() const { return sections_; }
  const std::vector<ElfSegment>& segments() const { return segments_; }
  // First section with this name, or nullptr.
  const ElfSection* find_section(std::string_view name) const;
  // The section's bytes in the file (empty for SHT_NOBITS).
  Bytes section_data(const ElfSection& s) const;

  // Symbols of a symbol table section (".symtab" or ".dynsym"); an empty
  // list when the section does not exist.
  Result<std::vector<ElfSymbol>> symbols(std::string_view section_name = ".symtab") const;
  // Notes from every SHT_NOTE section, or from PT_NOTE segments when the
  // file has no section headers.
  Result<std::vector<ElfNote>> notes() const;
  // The NT_GNU_BUILD_ID descriptor, if any.
  Result<std::optional<ByteVector>> build_id() const;

 private:
  ElfFile() = default;
  Result<void> parse_sections();
  Result<void> parse_segments();
  Error err(std::string msg) const { return malformed(what_ + ": " + std::move(msg)); }
  Result<std::string> string_at(const ElfSection& strtab, std::uint64_t offset, std::string_view ctx) const;
  Result<void> parse_notes(Bytes region, std::uint64_t align, std::vector<ElfNote>& out) const;

  Bytes data_;
  std::string what_;
  ElfLimits limits_;
  ElfHeader header_;
  std::vector<ElfSection> sections_;
  std::vector<ElfSegment> segments_;
};

}  // namespace kmr::kmod

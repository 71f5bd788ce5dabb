#include "rebuilder/compare/elf_view.h"

#include <algorithm>
#include <cstdio>

#include "rebuilder/base/hex.h"

namespace kmr::compare {

namespace {

std::string fmt(const char* f, unsigned long long a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, a);
  return buf;
}

const char* section_type_name(std::uint32_t t) {
  switch (t) {
    case 0: return "NULL";
    case 1: return "PROGBITS";
    case 2: return "SYMTAB";
    case 3: return "STRTAB";
    case 4: return "RELA";
    case 5: return "HASH";
    case 6: return "DYNAMIC";
    case 7: return "NOTE";
    case 8: return "NOBITS";
    case 9: return "REL";
    case 11: return "DYNSYM";
    case 14: return "INIT_ARRAY";
    case 15: return "FINI_ARRAY";
    case 17: return "GROUP";
    case 0x6ffffff6: return "GNU_HASH";
    case 0x6ffffffd: return "VERDEF";
    case 0x6ffffffe: return "VERNEED";
    case 0x6fffffff: return "VERSYM";
    default: return nullptr;
  }
}

std::string flags_text(std::uint64_t f) {
  std::string s;
  if (f & 0x1) s += 'W';
  if (f & 0x2) s += 'A';
  if (f & 0x4) s += 'X';
  if (f & 0x10) s += 'M';
  if (f & 0x20) s += 'S';
  if (f & 0x40) s += 'I';
  if (f & 0x200) s += 'G';
  if (f & 0x400) s += 'T';
  return s.empty() ? "-" : s;
}

}  // namespace

std::string elf_file_header_text(const kmod::ElfFile& f) {
  const auto& e = f.header();
  std::string s;
  s += std::string("Class: ") + (e.is64 ? "ELF64" : "ELF32") + "\n";
  s += std::string("Data: ") + (e.little_endian ? "little endian" : "big endian") + "\n";
  s += "OS/ABI: " + std::to_string(e.osabi) + "\n";
  s += "Type: " + std::to_string(e.type) + (e.type == 1 ? " (REL)" : e.type == 2 ? " (EXEC)" : e.type == 3 ? " (DYN)" : "") + "\n";
  s += "Machine: " + std::to_string(e.machine) + "\n";
  s += fmt("Entry point: 0x%llx\n", e.entry);
  s += "Program headers offset: " + std::to_string(e.phoff) + "\n";
  s += "Section headers offset: " + std::to_string(e.shoff) + "\n";
  s += fmt("Flags: 0x%llx\n", e.flags);
  s += "Number of program headers: " + std::to_string(e.phnum) + "\n";
  s += "Number of section headers: " + std::to_string(e.shnum) + "\n";
  s += "Section header string table index: " + std::to_string(e.shstrndx) + "\n";
  return s;
}

std::string elf_program_headers_text(const kmod::ElfFile& e) {
  std::string s;
  char buf[256];
  for (const auto& p : e.segments()) {
    std::snprintf(buf, sizeof buf, "type 0x%08x flags %c%c%c offset 0x%llx vaddr 0x%llx paddr 0x%llx filesz 0x%llx memsz 0x%llx align 0x%llx\n",
                  p.type, (p.flags & 4) ? 'R' : '-', (p.flags & 2) ? 'W' : '-', (p.flags & 1) ? 'E' : '-',
                  static_cast<unsigned long long>(p.offset), static_cast<unsigned long long>(p.vaddr),
                  static_cast<unsigned long long>(p.paddr), static_cast<unsigned long long>(p.filesz),
                  static_cast<unsigned long long>(p.memsz), static_cast<unsigned long long>(p.align));
    s += buf;
  }
  return s;
}

std::string elf_section_headers_text(const kmod::ElfFile& e) {
  std::string s;
  char buf[512];
  for (const auto& h : e.sections()) {
    const char* tn = section_type_name(h.type);
    std::string type = tn != nullptr ? tn : fmt("0x%llx", h.type);
    std::snprintf(buf, sizeof buf, "[%2u] %-24s %-10s %-4s addr 0x%llx off 0x%llx size 0x%llx es %llu lk %u inf %u al %llu\n",
                  h.index, h.name.c_str(), type.c_str(), flags_text(h.flags).c_str(),
                  static_cast<unsigned long long>(h.addr), static_cast<unsigned long long>(h.offset),
                  static_cast<unsigned long long>(h.size), static_cast<unsigned long long>(h.entsize), h.link, h.info,
                  static_cast<unsigned long long>(h.addralign));
    s += buf;
  }
  return s;
}

std::string elf_symbols_text(const kmod::ElfFile& e) {
  std::string s;
  char buf[128];
  static const char* kTypes[] = {"NOTYPE", "OBJECT", "FUNC", "SECTION", "FILE", "COMMON", "TLS"};
  static const char* kBinds[] = {"LOCAL", "GLOBAL", "WEAK"};
  for (const char* table : {".symtab", ".dynsym"}) {
    if (e.find_section(table) == nullptr) continue;
    s += std::string("Symbol table '") + table + "':\n";
    auto syms = e.symbols(table);
    if (!syms) {
      s += "  <" + syms.error().to_string() + ">\n";
      continue;
    }
    for (const auto& y : *syms) {
      std::string where = y.shndx == 0 ? "UND" : y.shndx == 0xfff1 ? "ABS" : y.shndx == 0xfff2 ? "COM"
                          : y.shndx < e.sections().size() ? e.sections()[y.shndx].name : std::to_string(y.shndx);
      std::string nm = y.name;
      if (y.type == 3 && nm.empty()) nm = where;
      std::snprintf(buf, sizeof buf, "  %016llx %6llu %-7s %-6s %u ", static_cast<unsigned long long>(y.value),
                    static_cast<unsigned long long>(y.size), y.type < 7 ? kTypes[y.type] : "OTHER",
                    y.bind < 3 ? kBinds[y.bind] : "OTHER", y.other & 3u);
      s += buf + where + " " + nm + "\n";
    }
  }
  return s;
}

std::string elf_notes_text(const kmod::ElfFile& e) {
  std::string s;
  auto notes = e.notes();
  if (!notes) return "<" + notes.error().to_string() + ">\n";
  for (const auto& n : *notes) {
    s += "owner " + n.name + " type " + std::to_string(n.type);
    if (n.name == "GNU" && n.type == kmod::kNtGnuBuildId) s += " (build-id)";
    s += " " + to_hex(n.desc.subspan(0, std::min<std::size_t>(n.desc.size(), 256)));
    if (n.desc.size() > 256) s += "...";
    s += "\n";
  }
  return s;
}

std::string nul_strings_text(Bytes data) {
  std::string s;
  std::string_view all = as_string_view(data);
  std::size_t start = 0;
  while (start < all.size()) {
    std::size_t nul = all.find('\0', start);
    if (nul == std::string_view::npos) nul = all.size();
    if (nul > start) {
      s += all.substr(start, nul - start);
      s += '\n';
    }
    start = nul + 1;
  }
  return s;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> elf_uncovered_ranges(const kmod::ElfFile& e) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> cover;
  const auto& h = e.header();
  const std::uint64_t size = e.data().size();
  auto add = [&](std::uint64_t off, std::uint64_t len) {
    if (len == 0 || off >= size) return;
    cover.emplace_back(off, off + std::min(len, size - off));
  };
  add(0, h.ehsize);
  add(h.phoff, std::uint64_t{h.phnum} * h.phentsize);
  add(h.shoff, std::uint64_t{h.shnum} * h.shentsize);
  for (const auto& s : e.sections()) {
    if (s.type != kmod::kShtNobits && s.type != kmod::kShtNull) add(s.offset, s.size);
  }
  std::sort(cover.begin(), cover.end());
  std::vector<std::pair<std::uint64_t, std::uint64_t>> gaps;
  std::uint64_t pos = 0;
  for (const auto& [b, en] : cover) {
    if (b > pos) gaps.emplace_back(pos, b);
    pos = std::max(pos, en);
  }
  if (pos < size) gaps.emplace_back(pos, size);
  return gaps;
}

}  // namespace kmr::compare

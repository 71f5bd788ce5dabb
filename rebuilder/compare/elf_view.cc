#include "rebuilder/compare/elf_view.h"

#include <algorithm>
#include <cstdio>

#include "rebuilder/base/byte_reader.h"
#include "rebuilder/base/checked_math.h"
#include "rebuilder/base/hex.h"

namespace kmr::compare {

namespace {

constexpr std::uint32_t kMaxSections = 65536;
constexpr std::uint32_t kMaxPhdrs = 65536;
constexpr std::uint64_t kMaxSymbols = 4'000'000;
constexpr std::uint32_t kShtSymtab = 2;
constexpr std::uint32_t kShtNote = 7;
constexpr std::uint32_t kShtDynsym = 11;

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

Bytes ElfView::section_bytes(std::size_t index) const {
  if (index >= sections.size()) return {};
  const auto& s = sections[index];
  if (s.type == kShtNobits || !s.in_file) return {};
  return data.subspan(static_cast<std::size_t>(s.offset), static_cast<std::size_t>(s.size));
}

Result<ElfView> parse_elf(Bytes data) {
  ElfView e;
  e.data = data;
  if (data.size() < 16 || data[0] != 0x7f || data[1] != 'E' || data[2] != 'L' || data[3] != 'F') {
    return malformed("ELF: bad magic");
  }
  if (data[4] != 1 && data[4] != 2) return malformed("ELF: invalid class " + std::to_string(data[4]));
  if (data[5] != 1 && data[5] != 2) return malformed("ELF: invalid data encoding " + std::to_string(data[5]));
  e.is64 = data[4] == 2;
  e.little = data[5] == 1;
  e.osabi = data[7];
  ByteReader r(data, "ELF header");
  r.seek(16);
  e.type = r.u16(e.little);
  e.machine = r.u16(e.little);
  r.u32(e.little);  // version
  e.entry = e.is64 ? r.u64(e.little) : r.u32(e.little);
  e.phoff = e.is64 ? r.u64(e.little) : r.u32(e.little);
  e.shoff = e.is64 ? r.u64(e.little) : r.u32(e.little);
  e.flags = r.u32(e.little);
  e.ehsize = r.u16(e.little);
  e.phentsize = r.u16(e.little);
  std::uint32_t phnum = r.u16(e.little);
  e.shentsize = r.u16(e.little);
  std::uint32_t shnum = r.u16(e.little);
  e.shstrndx = r.u16(e.little);
  KMR_TRY(r.finish());
  const std::uint16_t want_sh = e.is64 ? 64 : 40;
  const std::uint16_t want_ph = e.is64 ? 56 : 32;

  // Section headers (extended numbering: count in section 0's size,
  // string table index in its link).
  if (e.shoff != 0) {
    if (e.shentsize != want_sh) {
      e.warnings.push_back("section header entry size " + std::to_string(e.shentsize) + " is not " + std::to_string(want_sh) + "; sections ignored");
    } else if (!range_fits(e.shoff, want_sh, data.size())) {
      e.warnings.push_back("section header table at offset " + std::to_string(e.shoff) + " is outside the file; sections ignored");
    } else {
      ByteReader s0(data, "section header 0");
      s0.seek(e.shoff);
      s0.skip(e.is64 ? 32 : 20);
      std::uint64_t size0 = e.is64 ? s0.u64(e.little) : s0.u32(e.little);
      std::uint32_t link0 = s0.u32(e.little);
      if (shnum == 0) shnum = static_cast<std::uint32_t>(std::min<std::uint64_t>(size0, kMaxSections + 1ull));
      if (e.shstrndx == 0xffff) e.shstrndx = link0;
      if (shnum > kMaxSections) {
        e.warnings.push_back("section count " + std::to_string(shnum) + " exceeds the limit; sections ignored");
        shnum = 0;
      }
      auto table = checked_mul<std::uint64_t>(shnum, want_sh);
      if (!table || !range_fits(e.shoff, *table, data.size())) {
        e.warnings.push_back("section header table (" + std::to_string(shnum) + " entries at offset " + std::to_string(e.shoff) + ") runs past the end of the file; sections ignored");
        shnum = 0;
      }
      ByteReader sr(data, "section headers");
      for (std::uint32_t i = 0; i < shnum; ++i) {
        sr.seek(e.shoff + std::uint64_t{i} * want_sh);
        ElfSectionHeader s;
        std::uint32_t name_off = sr.u32(e.little);
        s.type = sr.u32(e.little);
        s.flags = e.is64 ? sr.u64(e.little) : sr.u32(e.little);
        s.addr = e.is64 ? sr.u64(e.little) : sr.u32(e.little);
        s.offset = e.is64 ? sr.u64(e.little) : sr.u32(e.little);
        s.size = e.is64 ? sr.u64(e.little) : sr.u32(e.little);
        s.link = sr.u32(e.little);
        s.info = sr.u32(e.little);
        s.align = e.is64 ? sr.u64(e.little) : sr.u32(e.little);
        s.entsize = e.is64 ? sr.u64(e.little) : sr.u32(e.little);
        s.name = std::to_string(name_off);  // resolved below
        s.in_file = s.type == kShtNobits || range_fits(s.offset, s.size, data.size());
        if (!s.in_file) {
          e.warnings.push_back("section " + std::to_string(i) + ": offset " + std::to_string(s.offset) + " size " +
                               std::to_string(s.size) + " is outside the file (" + std::to_string(data.size()) + " bytes)");
        }
        e.sections.push_back(std::move(s));
      }
      KMR_TRY(sr.finish());
      // Names.
      Bytes strtab;
      if (e.shstrndx < e.sections.size() && e.sections[e.shstrndx].type != kShtNobits && e.sections[e.shstrndx].in_file) {
        strtab = e.section_bytes(e.shstrndx);
      } else if (!e.sections.empty()) {
        e.warnings.push_back("section name string table index " + std::to_string(e.shstrndx) + " is invalid");
      }
      for (std::size_t i = 0; i < e.sections.size(); ++i) {
        auto& s = e.sections[i];
        std::uint64_t off = std::stoull(s.name);
        if (off < strtab.size()) {
          std::string_view rest = as_string_view(strtab.subspan(static_cast<std::size_t>(off)));
          auto nul = rest.find('\0');
          s.name = nul == std::string_view::npos ? std::string(rest.substr(0, 256)) : std::string(rest.substr(0, std::min<std::size_t>(nul, 256)));
        } else {
          s.name = "<section " + std::to_string(i) + ">";
        }
      }
    }
  }
  if (e.phoff != 0 && phnum != 0) {
    auto table = checked_mul<std::uint64_t>(phnum, want_ph);
    if (e.phentsize != want_ph || phnum > kMaxPhdrs || !table || !range_fits(e.phoff, *table, data.size())) {
      e.warnings.push_back("program header table (" + std::to_string(phnum) + " entries at offset " + std::to_string(e.phoff) + ") is invalid; ignored");
    } else {
      ByteReader pr(data, "program headers");
      for (std::uint32_t i = 0; i < phnum; ++i) {
        pr.seek(e.phoff + std::uint64_t{i} * want_ph);
        ElfProgramHeader p;
        p.type = pr.u32(e.little);
        if (e.is64) {
          p.flags = pr.u32(e.little);
          p.offset = pr.u64(e.little);
          p.vaddr = pr.u64(e.little);
          p.paddr = pr.u64(e.little);
          p.filesz = pr.u64(e.little);
          p.memsz = pr.u64(e.little);
          p.align = pr.u64(e.little);
        } else {
          p.offset = pr.u32(e.little);
          p.vaddr = pr.u32(e.little);
          p.paddr = pr.u32(e.little);
          p.filesz = pr.u32(e.little);
          p.memsz = pr.u32(e.little);
          p.flags = pr.u32(e.little);
          p.align = pr.u32(e.little);
        }
        e.phdrs.push_back(p);
      }
      KMR_TRY(pr.finish());
    }
  }
  return e;
}

std::string elf_file_header_text(const ElfView& e) {
  std::string s;
  s += std::string("Class: ") + (e.is64 ? "ELF64" : "ELF32") + "\n";
  s += std::string("Data: ") + (e.little ? "little endian" : "big endian") + "\n";
  s += "OS/ABI: " + std::to_string(e.osabi) + "\n";
  s += "Type: " + std::to_string(e.type) + (e.type == 1 ? " (REL)" : e.type == 2 ? " (EXEC)" : e.type == 3 ? " (DYN)" : "") + "\n";
  s += "Machine: " + std::to_string(e.machine) + "\n";
  s += fmt("Entry point: 0x%llx\n", e.entry);
  s += "Program headers offset: " + std::to_string(e.phoff) + "\n";
  s += "Section headers offset: " + std::to_string(e.shoff) + "\n";
  s += fmt("Flags: 0x%llx\n", e.flags);
  s += "Number of program headers: " + std::to_string(e.phdrs.size()) + "\n";
  s += "Number of section headers: " + std::to_string(e.sections.size()) + "\n";
  s += "Section header string table index: " + std::to_string(e.shstrndx) + "\n";
  for (const auto& w : e.warnings) s += "Warning: " + w + "\n";
  return s;
}

std::string elf_program_headers_text(const ElfView& e) {
  std::string s;
  char buf[256];
  for (const auto& p : e.phdrs) {
    std::snprintf(buf, sizeof buf, "type 0x%08x flags %c%c%c offset 0x%llx vaddr 0x%llx paddr 0x%llx filesz 0x%llx memsz 0x%llx align 0x%llx\n",
                  p.type, (p.flags & 4) ? 'R' : '-', (p.flags & 2) ? 'W' : '-', (p.flags & 1) ? 'E' : '-',
                  static_cast<unsigned long long>(p.offset), static_cast<unsigned long long>(p.vaddr),
                  static_cast<unsigned long long>(p.paddr), static_cast<unsigned long long>(p.filesz),
                  static_cast<unsigned long long>(p.memsz), static_cast<unsigned long long>(p.align));
    s += buf;
  }
  return s;
}

std::string elf_section_headers_text(const ElfView& e) {
  std::string s;
  char buf[512];
  for (std::size_t i = 0; i < e.sections.size(); ++i) {
    const auto& h = e.sections[i];
    const char* tn = section_type_name(h.type);
    std::string type = tn != nullptr ? tn : fmt("0x%llx", h.type);
    std::snprintf(buf, sizeof buf, "[%2zu] %-24s %-10s %-4s addr 0x%llx off 0x%llx size 0x%llx es %llu lk %u inf %u al %llu%s\n", i,
                  h.name.c_str(), type.c_str(), flags_text(h.flags).c_str(), static_cast<unsigned long long>(h.addr),
                  static_cast<unsigned long long>(h.offset), static_cast<unsigned long long>(h.size),
                  static_cast<unsigned long long>(h.entsize), h.link, h.info, static_cast<unsigned long long>(h.align),
                  h.in_file ? "" : " OUT-OF-RANGE");
    s += buf;
  }
  return s;
}

std::string elf_symbols_text(const ElfView& e) {
  std::string s;
  std::uint64_t total = 0;
  char buf[128];
  for (std::size_t i = 0; i < e.sections.size(); ++i) {
    const auto& h = e.sections[i];
    if (h.type != kShtSymtab && h.type != kShtDynsym) continue;
    const std::uint64_t ent = e.is64 ? 24 : 16;
    Bytes tab = e.section_bytes(i);
    Bytes strs = h.link < e.sections.size() ? e.section_bytes(h.link) : Bytes();
    s += "Symbol table '" + h.name + "':\n";
    if (h.entsize != ent || tab.size() % ent != 0) {
      s += "  <invalid entry size " + std::to_string(h.entsize) + ">\n";
      continue;
    }
    ByteReader r(tab, "symbols");
    for (std::uint64_t k = 0; k < tab.size() / ent && total < kMaxSymbols; ++k, ++total) {
      std::uint32_t name = r.u32(e.little);
      std::uint64_t value;
      std::uint64_t size;
      std::uint8_t info;
      std::uint8_t other;
      std::uint16_t shndx;
      if (e.is64) {
        info = r.u8();
        other = r.u8();
        shndx = r.u16(e.little);
        value = r.u64(e.little);
        size = r.u64(e.little);
      } else {
        value = r.u32(e.little);
        size = r.u32(e.little);
        info = r.u8();
        other = r.u8();
        shndx = r.u16(e.little);
      }
      std::string nm;
      if (name < strs.size()) {
        std::string_view rest = as_string_view(strs.subspan(name));
        nm = std::string(rest.substr(0, std::min<std::size_t>(rest.find('\0'), 512)));
      } else if (name != 0) {
        nm = "<bad name " + std::to_string(name) + ">";
      }
      static const char* kTypes[] = {"NOTYPE", "OBJECT", "FUNC", "SECTION", "FILE", "COMMON", "TLS"};
      static const char* kBinds[] = {"LOCAL", "GLOBAL", "WEAK"};
      unsigned t = info & 15;
      unsigned b = info >> 4;
      std::string where = shndx == 0 ? "UND" : shndx == 0xfff1 ? "ABS" : shndx == 0xfff2 ? "COM"
                          : shndx < e.sections.size() ? e.sections[shndx].name : std::to_string(shndx);
      if (t == 3 && nm.empty()) nm = where;
      std::snprintf(buf, sizeof buf, "  %016llx %6llu %-7s %-6s %u ", static_cast<unsigned long long>(value),
                    static_cast<unsigned long long>(size), t < 7 ? kTypes[t] : "OTHER", b < 3 ? kBinds[b] : "OTHER", other & 3);
      s += buf + where + " " + nm + "\n";
    }
  }
  if (total >= kMaxSymbols) s += "[ symbol listing truncated at " + std::to_string(kMaxSymbols) + " ]\n";
  return s;
}

namespace {
template <typename F>
void for_each_note(const ElfView& e, F&& f) {
  for (std::size_t i = 0; i < e.sections.size(); ++i) {
    const auto& h = e.sections[i];
    if (h.type != kShtNote) continue;
    Bytes sec = e.section_bytes(i);
    std::uint64_t align = h.align == 8 ? 8 : 4;
    ByteReader r(sec, "notes");
    while (r.remaining() >= 12) {
      std::uint32_t namesz = r.u32(e.little);
      std::uint32_t descsz = r.u32(e.little);
      std::uint32_t type = r.u32(e.little);
      Bytes name = r.bytes(namesz);
      r.align(align);
      Bytes desc = r.bytes(descsz);
      r.align(align);
      if (!r.ok()) {
        f(h.name, std::string_view("<truncated note>"), 0u, Bytes());
        break;
      }
      std::string_view nm = as_string_view(name);
      if (!nm.empty() && nm.back() == '\0') nm.remove_suffix(1);
      f(h.name, nm, type, desc);
    }
  }
}
}  // namespace

std::string elf_notes_text(const ElfView& e) {
  std::string s;
  for_each_note(e, [&](const std::string& sec, std::string_view owner, std::uint32_t type, Bytes desc) {
    s += sec + ": owner " + std::string(owner) + " type " + std::to_string(type);
    if (owner == "GNU" && type == 3) s += " (build-id)";
    s += " " + to_hex(desc.subspan(0, std::min<std::size_t>(desc.size(), 256)));
    if (desc.size() > 256) s += "...";
    s += "\n";
  });
  return s;
}

std::string elf_build_id(const ElfView& e) {
  std::string id;
  for_each_note(e, [&](const std::string&, std::string_view owner, std::uint32_t type, Bytes desc) {
    if (owner == "GNU" && type == 3 && id.empty()) id = to_hex(desc.subspan(0, std::min<std::size_t>(desc.size(), 64)));
  });
  return id;
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

std::vector<std::pair<std::uint64_t, std::uint64_t>> elf_uncovered_ranges(const ElfView& e) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> cover;
  const std::uint64_t size = e.data.size();
  auto add = [&](std::uint64_t off, std::uint64_t len) {
    if (len == 0 || off >= size) return;
    cover.emplace_back(off, off + std::min(len, size - off));
  };
  add(0, e.is64 ? 64 : 52);
  add(e.phoff, std::uint64_t{e.phdrs.size()} * (e.is64 ? 56 : 32));
  add(e.shoff, std::uint64_t{e.sections.size()} * (e.is64 ? 64 : 40));
  for (const auto& s : e.sections) {
    if (s.type != kShtNobits && s.in_file) add(s.offset, s.size);
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

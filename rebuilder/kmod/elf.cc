#include "rebuilder/kmod/elf.h"

#include <cstring>

#include "rebuilder/base/byte_reader.h"
#include "rebuilder/base/checked_math.h"

namespace kmr::kmod {

namespace {

std::string hex64(std::uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// An address, offset or extended word: 8 bytes in ELF64, 4 in ELF32.
std::uint64_t word(ByteReader& r, bool is64, bool le) { return is64 ? r.u64(le) : r.u32(le); }

}  // namespace

bool is_elf(Bytes d) { return d.size() >= 4 && d[0] == 0x7f && d[1] == 'E' && d[2] == 'L' && d[3] == 'F'; }

Result<ElfFile> ElfFile::parse(Bytes data, std::string what, const ElfLimits& limits) {
  ElfFile f;
  f.data_ = data;
  f.what_ = std::move(what);
  f.limits_ = limits;
  if (!is_elf(data)) return f.err("not an ELF file (bad magic)");
  if (data.size() < 16) return f.err("truncated ELF identification");
  ElfHeader& h = f.header_;
  if (data[4] != 1 && data[4] != 2) return f.err("bad ELF class " + std::to_string(data[4]));
  if (data[5] != 1 && data[5] != 2) return f.err("bad ELF data encoding " + std::to_string(data[5]));
  h.is64 = data[4] == 2;
  h.little_endian = data[5] == 1;
  h.osabi = data[7];
  h.abiversion = data[8];
  const std::size_t ehsize = h.is64 ? 64 : 52;
  if (data.size() < ehsize) {
    return f.err("truncated ELF header: " + std::to_string(data.size()) + " bytes, need " + std::to_string(ehsize));
  }
  ByteReader r(data, f.what_);
  r.seek(16);
  const bool le = h.little_endian;
  h.type = r.u16(le);
  h.machine = r.u16(le);
  h.version = r.u32(le);
  h.entry = word(r, h.is64, le);
  h.phoff = word(r, h.is64, le);
  h.shoff = word(r, h.is64, le);
  h.flags = r.u32(le);
  h.ehsize = r.u16(le);
  h.phentsize = r.u16(le);
  h.phnum = r.u16(le);
  h.shentsize = r.u16(le);
  h.shnum = r.u16(le);
  h.shstrndx = r.u16(le);
  KMR_TRY(r.finish());
  KMR_TRY(f.parse_sections());
  KMR_TRY(f.parse_segments());
  return f;
}

Result<void> ElfFile::parse_sections() {
  ElfHeader& h = header_;
  if (h.shoff == 0) {
    if (h.shnum != 0) return err("e_shnum " + std::to_string(h.shnum) + " with e_shoff 0");
    h.shstrndx = 0;
    return kmr::ok();
  }
  const std::uint16_t want = h.is64 ? 64 : 40;
  if (h.shentsize != want) {
    return err("e_shentsize " + std::to_string(h.shentsize) + ", expected " + std::to_string(want));
  }
  const bool le = h.little_endian;
  auto read_header = [&](std::uint64_t i, ElfSection& s) -> Result<void> {
    const std::uint64_t off = h.shoff + i * want;  // table bounds checked by the caller
    ByteReader r(data_, what_);
    r.seek(off);
    s.index = static_cast<std::uint32_t>(i);
    s.name_offset = r.u32(le);
    s.type = r.u32(le);
    s.flags = word(r, h.is64, le);
    s.addr = word(r, h.is64, le);
    s.offset = word(r, h.is64, le);
    s.size = word(r, h.is64, le);
    s.link = r.u32(le);
    s.info = r.u32(le);
    s.addralign = word(r, h.is64, le);
    s.entsize = word(r, h.is64, le);
    return r.finish();
  };
  if (!range_fits(h.shoff, want, data_.size())) {
    return err("section header table at " + hex64(h.shoff) + " beyond end of file (size " + std::to_string(data_.size()) + ")");
  }
  ElfSection first;
  KMR_TRY(read_header(0, first));
  // Extended numbering: counts that do not fit the header live in section 0.
  if (h.shnum == 0) {
    if (first.size > limits_.max_sections) {
      return err("section count " + std::to_string(first.size) + " exceeds limit " + std::to_string(limits_.max_sections));
    }
    h.shnum = static_cast<std::uint32_t>(first.size);
  }
  if (h.shstrndx == 0xffff) h.shstrndx = first.link;
  if (h.shnum > limits_.max_sections) {
    return err("section count " + std::to_string(h.shnum) + " exceeds limit " + std::to_string(limits_.max_sections));
  }
  const auto table = checked_mul<std::uint64_t>(h.shnum, want);
  const auto table_end = table ? checked_add<std::uint64_t>(h.shoff, *table) : std::nullopt;
  if (!table_end) return err("section header table size overflows");
  if (*table_end > data_.size()) {
    return err("section header table (offset " + hex64(h.shoff) + ", " + std::to_string(h.shnum) + " entries of " +
               std::to_string(want) + " bytes) beyond end of file (size " + std::to_string(data_.size()) + ")");
  }
  sections_.resize(h.shnum);
  for (std::uint32_t i = 0; i < h.shnum; ++i) KMR_TRY(read_header(i, sections_[i]));
  for (const auto& s : sections_) {
    if (s.type == kShtNobits || s.type == kShtNull) continue;
    if (!checked_add<std::uint64_t>(s.offset, s.size)) {
      return err("section " + std::to_string(s.index) + ": offset " + hex64(s.offset) + " + size " + hex64(s.size) +
                 " overflows");
    }
    if (!range_fits(s.offset, s.size, data_.size())) {
      return err("section " + std::to_string(s.index) + ": offset " + hex64(s.offset) + " size " + hex64(s.size) +
                 " beyond end of file (size " + std::to_string(data_.size()) + ")");
    }
  }
  if (h.shstrndx == 0) return kmr::ok();  // no section names
  if (h.shstrndx >= h.shnum) {
    return err("e_shstrndx " + std::to_string(h.shstrndx) + " out of range (" + std::to_string(h.shnum) + " sections)");
  }
  const ElfSection strtab = sections_[h.shstrndx];
  if (strtab.type != kShtStrtab) {
    return err("e_shstrndx " + std::to_string(h.shstrndx) + " is not a string table (type " + std::to_string(strtab.type) + ")");
  }
  for (auto& s : sections_) {
    KMR_ASSIGN_OR_RETURN(s.name, string_at(strtab, s.name_offset, "section " + std::to_string(s.index) + " name"));
  }
  return kmr::ok();
}

Result<void> ElfFile::parse_segments() {
  ElfHeader& h = header_;
  if (h.phoff == 0 || h.phnum == 0) return kmr::ok();
  const std::uint16_t want = h.is64 ? 56 : 32;
  if (h.phentsize != want) {
    return err("e_phentsize " + std::to_string(h.phentsize) + ", expected " + std::to_string(want));
  }
  // PN_XNUM: the real count is in section 0's sh_info.
  if (h.phnum == 0xffff && !sections_.empty()) h.phnum = sections_[0].info;
  if (h.phnum > limits_.max_segments) {
    return err("program header count " + std::to_string(h.phnum) + " exceeds limit " + std::to_string(limits_.max_segments));
  }
  const auto table_end = checked_add<std::uint64_t>(h.phoff, std::uint64_t{h.phnum} * want);
  if (!table_end || *table_end > data_.size()) {
    return err("program header table (offset " + hex64(h.phoff) + ", " + std::to_string(h.phnum) +
               " entries) beyond end of file (size " + std::to_string(data_.size()) + ")");
  }
  const bool le = h.little_endian;
  ByteReader r(data_, what_);
  r.seek(h.phoff);
  segments_.resize(h.phnum);
  for (auto& p : segments_) {
    p.type = r.u32(le);
    if (h.is64) p.flags = r.u32(le);  // ELF64 keeps p_flags second, ELF32 before p_align
    p.offset = word(r, h.is64, le);
    p.vaddr = word(r, h.is64, le);
    p.paddr = word(r, h.is64, le);
    p.filesz = word(r, h.is64, le);
    p.memsz = word(r, h.is64, le);
    if (!h.is64) p.flags = r.u32(le);
    p.align = word(r, h.is64, le);
  }
  KMR_TRY(r.finish());
  for (std::size_t i = 0; i < segments_.size(); ++i) {
    const auto& p = segments_[i];
    if (!range_fits(p.offset, p.filesz, data_.size())) {
      return err("program header " + std::to_string(i) + ": offset " + hex64(p.offset) + " filesz " + hex64(p.filesz) +
                 " beyond end of file (size " + std::to_string(data_.size()) + ")");
    }
  }
  return kmr::ok();
}

Result<std::string> ElfFile::string_at(const ElfSection& strtab, std::uint64_t offset, std::string_view ctx) const {
  if (strtab.type == kShtNobits) return err(std::string(ctx) + ": string table has no data");
  if (offset >= strtab.size) {
    if (offset == 0 && strtab.size == 0) return std::string();
    return err(std::string(ctx) + ": offset " + std::to_string(offset) + " beyond string table (size " +
               std::to_string(strtab.size) + ")");
  }
  const Bytes tab = data_.subspan(strtab.offset, strtab.size);
  const std::uint64_t scan = std::min<std::uint64_t>(tab.size() - offset, limits_.max_name_len + 1);
  const void* nul = std::memchr(tab.data() + offset, 0, scan);
  if (nul == nullptr) return err(std::string(ctx) + ": unterminated or too long string");
  const auto len = static_cast<std::size_t>(static_cast<const std::uint8_t*>(nul) - (tab.data() + offset));
  return std::string(reinterpret_cast<const char*>(tab.data() + offset), len);
}

const ElfSection* ElfFile::find_section(std::string_view name) const {
  for (const auto& s : sections_) {
    if (s.name == name && s.index != 0) return &s;
  }
  return nullptr;
}

Bytes ElfFile::section_data(const ElfSection& s) const {
  if (s.type == kShtNobits || s.type == kShtNull) return {};
  return data_.subspan(s.offset, s.size);  // validated by parse()
}

Result<std::vector<ElfSymbol>> ElfFile::symbols(std::string_view section_name) const {
  std::vector<ElfSymbol> out;
  const ElfSection* tab = find_section(section_name);
  if (tab == nullptr) return out;
  const std::string ctx = "section " + std::string(section_name);
  if (tab->type != kShtSymtab && tab->type != kShtDynsym) {
    return err(ctx + ": not a symbol table (type " + std::to_string(tab->type) + ")");
  }
  const std::uint64_t want = is64() ? 24 : 16;
  if (tab->entsize != want) return err(ctx + ": sh_entsize " + std::to_string(tab->entsize) + ", expected " + std::to_string(want));
  if (tab->size % want != 0) return err(ctx + ": size " + std::to_string(tab->size) + " is not a multiple of " + std::to_string(want));
  const std::uint64_t count = tab->size / want;
  if (count > limits_.max_symbols) return err(ctx + ": " + std::to_string(count) + " symbols exceeds limit");
  if (tab->link == 0 || tab->link >= sections_.size()) {
    return err(ctx + ": sh_link " + std::to_string(tab->link) + " is not a valid string table index");
  }
  const ElfSection& strtab = sections_[tab->link];
  if (strtab.type != kShtStrtab) return err(ctx + ": sh_link " + std::to_string(tab->link) + " is not a string table");
  const bool le = little_endian();
  ByteReader r(section_data(*tab), what_);
  out.reserve(count);
  for (std::uint64_t i = 0; i < count; ++i) {
    ElfSymbol s;
    const std::uint32_t name = r.u32(le);
    if (is64()) {
      const std::uint8_t info = r.u8();
      s.other = r.u8();
      s.shndx = r.u16(le);
      s.value = r.u64(le);
      s.size = r.u64(le);
      s.bind = info >> 4;
      s.type = info & 0xf;
    } else {
      s.value = r.u32(le);
      s.size = r.u32(le);
      const std::uint8_t info = r.u8();
      s.other = r.u8();
      s.shndx = r.u16(le);
      s.bind = info >> 4;
      s.type = info & 0xf;
    }
    KMR_ASSIGN_OR_RETURN(s.name, string_at(strtab, name, ctx + " symbol " + std::to_string(i)));
    out.push_back(std::move(s));
  }
  KMR_TRY(r.finish());
  return out;
}

Result<void> ElfFile::parse_notes(Bytes region, std::uint64_t align, std::vector<ElfNote>& out) const {
  const bool le = little_endian();
  ByteReader r(region, what_ + " notes");
  while (r.ok() && r.remaining() > 0) {
    if (r.remaining() < 12) return err("truncated note header");
    const std::uint32_t namesz = r.u32(le);
    const std::uint32_t descsz = r.u32(le);
    ElfNote n;
    n.type = r.u32(le);
    if (namesz > r.remaining()) return err("note name size " + std::to_string(namesz) + " beyond its section");
    Bytes name = r.bytes(namesz);
    if (!name.empty() && name.back() == 0) name = name.first(name.size() - 1);
    n.name.assign(reinterpret_cast<const char*>(name.data()), name.size());
    r.align(align);
    if (descsz > r.remaining()) return err("note descriptor size " + std::to_string(descsz) + " beyond its section");
    n.desc = r.bytes(descsz);
    if (r.remaining() > 0) r.align(align);
    KMR_TRY(r.finish());
    out.push_back(std::move(n));
  }
  return r.finish();
}

Result<std::vector<ElfNote>> ElfFile::notes() const {
  std::vector<ElfNote> out;
  bool any_section = false;
  for (const auto& s : sections_) {
    if (s.type != kShtNote) continue;
    any_section = true;
    KMR_TRY(parse_notes(section_data(s), s.addralign == 8 ? 8 : 4, out));
  }
  if (!any_section) {
    for (const auto& p : segments_) {
      if (p.type != kPtNote) continue;
      KMR_TRY(parse_notes(data_.subspan(p.offset, p.filesz), p.align == 8 ? 8 : 4, out));
    }
  }
  return out;
}

Result<std::optional<ByteVector>> ElfFile::build_id() const {
  KMR_ASSIGN_OR_RETURN(auto notes, this->notes());
  for (const auto& n : notes) {
    if (n.type == kNtGnuBuildId && n.name == "GNU") return std::optional<ByteVector>(ByteVector(n.desc.begin(), n.desc.end()));
  }
  return std::optional<ByteVector>();
}

}  // namespace kmr::kmod

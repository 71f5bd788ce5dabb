#include "rebuilder/kmod/elf.h"

#include <gtest/gtest.h>

#include "rebuilder/base/require.h"

#include <sstream>
#include <string>

#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/kmod/test_util.h"

namespace kmr::kmod {
namespace {

using testing::sh;
using testing::tmpdir;

const char* kSource =
    "int my_global_symbol[7] = {1};\n"
    "static int helper(int x) { return x * 3; }\n"
    "int entry_point(int y) { return helper(y) + my_global_symbol[0]; }\n"
    "int main(void) { return entry_point(2); }\n";

ByteVector build_program(const std::string& name, const std::string& flags) {
  write_file_atomic(tmpdir() + "/prog.c", as_bytes(kSource)).value();
  sh("gcc " + flags + " -O1 -o " + name + " prog.c -Wl,--build-id=0x0123456789abcdef0123456789abcdef01234567");
  return *read_file(tmpdir() + "/" + name, 64 << 20);
}

// Section names and offsets as readelf (the independent reader) sees them.
void expect_matches_readelf(const ElfFile& f, const std::string& name) {
  const std::string out = sh("readelf -W -S " + name + " | sed -n 's/^ *\\[ *\\([0-9]*\\)\\] *\\([^ ]*\\) *[A-Z_a-z0-9]* *[0-9a-f]* \\([0-9a-f]*\\) \\([0-9a-f]*\\).*/\\1 \\2 \\3 \\4/p'");
  std::istringstream in(out);
  std::size_t idx;
  std::string sname, off, size;
  int rows = 0;
  while (in >> idx >> sname >> off >> size) {
    if (idx == 0) continue;
    ASSERT_LT(idx, f.sections().size());
    EXPECT_EQ(f.sections()[idx].name, sname);
    EXPECT_EQ(f.sections()[idx].offset, std::stoull(off, nullptr, 16)) << sname;
    EXPECT_EQ(f.sections()[idx].size, std::stoull(size, nullptr, 16)) << sname;
    ++rows;
  }
  EXPECT_EQ(static_cast<std::size_t>(rows), f.sections().size() - 1);
}

TEST(ElfTest, GccProgram64) {
  const ByteVector prog = build_program("prog64", "");
  auto f = ElfFile::parse(prog, "prog64");
  ASSERT_TRUE(f.has_value()) << f.error().to_string();
  EXPECT_TRUE(f->is64());
  EXPECT_TRUE(f->little_endian());
  EXPECT_EQ(f->header().machine, 62);  // EM_X86_64
  expect_matches_readelf(*f, "prog64");
  EXPECT_FALSE(f->segments().empty());
  auto syms = f->symbols(".symtab");
  ASSERT_TRUE(syms.has_value()) << syms.error().to_string();
  bool found = false;
  for (const auto& s : *syms) {
    if (s.name == "my_global_symbol") {
      found = true;
      EXPECT_EQ(s.size, 28u);
      EXPECT_EQ(s.type, 1);  // STT_OBJECT
      EXPECT_EQ(s.bind, 1);  // STB_GLOBAL
    }
  }
  EXPECT_TRUE(found);
  auto dyn = f->symbols(".dynsym");
  ASSERT_TRUE(dyn.has_value());
  auto id = f->build_id();
  ASSERT_TRUE(id.has_value());
  ASSERT_TRUE(id->has_value());
  EXPECT_EQ(to_hex(**id), "0123456789abcdef0123456789abcdef01234567");
  ASSERT_NE(f->find_section(".text"), nullptr);
  EXPECT_EQ(f->find_section(".nope"), nullptr);
}

TEST(ElfTest, GccProgram32) {
  if (!run_subprocess({"sh", "-c", "echo 'int main(void){return 0;}' | gcc -m32 -x c -o /dev/null -"})->success()) {
    KMR_SKIP_OR_FAIL("gcc -m32 not available");
  }
  const ByteVector prog = build_program("prog32", "-m32");
  auto f = ElfFile::parse(prog, "prog32");
  ASSERT_TRUE(f.has_value()) << f.error().to_string();
  EXPECT_FALSE(f->is64());
  EXPECT_EQ(f->header().machine, 3);  // EM_386
  expect_matches_readelf(*f, "prog32");
  auto syms = f->symbols();
  ASSERT_TRUE(syms.has_value());
  bool found = false;
  for (const auto& s : *syms) found = found || (s.name == "entry_point" && s.type == 2);
  EXPECT_TRUE(found);
  auto id = f->build_id();
  ASSERT_TRUE(id.has_value() && id->has_value());
  EXPECT_EQ(to_hex(**id), "0123456789abcdef0123456789abcdef01234567");
}

TEST(ElfTest, ObjcopyBigEndianSections) {
  ByteVector payload(36);
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::uint8_t>(i * 7);
  write_file_atomic(tmpdir() + "/sec.bin", payload).value();
  for (const std::string fmt : {"elf32-big", "elf64-big", "elf32-little", "elf64-little"}) {
    sh("objcopy -I binary -O " + fmt + " --rename-section .data=.module_hashes sec.bin obj-" + fmt);
    const ByteVector obj = *read_file(tmpdir() + "/obj-" + fmt, 1 << 20);
    auto f = ElfFile::parse(obj, fmt);
    ASSERT_TRUE(f.has_value()) << f.error().to_string();
    EXPECT_EQ(f->is64(), fmt.find("64") != std::string::npos);
    EXPECT_EQ(f->little_endian(), fmt.find("little") != std::string::npos);
    const ElfSection* s = f->find_section(".module_hashes");
    ASSERT_NE(s, nullptr) << fmt;
    const Bytes d = f->section_data(*s);
    EXPECT_TRUE(std::equal(d.begin(), d.end(), payload.begin(), payload.end())) << fmt;
    auto syms = f->symbols();
    ASSERT_TRUE(syms.has_value()) << syms.error().to_string();
    bool found = false;
    for (const auto& sym : *syms) found = found || sym.name == "_binary_sec_bin_start";
    EXPECT_TRUE(found) << fmt;
  }
}

// Hostile inputs: mutate a real ELF64 LE object.
class ElfHostileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_file_atomic(tmpdir() + "/h.c", as_bytes(kSource)).value();
    sh("gcc -c -o h.o h.c");
    obj_ = *read_file(tmpdir() + "/h.o", 1 << 20);
  }
  void put(std::size_t off, std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) obj_[off + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
  }
  std::uint64_t get(std::size_t off, int n) const {
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | obj_[off + static_cast<std::size_t>(i)];
    return v;
  }
  std::size_t shdr(std::size_t i) const { return static_cast<std::size_t>(get(0x28, 8)) + i * 64; }
  std::string parse_error() {
    auto f = ElfFile::parse(obj_, "h.o");
    EXPECT_FALSE(f.has_value());
    return f ? "" : f.error().to_string();
  }
  // Index of the first section with data (PROGBITS).
  std::size_t progbits() const {
    for (std::size_t i = 1;; ++i) {
      if (get(shdr(i) + 4, 4) == 1) return i;
    }
  }
  ByteVector obj_;
};

TEST_F(ElfHostileTest, ValidBaseline) { ASSERT_TRUE(ElfFile::parse(obj_, "h.o").has_value()); }

TEST_F(ElfHostileTest, BadMagicClassAndTruncation) {
  EXPECT_EQ(ElfFile::parse(as_bytes("hello"), "x").error().to_string(), "x: not an ELF file (bad magic)");
  obj_[4] = 9;
  EXPECT_EQ(parse_error(), "h.o: bad ELF class 9");
  obj_[4] = 2;
  obj_.resize(40);
  EXPECT_EQ(parse_error(), "h.o: truncated ELF header: 40 bytes, need 64");
}

TEST_F(ElfHostileTest, SectionTableBeyondEof) {
  const std::uint64_t size = obj_.size();
  put(0x28, size - 10, 8);
  EXPECT_EQ(parse_error(), "h.o: section header table at 0x" + [&] {
    char b[32];
    std::snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(size - 10));
    return std::string(b);
  }() + " beyond end of file (size " + std::to_string(size) + ")");
}

TEST_F(ElfHostileTest, SectionCountBeyondEof) {
  put(0x3c, 0xfff0, 2);
  const std::string e = parse_error();
  EXPECT_NE(e.find("h.o: section header table (offset 0x"), std::string::npos) << e;
  EXPECT_NE(e.find("65520 entries of 64 bytes) beyond end of file"), std::string::npos) << e;
}

TEST_F(ElfHostileTest, SectionOffsetBeyondEof) {
  const std::size_t i = progbits();
  put(shdr(i) + 24, 0x100000, 8);
  EXPECT_EQ(parse_error().find("h.o: section " + std::to_string(i) + ": offset 0x100000 size"), 0u);
  EXPECT_NE(parse_error().find("beyond end of file (size " + std::to_string(obj_.size()) + ")"), std::string::npos);
}

TEST_F(ElfHostileTest, SectionSizeOverflows) {
  const std::size_t i = progbits();
  put(shdr(i) + 32, 0xffffffffffffffffull, 8);
  const std::string e = parse_error();
  EXPECT_NE(e.find("size 0xffffffffffffffff overflows"), std::string::npos) << e;
}

TEST_F(ElfHostileTest, BadShstrndx) {
  put(0x3e, 0x7000, 2);
  const std::string n = std::to_string(get(0x3c, 2));
  EXPECT_EQ(parse_error(), "h.o: e_shstrndx 28672 out of range (" + n + " sections)");
  put(0x3e, progbits(), 2);
  EXPECT_NE(parse_error().find("is not a string table"), std::string::npos);
}

TEST_F(ElfHostileTest, ShentsizeMismatch) {
  put(0x3a, 40, 2);
  EXPECT_EQ(parse_error(), "h.o: e_shentsize 40, expected 64");
}

TEST_F(ElfHostileTest, SymtabEntsizeMismatch) {
  auto f = ElfFile::parse(obj_, "h.o");
  ASSERT_TRUE(f.has_value());
  const ElfSection* s = f->find_section(".symtab");
  ASSERT_NE(s, nullptr);
  put(shdr(s->index) + 56, 16, 8);
  auto g = ElfFile::parse(obj_, "h.o");
  ASSERT_TRUE(g.has_value());
  auto syms = g->symbols();
  ASSERT_FALSE(syms.has_value());
  EXPECT_EQ(syms.error().to_string(), "h.o: section .symtab: sh_entsize 16, expected 24");
}

TEST_F(ElfHostileTest, NameOffsetBeyondStrtab) {
  put(shdr(1), 0x7fffffff, 4);
  const std::string e = parse_error();
  EXPECT_NE(e.find("h.o: section 1 name: offset 2147483647 beyond string table"), std::string::npos) << e;
}

TEST(ElfCrafted, ProgramHeaderBeyondEof) {
  // ELF64 LE header with one program header whose data runs past the end.
  ByteVector h(64 + 56, 0);
  h[0] = 0x7f; h[1] = 'E'; h[2] = 'L'; h[3] = 'F';
  h[4] = 2; h[5] = 1; h[6] = 1;
  h[0x20] = 64;   // e_phoff
  h[0x36] = 56;   // e_phentsize
  h[0x38] = 1;    // e_phnum
  h[64] = 1;      // PT_LOAD
  h[64 + 8] = 0x10;              // p_offset
  h[64 + 32] = 0x00; h[64 + 33] = 0x10;  // p_filesz = 0x1000
  auto f = ElfFile::parse(h, "ph");
  ASSERT_FALSE(f.has_value());
  EXPECT_EQ(f.error().to_string(), "ph: program header 0: offset 0x10 filesz 0x1000 beyond end of file (size 120)");
  h[0x36] = 32;
  EXPECT_EQ(ElfFile::parse(h, "ph").error().to_string(), "ph: e_phentsize 32, expected 56");
}

TEST(ElfCrafted, Elf32BigEndianHeaderOnly) {
  // Hand-made ELF32 BE header without sections or segments.
  ByteVector h(52, 0);
  h[0] = 0x7f; h[1] = 'E'; h[2] = 'L'; h[3] = 'F';
  h[4] = 1; h[5] = 2; h[6] = 1;
  h[16] = 0; h[17] = 2;      // ET_EXEC
  h[18] = 0; h[19] = 0x15;   // EM_PPC64 (21)
  h[24] = 0x12; h[25] = 0x34; h[26] = 0x56; h[27] = 0x78;  // entry
  auto f = ElfFile::parse(h, "crafted");
  ASSERT_TRUE(f.has_value()) << f.error().to_string();
  EXPECT_FALSE(f->is64());
  EXPECT_FALSE(f->little_endian());
  EXPECT_EQ(f->header().machine, 21);
  EXPECT_EQ(f->header().entry, 0x12345678u);
  EXPECT_TRUE(f->sections().empty());
  auto notes = f->notes();
  ASSERT_TRUE(notes.has_value());
  EXPECT_TRUE(notes->empty());
}

}  // namespace
}  // namespace kmr::kmod

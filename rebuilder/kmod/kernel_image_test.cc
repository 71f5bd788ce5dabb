#include "rebuilder/kmod/kernel_image.h"

#include <gtest/gtest.h>

#include <string>

#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/kmod/test_util.h"

namespace kmr::kmod {
namespace {

using testing::sh;
using testing::tmpdir;

// Three modules, their root computed by the independent Python script
// (levels + hex, and the 36-byte LE section file).
MerkleRoot python_root(const std::string& endian) {
  const std::string out = sh(
      "mkdir -p tree && cd tree && printf 'a\\n' > a.ko && printf 'bb\\n' > b.ko && printf 'ccc\\n' > c.ko && "
      "printf 'a.o\\nb.o\\nc.o\\n' > modules.order && python3 '" +
      testing::python_merkle_script() + "' root --endian " + endian + " --section ../root-" + endian +
      ".bin modules.order");
  MerkleRoot r;
  r.levels = static_cast<std::uint32_t>(std::stoul(out.substr(0, out.find(' '))));
  const auto h = from_hex(out.substr(out.find(' ') + 1, 64));
  EXPECT_TRUE(h.has_value());
  std::copy(h->begin(), h->end(), r.hash.begin());
  return r;
}

// A vmlinux-like ELF linked with a blank .module_hashes, then patched the
// way the kernel build does (objcopy --update-section).
std::string make_vmlinux() {
  sh("echo 'int main(void){return 0;}' > k.c && gcc -o vmlinux.blank k.c && head -c 36 /dev/zero > blank.bin && "
     "objcopy --add-section .module_hashes=blank.bin --set-section-flags .module_hashes=alloc,readonly vmlinux.blank && "
     "cp vmlinux.blank vmlinux && objcopy --update-section .module_hashes=root-little.bin vmlinux");
  return tmpdir() + "/vmlinux";
}

TEST(KernelImageTest, ElfSection) {
  const MerkleRoot want = python_root("little");
  auto r = root_from_image_file(make_vmlinux());
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_TRUE(r->present);
  EXPECT_EQ(r->source, "elf-section");
  EXPECT_EQ(r->compression, "none");
  EXPECT_EQ(r->root, want);
  EXPECT_EQ(want.levels, 2u);
}

TEST(KernelImageTest, BigEndianElfSection) {
  const MerkleRoot want = python_root("big");
  sh("objcopy -I binary -O elf64-big --rename-section .data=.module_hashes root-big.bin vmlinux-be");
  auto r = root_from_image_file(tmpdir() + "/vmlinux-be");
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->root, want);
  EXPECT_FALSE(r->little_endian);
  sh("objcopy -I binary -O elf32-big --rename-section .data=.module_hashes root-big.bin vmlinux-be32");
  auto r32 = root_from_image_file(tmpdir() + "/vmlinux-be32");
  ASSERT_TRUE(r32.has_value()) << r32.error().to_string();
  EXPECT_EQ(r32->root, want);
}

TEST(KernelImageTest, CompressedVmlinuxAndBzImage) {
  const MerkleRoot want = python_root("little");
  make_vmlinux();
  sh("xz -c --check=crc32 vmlinux > vmlinux.xz && gzip -n -c vmlinux > vmlinux.gz");
  for (const char* name : {"vmlinux.xz", "vmlinux.gz"}) {
    auto r = root_from_image_file(tmpdir() + "/" + name);
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
    EXPECT_EQ(r->source, "elf-section");
    EXPECT_EQ(r->compression, std::string(name) == "vmlinux.xz" ? "xz" : "gzip");
    EXPECT_EQ(r->root, want);
  }
  // bzImage: setup sectors + zstd payload (with the appended size).
  const ByteVector payload = [&] {
    sh("zstd -q -19 -c vmlinux > payload.zst && printf '\\001\\002\\003\\004' >> payload.zst");
    return *read_file(tmpdir() + "/payload.zst", 1 << 30);
  }();
  ByteVector img(5 * 512, 0);
  img[0x1f1] = 4;
  img[0x202] = 'H'; img[0x203] = 'd'; img[0x204] = 'r'; img[0x205] = 'S';
  img[0x206] = 0x0f; img[0x207] = 0x02;
  for (int i = 0; i < 4; ++i) img[0x24c + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(payload.size() >> (8 * i));
  img.insert(img.end(), payload.begin(), payload.end());
  auto b = root_from_image(img, "bzImage");
  ASSERT_TRUE(b.has_value()) << b.error().to_string();
  EXPECT_EQ(b->source, "bzimage-zstd");
  EXPECT_EQ(b->root, want);
}

TEST(KernelImageTest, RawImageSearch) {
  const MerkleRoot want = python_root("little");
  sh("head -c 300000 /dev/urandom > raw && cat root-little.bin >> raw && head -c 5000 /dev/urandom >> raw && "
     "gzip -n -c raw > Image.gz");
  auto absent = root_from_image_file(tmpdir() + "/raw");
  ASSERT_TRUE(absent.has_value());
  EXPECT_FALSE(absent->present);
  EXPECT_EQ(absent->source, "absent");
  ImageOptions o;
  o.expected = want;
  for (const char* name : {"raw", "Image.gz"}) {
    auto r = root_from_image_file(tmpdir() + "/" + name, o);
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
    EXPECT_TRUE(r->present);
    EXPECT_EQ(r->source, "search");
    EXPECT_EQ(r->offset, 300000u);
    EXPECT_EQ(r->root, want);
  }
  MerkleRoot other = want;
  other.hash[3] ^= 1;
  o.expected = other;
  auto miss = root_from_image_file(tmpdir() + "/raw", o);
  ASSERT_TRUE(miss.has_value());
  EXPECT_FALSE(miss->present);
}

TEST(KernelImageTest, ElfWithoutSectionIsAbsent) {
  sh("echo 'int main(void){return 0;}' > n.c && gcc -o nohashes n.c");
  auto r = root_from_image_file(tmpdir() + "/nohashes");
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->present);
  EXPECT_EQ(r->source, "absent");
}

TEST(KernelImageTest, WrongSectionSize) {
  sh("echo 'int main(void){return 0;}' > w.c && gcc -o w w.c && head -c 35 /dev/zero > s35 && "
     "objcopy --add-section .module_hashes=s35 --set-section-flags .module_hashes=alloc,readonly w");
  auto r = root_from_image_file(tmpdir() + "/w");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().to_string(), tmpdir() + "/w: section .module_hashes has size 35, expected 36");
}

}  // namespace
}  // namespace kmr::kmod

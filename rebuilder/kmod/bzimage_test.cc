#include "rebuilder/kmod/bzimage.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "rebuilder/base/file.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/kmod/elf.h"

namespace kmr::kmod {
namespace {

std::string tmpdir() {
  const char* t = std::getenv("TEST_TMPDIR");
  return t != nullptr ? t : "/tmp";
}

void put32(ByteVector& v, std::size_t off, std::uint32_t x) {
  for (int i = 0; i < 4; ++i) v[off + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(x >> (8 * i));
}

// A bzImage shell around `payload`: setup sectors, HdrS, protocol 2.15,
// payload right after 0x100 bytes of "decompressor" code.
ByteVector make_bzimage(const ByteVector& payload, std::uint8_t setup_sects) {
  const std::size_t eff = setup_sects == 0 ? 4 : setup_sects;
  ByteVector img((eff + 1) * 512 + 0x100, 0x90);
  img[0x1f1] = setup_sects;
  img[0x1fe] = 0x55;
  img[0x1ff] = 0xaa;
  img[0x202] = 'H';
  img[0x203] = 'd';
  img[0x204] = 'r';
  img[0x205] = 'S';
  img[0x206] = 0x0f;
  img[0x207] = 0x02;
  put32(img, 0x248, 0x100);
  put32(img, 0x24c, static_cast<std::uint32_t>(payload.size()));
  img.insert(img.end(), payload.begin(), payload.end());
  img.resize(img.size() + 64, 0);  // what follows the payload in real images
  return img;
}

// A real ELF compressed by a real tool, with the size appended as the kernel's
// Makefile does (size_append).
ByteVector compressed_elf(const std::string& cmd, ByteVector* elf_out) {
  auto r = run_subprocess({"sh", "-c",
                           "set -e; cd '" + tmpdir() + "'; echo 'int main(void){return 0;}' > m.c; gcc -o m.elf m.c; " +
                               cmd + " < m.elf > m.z; s=$(stat -c %s m.elf); "
                               "printf \"$(printf '\\\\%03o\\\\%03o\\\\%03o\\\\%03o' $((s&255)) $(((s>>8)&255)) $(((s>>16)&255)) $(((s>>24)&255)))\" >> m.z"});
  EXPECT_TRUE(r.has_value() && r->success()) << (r ? r->err : "");
  *elf_out = *read_file(tmpdir() + "/m.elf", 64 << 20);
  return *read_file(tmpdir() + "/m.z", 64 << 20);
}

TEST(BzImageTest, EveryKernelCodec) {
  const std::pair<const char*, const char*> tools[] = {
      {"gzip -n -9", "gzip"}, {"bzip2 -9", "bzip2"}, {"xz --format=lzma -9", "lzma"},
      {"xz --check=crc32 --x86 --lzma2=dict=32MiB", "xz"}, {"lz4 -l -9", "lz4"}, {"zstd -22 --ultra", "zstd"}};
  for (const auto& [cmd, name] : tools) {
    ByteVector elf;
    const ByteVector payload = compressed_elf(cmd, &elf);
    for (std::uint8_t sects : {std::uint8_t{0}, std::uint8_t{27}}) {
      const ByteVector img = make_bzimage(payload, sects);
      ASSERT_TRUE(is_bzimage(img));
      auto h = parse_bzimage_header(img, "bzImage");
      ASSERT_TRUE(h.has_value()) << h.error().to_string();
      EXPECT_EQ(h->setup_sects, sects == 0 ? 4 : sects);
      EXPECT_EQ(h->payload_start, (h->setup_sects + 1u) * 512u + 0x100u);
      auto p = extract_bzimage_payload(img, "bzImage", 1 << 30);
      ASSERT_TRUE(p.has_value()) << name << ": " << p.error().to_string();
      EXPECT_EQ(archive::codec_name(p->codec), name);
      EXPECT_TRUE(p->vmlinux == elf) << name;
      EXPECT_TRUE(ElfFile::parse(p->vmlinux).has_value());
    }
  }
}

TEST(BzImageTest, PayloadBeyondEof) {
  ByteVector img = make_bzimage(ByteVector(100, 1), 0);
  put32(img, 0x24c, 0x100000);
  auto h = parse_bzimage_header(img, "vmlinuz");
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().to_string(), "vmlinuz: payload (offset 2816, length 1048576) beyond end of file (size " +
                                       std::to_string(img.size()) + ")");
  put32(img, 0x248, 0xffffffff);
  put32(img, 0x24c, 0xffffffff);
  EXPECT_FALSE(parse_bzimage_header(img, "vmlinuz").has_value());
}

TEST(BzImageTest, BadHeaders) {
  EXPECT_EQ(parse_bzimage_header(ByteVector(100), "x").error().to_string(), "x: not a bzImage (no HdrS magic at 0x202)");
  ByteVector img = make_bzimage(ByteVector(10, 1), 0);
  ByteVector shortimg(img.begin(), img.begin() + 0x220);
  EXPECT_EQ(parse_bzimage_header(shortimg, "x").error().to_string(), "x: truncated setup header (544 bytes, need 592)");
  img[0x206] = 0x04;
  EXPECT_EQ(parse_bzimage_header(img, "x").error().to_string(), "x: boot protocol 2.4 has no payload fields (needs 2.08)");
  img[0x206] = 0x0f;
  put32(img, 0x24c, 0);
  EXPECT_EQ(parse_bzimage_header(img, "x").error().to_string(), "x: empty payload (payload_length 0)");
}

TEST(BzImageTest, UnknownCompressionAndBomb) {
  auto p = extract_bzimage_payload(make_bzimage(ByteVector{0x89, 'L', 'Z', 'O', 0, 0}, 0), "x", 1 << 20);
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().to_string(), "x: lzo-compressed payloads are not supported");
  auto q = extract_bzimage_payload(make_bzimage(ByteVector{1, 2, 3, 4, 5, 6, 7, 8, 9}, 0), "x", 1 << 20);
  ASSERT_FALSE(q.has_value());
  EXPECT_EQ(q.error().to_string(), "x: payload compression not recognised (starts with 0102030405060708)");
  ByteVector elf;
  const ByteVector payload = compressed_elf("zstd -19", &elf);
  auto b = extract_bzimage_payload(make_bzimage(payload, 0), "x", 1000);
  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(b.error().code(), ErrorCode::kLimitExceeded);
  EXPECT_EQ(b.error().to_string(), "x: zstd payload: decompressed size exceeds 1000 bytes");
}

}  // namespace
}  // namespace kmr::kmod

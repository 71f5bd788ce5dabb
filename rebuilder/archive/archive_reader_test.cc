#include "rebuilder/archive/archive_reader.h"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kmr::archive {
namespace {

// Builds archives with libarchive's writer: lets the tests create entries a
// careful tool would refuse (absolute paths, "..", devices, duplicates).
struct Member {
  std::string path;
  unsigned type = AE_IFREG;
  std::string content;
  std::string link;      // symlink target
  std::string hardlink;  // hardlink target
};

ByteVector make_archive(const std::vector<Member>& members, int format = ARCHIVE_FORMAT_TAR_PAX_RESTRICTED,
                        int filter = ARCHIVE_FILTER_NONE) {
  struct archive* a = archive_write_new();
  if (format == ARCHIVE_FORMAT_AR_GNU) {
    archive_write_set_format_ar_svr4(a);
  } else if (format == ARCHIVE_FORMAT_CPIO_SVR4_NOCRC) {
    archive_write_set_format_cpio_newc(a);
  } else {
    archive_write_set_format(a, format);
  }
  if (filter != ARCHIVE_FILTER_NONE) archive_write_add_filter(a, filter);
  archive_write_set_bytes_per_block(a, 512);
  std::vector<char> buf(64 << 20);
  size_t used = 0;
  EXPECT_EQ(archive_write_open_memory(a, buf.data(), buf.size(), &used), ARCHIVE_OK);
  for (const Member& m : members) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, m.path.c_str());
    archive_entry_set_filetype(e, m.type);
    archive_entry_set_perm(e, 0644);
    if (!m.link.empty()) archive_entry_set_symlink(e, m.link.c_str());
    if (!m.hardlink.empty()) archive_entry_set_hardlink(e, m.hardlink.c_str());
    if (m.type == AE_IFCHR) archive_entry_set_rdev(e, 0x0101);
    archive_entry_set_size(e, static_cast<la_int64_t>(m.content.size()));
    archive_write_header(a, e);
    if (!m.content.empty()) archive_write_data(a, m.content.data(), m.content.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return ByteVector(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(used));
}

ReaderOptions opts() {
  ReaderOptions o;
  o.name = "t.tar";
  return o;
}

struct Seen {
  std::string path;
  EntryType type;
  std::string content;
  std::string link;
};

Result<std::vector<Seen>> list(Bytes data, const ReaderOptions& o = opts()) {
  std::vector<Seen> out;
  auto r = read_archive_memory(data, o, [&](const Entry& e, MemberStream& s) -> Result<void> {
    KMR_ASSIGN_OR_RETURN(auto c, s.read_all(1 << 20));
    out.push_back({e.path, e.type, std::string(c.begin(), c.end()), e.link_target});
    return ok();
  });
  if (!r) return std::move(r).error();
  return out;
}

std::string error_of(Bytes data, const ReaderOptions& o = opts()) {
  auto r = list(data, o);
  return r ? std::string("no error") : r.error().to_string();
}

TEST(ArchiveReader, ReadsMembersOfCompressedTar) {
  for (int filter : {ARCHIVE_FILTER_NONE, ARCHIVE_FILTER_GZIP, ARCHIVE_FILTER_XZ, ARCHIVE_FILTER_ZSTD}) {
    auto tar = make_archive({{"./usr/", AE_IFDIR, "", "", ""},
                             {"./usr/a.ko", AE_IFREG, "hello", "", ""},
                             {"./usr/b", AE_IFLNK, "", "a.ko", ""},
                             {"./usr/c.ko", AE_IFREG, "", "", "usr/a.ko"}},
                            ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, filter);
    auto r = list(tar);
    ASSERT_TRUE(r) << r.error().to_string();
    ASSERT_EQ(r->size(), 4u);
    EXPECT_EQ((*r)[0].path, "usr");
    EXPECT_EQ((*r)[0].type, EntryType::kDirectory);
    EXPECT_EQ((*r)[1].path, "usr/a.ko");
    EXPECT_EQ((*r)[1].content, "hello");
    EXPECT_EQ((*r)[2].type, EntryType::kSymlink);
    EXPECT_EQ((*r)[2].link, "a.ko");
    EXPECT_EQ((*r)[3].type, EntryType::kHardlink);
    EXPECT_EQ((*r)[3].link, "usr/a.ko");
  }
}

TEST(ArchiveReader, ReadsCpioNewcAndAr) {
  auto cpio = make_archive({{"./boot/vmlinuz", AE_IFREG, "IMG", "", ""}}, ARCHIVE_FORMAT_CPIO_SVR4_NOCRC);
  auto r = list(cpio);
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].path, "boot/vmlinuz");
  EXPECT_EQ((*r)[0].content, "IMG");

  auto ar = make_archive({{"debian-binary", AE_IFREG, "2.0\n", "", ""}}, ARCHIVE_FORMAT_AR_GNU);
  r = list(ar);
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].path, "debian-binary");
  EXPECT_EQ((*r)[0].content, "2.0\n");
}

TEST(ArchiveReader, RejectsAbsolutePath) {
  auto tar = make_archive({{"/etc/passwd", AE_IFREG, "x", "", ""}});
  EXPECT_EQ(error_of(tar), "t.tar: absolute path '/etc/passwd'");
}

TEST(ArchiveReader, RejectsDotDot) {
  auto tar = make_archive({{"usr/../../etc/passwd", AE_IFREG, "x", "", ""}});
  EXPECT_EQ(error_of(tar), "t.tar: '..' component in path 'usr/../../etc/passwd'");
}

TEST(ArchiveReader, RejectsSymlinkOutside) {
  auto tar = make_archive({{"usr/lib/x", AE_IFLNK, "", "../../../etc/shadow", ""}});
  EXPECT_EQ(error_of(tar), "t.tar: usr/lib/x: symlink target '../../../etc/shadow' points outside the archive");
}

TEST(ArchiveReader, FlagsAbsoluteSymlink) {
  auto tar = make_archive({{"lib/modules/6.1/build", AE_IFLNK, "", "/usr/src/linux", ""}});
  ArchiveStats stats;
  auto r = read_archive_memory(tar, opts(), [](const Entry& e, MemberStream&) -> Result<void> {
    EXPECT_TRUE(e.absolute_symlink);
    return ok();
  });
  ASSERT_TRUE(r);
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_EQ(r->warnings[0], "lib/modules/6.1/build: absolute symlink target '/usr/src/linux'");
}

TEST(ArchiveReader, RejectsHardlinkOutside) {
  auto tar = make_archive({{"a", AE_IFREG, "", "", "../etc/passwd"}});
  EXPECT_EQ(error_of(tar), "t.tar: a: hard link target: '..' component in path '../etc/passwd'");
  tar = make_archive({{"a", AE_IFREG, "", "", "b"}});
  EXPECT_EQ(error_of(tar), "t.tar: a: hard link to 'b' which is not an earlier member");
}

TEST(ArchiveReader, RejectsDeviceNode) {
  auto tar = make_archive({{"dev/sda", AE_IFCHR, "", "", ""}});
  EXPECT_EQ(error_of(tar), "t.tar: dev/sda: character device not allowed");
  tar = make_archive({{"dev/fifo", AE_IFIFO, "", "", ""}});
  EXPECT_EQ(error_of(tar), "t.tar: dev/fifo: fifo not allowed");
}

TEST(ArchiveReader, RejectsDuplicate) {
  auto tar = make_archive({{"a", AE_IFREG, "1", "", ""}, {"./a", AE_IFREG, "2", "", ""}});
  EXPECT_EQ(error_of(tar), "t.tar: duplicate entry 'a'");
}

TEST(ArchiveReader, CapsCompressionRatio) {
  auto tar = make_archive({{"zeros", AE_IFREG, std::string(48 << 20, '\0'), "", ""}},
                          ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_XZ);
  ASSERT_LT(tar.size(), 20000u);
  ReaderOptions o = opts();
  auto r = read_archive_memory(tar, o, [](const Entry&, MemberStream&) -> Result<void> { return ok(); });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kLimitExceeded);
  EXPECT_NE(r.error().message().find("t.tar: compression ratio exceeds 1000"), std::string::npos)
      << r.error().message();
}

TEST(ArchiveReader, CapsMemberAndTotalSize) {
  auto tar = make_archive({{"a", AE_IFREG, std::string(5000, 'a'), "", ""},
                           {"b", AE_IFREG, std::string(5000, 'b'), "", ""}});
  ReaderOptions o = opts();
  o.limits.max_member_bytes = 4096;
  EXPECT_EQ(error_of(tar, o), "t.tar: a: member larger than 4096 bytes");
  o = opts();
  o.limits.max_total_bytes = 8000;
  EXPECT_EQ(error_of(tar, o), "t.tar: decompressed size exceeds 8000 bytes");
  o = opts();
  o.limits.max_members = 1;
  EXPECT_EQ(error_of(tar, o), "t.tar: more than 1 members");
}

TEST(ArchiveReader, TruncatedArchiveIsAnError) {
  auto tar = make_archive({{"a", AE_IFREG, std::string(100000, 'x'), "", ""}});
  tar.resize(tar.size() / 2);
  auto r = list(tar);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message().rfind("t.tar: a: ", 0), 0u) << r.error().message();
  EXPECT_NE(r.error().message().find("runcated"), std::string::npos) << r.error().message();
  // Truncated inside the compressed stream.
  auto gz = make_archive({{"a", AE_IFREG, std::string(100000, 'x'), "", ""}}, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED,
                         ARCHIVE_FILTER_GZIP);
  gz.resize(gz.size() - 40);
  r = list(gz);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message().rfind("t.tar: ", 0), 0u);
}

TEST(ArchiveReader, TruncatedAndCorruptXz) {
  auto xz = make_archive({{"a", AE_IFREG, std::string(200000, 'x') + std::string(200000, 'y'), "", ""}},
                         ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_XZ);
  ByteVector cut(xz.begin(), xz.end() - 30);
  auto r = list(cut);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message().rfind("t.tar: ", 0), 0u) << r.error().message();
  ByteVector bad = xz;
  bad[bad.size() / 2] ^= 0x55;
  r = list(bad);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("xz: corrupt data"), std::string::npos) << r.error().message();
}

TEST(ArchiveReader, TruncatedCompressedTails) {
  for (int filter : {ARCHIVE_FILTER_GZIP, ARCHIVE_FILTER_ZSTD, ARCHIVE_FILTER_BZIP2}) {
    auto c = make_archive({{"a", AE_IFREG, "short", "", ""}}, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, filter);
    ByteVector cut(c.begin(), c.end() - 4);  // the stream's check/trailer
    auto r = list(cut);
    EXPECT_FALSE(r) << "filter " << filter;
    if (!r) {
      EXPECT_EQ(r.error().message().rfind("t.tar: ", 0), 0u) << r.error().message();
    }
    ByteVector trailing = c;
    trailing.push_back('!');
    r = list(trailing);
    EXPECT_FALSE(r) << "filter " << filter << ": trailing garbage accepted";
  }
}

TEST(ArchiveReader, GarbageIsNotAnArchive) {
  std::string junk(1000, 'j');
  auto r = list(as_bytes(junk));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message().rfind("t.tar: not a readable archive", 0), 0u) << r.error().message();
}

TEST(ArchiveReader, NestedArchiveStreams) {
  auto inner = make_archive({{"./x", AE_IFREG, "inner", "", ""}}, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED,
                            ARCHIVE_FILTER_XZ);
  auto outer = make_archive({{"data.tar.xz", AE_IFREG, std::string(inner.begin(), inner.end()), "", ""}},
                            ARCHIVE_FORMAT_AR_GNU);
  std::string got;
  auto r = read_archive_memory(outer, opts(), [&](const Entry&, MemberStream& s) -> Result<void> {
    ReaderOptions o;
    o.name = "t.tar: data.tar.xz";
    KMR_TRY(read_archive(s, o, [&](const Entry& e, MemberStream& s2) -> Result<void> {
      KMR_ASSIGN_OR_RETURN(auto c, s2.read_all(100));
      got = e.path + "=" + std::string(c.begin(), c.end());
      return ok();
    }));
    return ok();
  });
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(got, "x=inner");
}

TEST(ArchiveReader, DecompressBytes) {
  auto xz = make_archive({{"a", AE_IFREG, "abc", "", ""}}, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_XZ);
  auto plain = make_archive({{"a", AE_IFREG, "abc", "", ""}});
  auto r = decompress_bytes(xz, 1 << 20, "x");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(*r, plain);
  r = decompress_bytes(xz, 100, "x");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "x: decompressed size exceeds 100 bytes");
}

TEST(ArchivePath, Normalise) {
  EXPECT_EQ(*normalise_member_path("./a//b/./c/"), "a/b/c");
  EXPECT_EQ(*normalise_member_path("./"), "");
  EXPECT_FALSE(normalise_member_path(""));
  EXPECT_TRUE(symlink_stays_inside("a/b/c", "../d"));
  EXPECT_TRUE(symlink_stays_inside("a/b/c", "../../d"));
  EXPECT_FALSE(symlink_stays_inside("a/b/c", "../../../d"));
  EXPECT_FALSE(symlink_stays_inside("c", ".."));
}

}  // namespace
}  // namespace kmr::archive

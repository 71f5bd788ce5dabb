#include "server/members.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "attest/base64.h"
#include "rebuilder/archive/archive_reader.h"
#include "rebuilder/archive/deb.h"
#include "rebuilder/archive/decompress.h"
#include "rebuilder/archive/nar.h"
#include "rebuilder/archive/narinfo.h"
#include "rebuilder/archive/rpm.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/text.h"
#include "rebuilder/kmod/authenticode.h"
#include "rebuilder/kmod/trailer.h"

namespace kmr::server {

namespace {

std::string hex_of(const Digest256& d) { return to_hex(Bytes(d.data(), d.size())); }

bool is_module(const std::string& path) {
  const std::string b = path_basename(path);
  for (std::string_view s : {".ko", ".ko.zst", ".ko.xz", ".ko.gz"})
    if (b.ends_with(s)) return true;
  return false;
}

bool is_image(const std::string& path) {
  const std::string b = path_basename(path);
  for (std::string_view p : {"vmlinuz", "vmlinux", "bzImage", "zImage", "Image"})
    if (b.rfind(p, 0) == 0) return true;
  return false;
}

// Collects hashes up to the cap.
class Collector {
 public:
  explicit Collector(const MemberLimits& limits) : limits_(limits) {}
  void add(MemberHash h) {
    if (out_.hashes.size() >= limits_.max_hashes) {
      out_.truncated = true;
      return;
    }
    out_.hashes.push_back(std::move(h));
  }
  void add_all(std::vector<MemberHash> v) {
    for (auto& h : v) add(std::move(h));
  }
  bool full() const { return out_.hashes.size() >= limits_.max_hashes; }

  // The visitor the archive readers call: kernel members read whole, others streamed.
  archive::Visitor visitor(const std::string& prefix) {
    return [this, prefix](const archive::Entry& e, archive::MemberStream& s) -> Result<void> {
      if (e.type != archive::EntryType::kFile) return ok();
      if (full()) {
        out_.truncated = true;
        return ok();
      }
      const std::string path = prefix.empty() ? e.path : (e.path.empty() ? prefix : prefix + "/" + e.path);
      if (is_kernel_member(e.path) && e.size <= limits_.max_member_bytes) {
        KMR_ASSIGN_OR_RETURN(ByteVector data, s.read_all(limits_.max_member_bytes));
        add_all(member_hashes(path, Bytes(data.data(), data.size())));
        return ok();
      }
      Sha256 h;
      for (;;) {
        KMR_ASSIGN_OR_RETURN(Bytes b, s.next());
        if (b.empty()) break;
        h.update(b);
      }
      add({hex_of(h.finish()), path, "file"});
      return ok();
    };
  }
  MemberIndex take() { return std::move(out_); }

 private:
  const MemberLimits& limits_;
  MemberIndex out_;
};

std::uint16_t le16(Bytes b, std::size_t off) { return static_cast<std::uint16_t>(b[off] | (b[off + 1] << 8)); }

// The PE checksum (as sbsigntool and the Windows loader compute it): 16-bit one's-complement-style
// sum of the file with the checksum field taken as zero, plus the file length.
std::uint32_t pe_checksum(Bytes image, std::uint64_t checksum_offset) {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i + 1 < image.size(); i += 2) {
    if (i >= checksum_offset && i < checksum_offset + 4) continue;
    sum += le16(image, i);
    sum = (sum & 0xffff) + (sum >> 16);
  }
  if (image.size() % 2) {
    sum += image[image.size() - 1];
    sum = (sum & 0xffff) + (sum >> 16);
  }
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint32_t>(sum + image.size());
}

void put_le32(ByteVector& v, std::uint64_t off, std::uint32_t x) {
  for (int i = 0; i < 4; ++i) v[off + i] = static_cast<std::uint8_t>(x >> (8 * i));
}

// Decompresses a NAR (FileHash checked on the way) into `out` with at most `cap` bytes.
Result<void> decompress_nar(const std::string& nar, const archive::NarInfo& info, const std::string& out,
                            std::uint64_t cap) {
  archive::Codec codec = archive::Codec::kNone;
  if (info.compression != "none") {
    auto c = archive::codec_from_name(info.compression);
    if (!c || info.compression == "br") return unsupported("NAR compression '" + info.compression + "' not supported");
    codec = *c;
  }
  KMR_ASSIGN_OR_RETURN(auto file_hash, archive::decode_sha256_field("FileHash", info.file_hash));
  int in = ::open(nar.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return io_error(nar + ": cannot open");
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> o(std::fopen(out.c_str(), "wb"), std::fclose);
  if (!o) {
    ::close(in);
    return io_error(out + ": cannot create");
  }
  auto sink = [&](Bytes b) -> Result<void> {
    if (std::fwrite(b.data(), 1, b.size(), o.get()) != b.size()) return io_error(out + ": write failed");
    return ok();
  };
  archive::DecompressOptions dopt;
  dopt.max_output = cap;
  Result<void> r = ok();
  if (codec == archive::Codec::kNone) {
    std::vector<std::uint8_t> buf(1 << 20);
    for (;;) {
      ssize_t n = ::read(in, buf.data(), buf.size());
      if (n < 0) {
        r = io_error(nar + ": read error");
        break;
      }
      if (n == 0) break;
      if (auto w = sink(Bytes(buf.data(), static_cast<std::size_t>(n))); !w) {
        r = std::move(w);
        break;
      }
    }
  } else {
    r = archive::decompress_fd(in, codec, sink, dopt);
  }
  ::close(in);
  if (!r) return std::move(r).error();
  if (std::fflush(o.get()) != 0) return io_error(out + ": write failed");
  KMR_ASSIGN_OR_RETURN(Digest256 fh, sha256_file(nar));
  if (!std::equal(fh.begin(), fh.end(), file_hash.begin(), file_hash.end()))
    return Error(ErrorCode::kVerificationFailed, path_basename(nar) + ": FileHash does not match the narinfo");
  return ok();
}

Result<MemberIndex> index_narinfo(const std::string& path, const std::string& work_dir, const MemberLimits& limits,
                                  const std::string& nar_path) {
  KMR_ASSIGN_OR_RETURN(std::string text, read_text_file(path, 1 << 20));
  KMR_ASSIGN_OR_RETURN(archive::NarInfo info, archive::parse_narinfo(text, path_basename(path), limits.archive));
  KMR_ASSIGN_OR_RETURN(auto nar_hash, info.nar_hash_bytes());
  if (info.url.empty() || info.url.front() == '/' || info.url.find("..") != std::string::npos)
    return malformed(path_basename(path) + ": URL is not a relative path inside the cache");
  const std::string nar =
      nar_path.empty() ? (std::filesystem::path(path).parent_path() / info.url).string() : nar_path;
  const std::string plain = work_dir + "/" + path_basename(path) + ".nar";
  KMR_TRY(decompress_nar(nar, info, plain, std::min<std::uint64_t>(info.nar_size, limits.archive.max_total_bytes)));
  Collector c(limits);
  c.add({to_hex(Bytes(nar_hash.data(), nar_hash.size())), info.store_path, "nar"});
  archive::ReaderOptions ro;
  ro.name = path_basename(nar);
  ro.limits = limits.archive;
  KMR_ASSIGN_OR_RETURN(auto fs, archive::FileStream::open(plain));
  auto res = archive::read_nar(*fs, ro, c.visitor(info.store_path));
  std::error_code ec;
  std::filesystem::remove(plain, ec);
  if (!res) return std::move(res).error();
  if (!std::equal(res->nar_hash.begin(), res->nar_hash.end(), nar_hash.begin(), nar_hash.end()) ||
      res->nar_size != info.nar_size)
    return Error(ErrorCode::kVerificationFailed, path_basename(path) + ": NarHash/NarSize of the NAR do not match");
  return c.take();
}

}  // namespace

bool is_kernel_member(const std::string& path) { return is_module(path) || is_image(path); }

ByteVector strip_authenticode(Bytes image) {
  auto layout = kmod::parse_pe_layout(image, "image");
  if (!layout || !*layout) return {};
  const kmod::PeLayout& l = **layout;
  if (l.cert_table_offset == 0 || l.cert_table_size == 0 || l.cert_table_offset > image.size() ||
      l.cert_dir_offset + 8 > l.cert_table_offset || l.checksum_offset + 4 > l.cert_table_offset)
    return {};
  ByteVector out(image.begin(), image.begin() + static_cast<std::ptrdiff_t>(l.cert_table_offset));
  put_le32(out, l.cert_dir_offset, 0);
  put_le32(out, l.cert_dir_offset + 4, 0);
  put_le32(out, l.checksum_offset, pe_checksum(Bytes(out.data(), out.size()), l.checksum_offset));
  return out;
}

std::vector<MemberHash> member_hashes(const std::string& path, Bytes data) {
  std::vector<MemberHash> out;
  out.push_back({hex_of(sha256(data)), path, "file"});
  ByteVector plain;
  Bytes content = data;
  const archive::Codec codec = archive::codec_from_suffix(path);
  if (codec != archive::Codec::kNone && archive::detect_codec(data.subspan(0, std::min<std::size_t>(data.size(), 64))) == codec) {
    // A compressed module or image: the hash of the file as decompressed by zstd -d, xz -d, gzip -d.
    auto d = archive::decompress_all(data, 1ull << 30);
    if (!d) return out;
    plain = std::move(d).value();
    content = Bytes(plain.data(), plain.size());
    out.push_back({hex_of(sha256(content)), path, "decompressed"});
  }
  if (is_module(path)) {
    auto t = kmod::parse_trailer(content, path);
    if (t && t->kind != kmod::TrailerKind::kNone && t->content_length < content.size())
      out.push_back({hex_of(sha256(content.subspan(0, t->content_length))), path, "stripped"});
  } else {
    ByteVector stripped = strip_authenticode(content);
    if (!stripped.empty()) out.push_back({hex_of(sha256(Bytes(stripped.data(), stripped.size()))), path, "stripped"});
  }
  return out;
}

Result<MemberIndex> index_package(const std::string& path, const std::string& filename, const std::string& work_dir,
                                  const MemberLimits& limits, const std::string& nar_path) {
  if (filename.ends_with(".narinfo")) return index_narinfo(path, work_dir, limits, nar_path);
  Collector c(limits);
  archive::ReaderOptions ro;
  ro.name = filename;
  ro.limits = limits.archive;
  if (filename.ends_with(".deb") || filename.ends_with(".rpm")) {
    KMR_ASSIGN_OR_RETURN(auto fs, archive::FileStream::open(path));
    archive::Visitor v = c.visitor("");
    if (filename.ends_with(".deb")) {
      KMR_TRY(archive::read_deb(*fs, ro, &v));
    } else {
      KMR_TRY(archive::read_rpm(*fs, ro, &v));
    }
    return c.take();
  }
  ro.format = archive::Format::kTar;
  KMR_TRY(archive::read_archive_file(path, ro, c.visitor("")));
  return c.take();
}

std::string nar_hash_hex(const std::string& text) {
  std::string t = text;
  if (t.rfind("sha256:", 0) == 0) t = t.substr(7);
  if (t.rfind("sha256-", 0) == 0) {
    auto raw = attest::base64_decode(t.substr(7));
    return raw && raw->size() == 32 ? to_hex(Bytes(raw->data(), raw->size())) : "";
  }
  if (is_sha256_hex(t)) return ascii_lower(t);
  if (t.size() == 52) {
    auto raw = archive::nix32_decode(t, 32);
    if (raw) return to_hex(Bytes(raw->data(), raw->size()));
  }
  return "";
}

}  // namespace kmr::server

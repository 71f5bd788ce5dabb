#include "rebuilder/kmod/image_mask.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <tuple>

#include "rebuilder/archive/decompress.h"
#include "rebuilder/base/checked_math.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/kmod/authenticode.h"
#include "rebuilder/kmod/bzimage.h"
#include "rebuilder/kmod/elf.h"
#include "rebuilder/kmod/module_sig.h"

namespace kmr::kmod {

std::string_view mask_kind_name(MaskKind k) {
  switch (k) {
    case MaskKind::kCertificate: return "certificate";
    case MaskKind::kBuildId: return "build-id";
    case MaskKind::kAuthenticode: return "authenticode";
    case MaskKind::kChecksum: return "checksum";
  }
  return "certificate";
}

bool is_kernel_image_name(std::string_view base) {
  return base == "vmlinux" || base.rfind("vmlinux-", 0) == 0 || base == "vmlinux.xz" || base == "vmlinux.gz" ||
         base == "vmlinux.zst" || base == "vmlinuz" || base.rfind("vmlinuz-", 0) == 0 || base == "bzImage" ||
         base == "Image";
}

namespace {

constexpr std::string_view kCertificateTable = "certificate-table";

std::uint64_t read_word(Bytes b, std::uint64_t off, std::size_t n, bool le) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t{b[off + (le ? i : n - 1 - i)]} << (8 * i);
  return v;
}

// File offset of `len` bytes at virtual address `addr`, through the sections.
std::optional<std::uint64_t> file_offset(const ElfFile& elf, std::uint64_t addr, std::uint64_t len) {
  for (const auto& s : elf.sections()) {
    if (s.type == kShtNobits || s.type == kShtNull || s.addr == 0) continue;
    if (addr >= s.addr && addr - s.addr <= s.size && len <= s.size - (addr - s.addr)) return s.offset + (addr - s.addr);
  }
  return std::nullopt;
}

// Total length of the DER SEQUENCE at `at` (long-form length, as every
// certificate has), 0 when there is none inside `b`.
std::uint64_t der_length(Bytes b, std::uint64_t at) {
  if (at >= b.size() || b.size() - at < 4 || b[at] != 0x30) return 0;
  const std::uint8_t l0 = b[at + 1];
  if (l0 < 0x81 || l0 > 0x84) return 0;
  const std::size_t n = l0 & 0x7f;
  if (b.size() - at < 2 + n) return 0;
  std::uint64_t len = 0;
  for (std::size_t i = 0; i < n; ++i) len = (len << 8) | b[at + 2 + i];
  return len > b.size() - at - 2 - n ? 0 : 2 + n + len;
}

struct Symbols {
  std::optional<std::uint64_t> list, module_start, module_end, module_size;
};

Result<Symbols> certificate_symbols(const ElfFile& elf) {
  KMR_ASSIGN_OR_RETURN(auto syms, elf.symbols(".symtab"));
  Symbols s;
  for (const auto& y : syms) {
    if (y.name == "system_certificate_list") s.list = y.value;
    else if (y.name == "__module_cert_start") s.module_start = y.value;
    else if (y.name == "__module_cert_end") s.module_end = y.value;
    else if (y.name == "module_cert_size") s.module_size = y.value;
  }
  return s;
}

Result<std::string> certificate_subject(Bytes der, const std::string& what) {
  CertificateSet set;
  if (!set.add_der(der, "embedded") || set.size() != 1) return malformed(what + ": not an X.509 certificate");
  return set.info()[0].subject;
}

// The build-time certificate located by symbol; nullopt when the image says
// it has none (module_cert_size 0).
Result<std::optional<MaskedRange>> certificate_by_symbol(const ElfFile& elf, const Symbols& sy, const ImageMaskLimits& lim,
                                                         const std::string& what) {
  const Bytes img = elf.data();
  std::optional<std::uint64_t> expect;
  if (sy.module_start && sy.module_end) {
    if (*sy.module_start != *sy.list || *sy.module_end < *sy.module_start) {
      return malformed(what + ": __module_cert_start/__module_cert_end do not bound the start of system_certificate_list");
    }
    expect = *sy.module_end - *sy.module_start;
  } else if (sy.module_size) {
    const std::size_t w = elf.is64() ? 8 : 4;
    auto at = file_offset(elf, *sy.module_size, w);
    if (!at) return malformed(what + ": module_cert_size outside the file's sections");
    expect = read_word(img, *at, w, elf.little_endian());
  }
  if (expect && *expect == 0) return std::optional<MaskedRange>();
  if (expect && *expect > lim.max_certificate) {
    return limit_exceeded(what + ": build-time certificate of " + std::to_string(*expect) + " bytes");
  }
  auto at = file_offset(elf, *sy.list, expect.value_or(4));
  if (!at) return malformed(what + ": system_certificate_list outside the file's sections");
  const std::uint64_t n = der_length(img, *at);
  if (n == 0 || n > lim.max_certificate || (expect && n != *expect)) {
    return malformed(what + ": no certificate of the recorded size at system_certificate_list");
  }
  KMR_ASSIGN_OR_RETURN(std::string subject, certificate_subject(img.subspan(*at, n), what));
  return std::optional<MaskedRange>(MaskedRange{MaskKind::kCertificate, "", *at, n, subject});
}

// Without symbols: the first certificate in .init.data, if self-issued.
Result<std::optional<MaskedRange>> certificate_by_scan(const ElfFile& elf, const ImageMaskLimits& lim,
                                                       const std::string& what) {
  const ElfSection* s = elf.find_section(".init.data");
  if (s == nullptr || s->type == kShtNobits) return std::optional<MaskedRange>();
  EmbeddedCertScanLimits sl;
  sl.max_certificate_size = lim.max_certificate;
  KMR_ASSIGN_OR_RETURN(auto found, find_embedded_certificates(elf.data(), what, sl));
  const CertificateInfo* first = nullptr;
  for (const auto& c : found.certificates) {
    if (!c.offset || *c.offset < s->offset || *c.offset - s->offset >= s->size) continue;
    if (c.der.size() > s->size - (*c.offset - s->offset)) continue;
    if (first == nullptr || *c.offset < *first->offset) first = &c;
  }
  if (first == nullptr || first->issuer != first->subject) return std::optional<MaskedRange>();
  return std::optional<MaskedRange>(MaskedRange{MaskKind::kCertificate, "", *first->offset, first->der.size(), first->subject});
}

Result<std::vector<MaskedRange>> build_id_ranges(const ElfFile& elf, const ImageMaskLimits& lim, const std::string& what) {
  KMR_ASSIGN_OR_RETURN(auto notes, elf.notes());
  std::vector<MaskedRange> out;
  const Bytes img = elf.data();
  for (const auto& n : notes) {
    if (n.name != "GNU" || n.type != kNtGnuBuildId || n.desc.empty()) continue;
    if (n.desc.size() > lim.max_build_id) return limit_exceeded(what + ": build-id of " + std::to_string(n.desc.size()) + " bytes");
    if (n.desc.data() < img.data() || n.desc.data() + n.desc.size() > img.data() + img.size()) {
      return internal_error(what + ": build-id note outside the image");
    }
    out.push_back({MaskKind::kBuildId, "", static_cast<std::uint64_t>(n.desc.data() - img.data()), n.desc.size(),
                   "NT_GNU_BUILD_ID"});
  }
  return out;
}

Result<std::vector<MaskedRange>> elf_ranges(Bytes image, const std::string& in, const ImageMaskLimits& lim,
                                            const std::string& what, std::string& method) {
  KMR_ASSIGN_OR_RETURN(ElfFile elf, ElfFile::parse(image, what));
  KMR_ASSIGN_OR_RETURN(Symbols sy, certificate_symbols(elf));
  std::optional<MaskedRange> cert;
  if (sy.list) {
    KMR_ASSIGN_OR_RETURN(cert, certificate_by_symbol(elf, sy, lim, what));
    method = "symbol";
  } else {
    KMR_ASSIGN_OR_RETURN(cert, certificate_by_scan(elf, lim, what));
    method = cert ? "scan" : "";
  }
  if (!cert) method.clear();
  KMR_ASSIGN_OR_RETURN(std::vector<MaskedRange> out, build_id_ranges(elf, lim, what));
  if (cert) out.push_back(*cert);
  for (auto& r : out) r.in = in;
  return out;
}

Result<std::vector<MaskedRange>> pe_ranges(Bytes file, const std::string& what) {
  KMR_ASSIGN_OR_RETURN(auto layout, parse_pe_layout(file, what));
  std::vector<MaskedRange> out;
  if (!layout) return out;
  out.push_back({MaskKind::kAuthenticode, "file", layout->checksum_offset, 4, "pe-checksum"});
  if (layout->cert_dir_offset != 0) {
    out.push_back({MaskKind::kAuthenticode, "file", layout->cert_dir_offset, 8, "certificate-directory"});
  }
  if (layout->cert_table_offset != 0) {
    out.push_back({MaskKind::kAuthenticode, "file", layout->cert_table_offset, file.size() - layout->cert_table_offset,
                   std::string(kCertificateTable)});
  }
  return out;
}

bool by_place(const MaskedRange& a, const MaskedRange& b) {
  return std::tie(a.in, a.offset, a.length) < std::tie(b.in, b.offset, b.length);
}

using Zeroed = std::vector<std::pair<std::uint64_t, std::uint64_t>>;  // (offset, length)

// Feeds `data[0, end)` to `sink` piece by piece, the `zero` ranges (inside
// the data, not overlapping; those at or beyond `end` ignored) as zeros.
template <typename Sink>
Result<void> feed_zeroed(Bytes data, Zeroed zero, std::uint64_t end, const std::string& what, Sink&& sink) {
  std::sort(zero.begin(), zero.end());
  static const std::array<std::uint8_t, 4096> kZeros{};
  std::uint64_t at = 0;
  for (const auto& [off, len] : zero) {
    if (off >= end) break;
    if (off < at || !range_fits(off, len, data.size())) return malformed(what + ": masked ranges overlap or leave the image");
    sink(data.subspan(at, off - at));
    for (std::uint64_t left = std::min(len, end - off); left > 0;) {
      const std::uint64_t n = std::min<std::uint64_t>(left, kZeros.size());
      sink(Bytes(kZeros.data(), n));
      left -= n;
    }
    at = off + len;
  }
  if (at < end) sink(data.subspan(at, end - at));
  return ok();
}

Result<Digest256> zeroed_digest(Bytes data, Zeroed zero, std::uint64_t end, const std::string& what) {
  Sha256 h;
  KMR_TRY(feed_zeroed(data, std::move(zero), end, what, [&](Bytes b) { h.update(b); }));
  return h.finish();
}

// The end of what is compared: a PE image's certificate table and everything
// after it are left out, as by the Authenticode hash.
std::uint64_t compared_end(Bytes file, const std::vector<MaskedRange>& ranges) {
  for (const auto& r : ranges) {
    if (r.what == MaskKind::kAuthenticode && r.detail == kCertificateTable) return r.offset;
  }
  return file.size();
}

// kbuild's tools/build ends a bzImage with the CRC32 (no final inversion) of
// everything before it. A signed image carries it just before the
// certificate table, computed while the checksum and directory entry were
// still zero (checked on Debian's signed vmlinuz).
Result<std::optional<MaskedRange>> bzimage_crc(Bytes file, const std::vector<MaskedRange>& pe, const std::string& what) {
  const std::uint64_t end = compared_end(file, pe);
  if (end < 8) return std::optional<MaskedRange>();
  Zeroed fields;
  for (const auto& r : pe) {
    if (r.detail != kCertificateTable) fields.emplace_back(r.offset, r.length);
  }
  std::uint32_t crc = static_cast<std::uint32_t>(::crc32(0L, Z_NULL, 0));
  KMR_TRY(feed_zeroed(file, std::move(fields), end - 4, what, [&](Bytes b) {
    for (std::size_t done = 0; done < b.size();) {
      const auto n = static_cast<uInt>(std::min<std::size_t>(b.size() - done, 1u << 30));
      crc = static_cast<std::uint32_t>(::crc32(crc, b.data() + done, n));
      done += n;
    }
  }));
  if ((crc ^ 0xffffffffu) != read_word(file, end - 4, 4, true)) return std::optional<MaskedRange>();
  return std::optional<MaskedRange>(MaskedRange{MaskKind::kChecksum, "file", end - 4, 4, "bzimage-crc32"});
}

Result<Digest256> digest_of(Bytes data, const std::vector<MaskedRange>& ranges, std::string_view in,
                            Zeroed extra, const std::string& what) {
  std::uint64_t end = data.size();
  for (const auto& r : ranges) {
    if (r.in != in) continue;
    if (r.what == MaskKind::kAuthenticode && r.detail == kCertificateTable) {
      end = r.offset;
      continue;
    }
    extra.emplace_back(r.offset, r.length);
  }
  return zeroed_digest(data, std::move(extra), end, what);
}

Result<ImageMask> mask_elf(Bytes image, const std::string& format, const ImageMaskLimits& lim, const std::string& what) {
  ImageMask m;
  m.format = format;
  KMR_ASSIGN_OR_RETURN(m.ranges, elf_ranges(image, "vmlinux", lim, what, m.certificate_method));
  KMR_ASSIGN_OR_RETURN(Digest256 d, digest_of(image, m.ranges, "vmlinux", {}, what));
  m.masked_sha256 = to_hex(d);
  return m;
}

Result<ImageMask> mask_bzimage(Bytes file, const ImageMaskLimits& lim, const std::string& what) {
  KMR_ASSIGN_OR_RETURN(BzImageHeader h, parse_bzimage_header(file, what));
  KMR_ASSIGN_OR_RETURN(BzImagePayload p, extract_bzimage_payload(file, what, lim.max_decompressed));
  ImageMask m;
  m.format = "bzimage";
  m.payload_length = h.payload_length;
  KMR_ASSIGN_OR_RETURN(m.ranges, pe_ranges(file, what));
  KMR_ASSIGN_OR_RETURN(auto crc, bzimage_crc(file, m.ranges, what));
  if (crc) m.ranges.push_back(*crc);
  if (is_elf(p.vmlinux)) {
    KMR_ASSIGN_OR_RETURN(auto inner, elf_ranges(p.vmlinux, "payload", lim, what + " payload", m.certificate_method));
    m.ranges.insert(m.ranges.end(), inner.begin(), inner.end());
  }
  KMR_ASSIGN_OR_RETURN(Digest256 wrapper, digest_of(file, m.ranges, "file", {{h.payload_start, h.payload_length}}, what));
  KMR_ASSIGN_OR_RETURN(Digest256 payload, digest_of(p.vmlinux, m.ranges, "payload", {}, what + " payload"));
  m.wrapper_sha256 = to_hex(wrapper);
  m.payload_sha256 = to_hex(payload);
  Sha256 both;
  both.update(Bytes(wrapper.data(), wrapper.size()));
  both.update(Bytes(payload.data(), payload.size()));
  m.masked_sha256 = to_hex(both.finish());
  return m;
}

}  // namespace

Result<ImageMask> mask_image(Bytes image, const std::string& what, const ImageMaskLimits& limits) {
  ImageMask m;
  if (is_bzimage(image)) {
    KMR_ASSIGN_OR_RETURN(m, mask_bzimage(image, limits, what));
  } else if (is_elf(image)) {
    KMR_ASSIGN_OR_RETURN(m, mask_elf(image, "elf", limits, what));
  } else if (const archive::Codec codec = archive::detect_codec(image); codec != archive::Codec::kNone) {
    auto inner = archive::decompress_all(image, limits.max_decompressed);
    if (!inner) return std::move(inner).error().with_context(what + ": " + std::string(archive::codec_name(codec)));
    if (!is_elf(*inner)) return unsupported(what + ": compressed, but not an ELF vmlinux inside");
    KMR_ASSIGN_OR_RETURN(m, mask_elf(*inner, "compressed-elf", limits, what));
  } else {
    KMR_ASSIGN_OR_RETURN(auto pe, parse_pe_layout(image, what));
    if (!pe) return unsupported(what + ": not an ELF vmlinux, bzImage, compressed vmlinux or PE image");
    m.format = "pe";
    KMR_ASSIGN_OR_RETURN(m.ranges, pe_ranges(image, what));
    KMR_ASSIGN_OR_RETURN(Digest256 d, digest_of(image, m.ranges, "file", {}, what));
    m.masked_sha256 = to_hex(d);
  }
  std::sort(m.ranges.begin(), m.ranges.end(), by_place);
  return m;
}

namespace {

std::string describe(const MaskedRange& r) {
  return std::string(mask_kind_name(r.what)) + " (" + r.detail + ") at " + std::to_string(r.offset) + "+" +
         std::to_string(r.length) + " in " + r.in;
}

std::vector<MaskedRange> fixed_ranges(const ImageMask& m) {
  std::vector<MaskedRange> out;
  for (const auto& r : m.ranges) {
    if (!(r.what == MaskKind::kAuthenticode && r.detail == kCertificateTable)) out.push_back(r);
  }
  return out;
}

std::string range_difference(const ImageMask& s, const ImageMask& r) {
  const auto a = fixed_ranges(s), b = fixed_ranges(r);
  for (std::size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    if (i >= a.size()) return "the rebuilt image has a masked " + describe(b[i]) + " the shipped one does not";
    if (i >= b.size()) return "the shipped image has a masked " + describe(a[i]) + " the rebuilt one does not";
    if (a[i].what != b[i].what || a[i].in != b[i].in || a[i].offset != b[i].offset || a[i].length != b[i].length) {
      return "masked ranges differ: shipped " + describe(a[i]) + ", rebuilt " + describe(b[i]);
    }
  }
  return "";
}

}  // namespace

std::string compare_masks(const ImageMask& s, const ImageMask& r) {
  if (s.format != r.format) return "image formats differ (" + s.format + ", " + r.format + ")";
  if (s.format == "bzimage" && s.payload_sha256 == r.payload_sha256 && s.wrapper_sha256 != r.wrapper_sha256) {
    if (s.payload_length != r.payload_length) {
      return "the decompressed payloads are equal outside the masked ranges, but the compressed payload has another "
             "length (" + std::to_string(s.payload_length) + " and " + std::to_string(r.payload_length) +
             " bytes), so the bzImage around it differs: not identical modulo signatures; use certificate transplant";
    }
    return "the decompressed payloads are equal outside the masked ranges, but the bzImage outside the payload "
           "differs: not identical modulo signatures; use certificate transplant";
  }
  if (std::string d = range_difference(s, r); !d.empty()) return d;
  if (s.masked_sha256 == r.masked_sha256) return "";
  if (s.format == "bzimage" && s.payload_sha256 != r.payload_sha256) {
    return "the decompressed payloads differ outside the masked ranges";
  }
  return "the images differ outside the masked ranges";
}

nlohmann::json ranges_json(const std::vector<MaskedRange>& ranges) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : ranges) {
    out.push_back({{"what", mask_kind_name(r.what)}, {"offset", r.offset}, {"length", r.length}, {"in", r.in},
                   {"detail", r.detail}});
  }
  return out;
}

nlohmann::json mask_json(const ImageMask& m) {
  nlohmann::json j = {{"format", m.format},
                      {"masked_sha256", m.masked_sha256},
                      {"certificate_method", m.certificate_method},
                      {"ranges", ranges_json(m.ranges)}};
  if (m.format == "bzimage") {
    j["wrapper_sha256"] = m.wrapper_sha256;
    j["payload_sha256"] = m.payload_sha256;
    j["payload_length"] = m.payload_length;
  }
  return j;
}

}  // namespace kmr::kmod

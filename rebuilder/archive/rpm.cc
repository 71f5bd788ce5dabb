#include "rebuilder/archive/rpm.h"

#include <cstring>

#include "rebuilder/base/byte_reader.h"
#include "rebuilder/base/checked_math.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"

namespace kmr::archive {

namespace {
constexpr std::uint8_t kLeadMagic[4] = {0xed, 0xab, 0xee, 0xdb};
constexpr std::uint8_t kHeaderMagic[4] = {0x8e, 0xad, 0xe8, 0x01};
constexpr std::uint32_t kMaxIndex = 0xffff;          // rpm's HEADER_TAGS_MAX
constexpr std::uint32_t kMaxStore = 256u << 20;      // rpm's HEADER_DATA_MAX
// Strings decoded from one header, all tags together (a kernel-source
// header holds ~1M: a dozen string arrays over ~80k files).
constexpr std::uint64_t kMaxStrings = 4u << 20;
enum : std::uint32_t { kNull = 0, kChar = 1, kInt8 = 2, kInt16 = 3, kInt32 = 4, kInt64 = 5, kString = 6, kBin = 7,
                       kStringArray = 8, kI18n = 9 };
}  // namespace

bool looks_like_rpm(Bytes data) { return data.size() >= 4 && std::memcmp(data.data(), kLeadMagic, 4) == 0; }

const RpmHeader::Value* RpmHeader::find(std::uint32_t tag) const {
  auto it = tags.find(tag);
  return it == tags.end() ? nullptr : &it->second;
}

std::string RpmHeader::str(std::uint32_t tag) const {
  const Value* v = find(tag);
  return v && !v->strings.empty() ? v->strings[0] : "";
}

std::optional<std::uint64_t> RpmHeader::integer(std::uint32_t tag) const {
  const Value* v = find(tag);
  if (!v || v->ints.empty()) return std::nullopt;
  return v->ints[0];
}

std::string RpmPackage::nevra() const {
  std::string out = name + "-";
  if (epoch) out += std::to_string(*epoch) + ":";
  return out + version + "-" + release + "." + arch;
}

Result<RpmHeader> parse_rpm_header(Bytes data, const std::string& name, std::size_t* consumed) {
  ByteReader r(data, name);
  Bytes magic = r.bytes(4);
  if (!r.ok() || std::memcmp(magic.data(), kHeaderMagic, 4) != 0) return malformed(name + ": bad header magic");
  r.skip(4);
  const std::uint32_t nindex = r.u32be();
  const std::uint32_t hsize = r.u32be();
  if (!r.ok()) return malformed(name + ": truncated header intro");
  if (nindex == 0 || nindex > kMaxIndex) {
    return malformed(name + ": index count " + std::to_string(nindex) + " out of range");
  }
  if (hsize > kMaxStore) return malformed(name + ": data size " + std::to_string(hsize) + " out of range");
  const std::uint64_t total = 16 + std::uint64_t{nindex} * 16 + hsize;
  if (total > data.size()) {
    return malformed(name + ": header needs " + std::to_string(total) + " bytes, " + std::to_string(data.size()) +
                     " available");
  }
  const Bytes store = data.subspan(16 + std::size_t{nindex} * 16, hsize);
  RpmHeader h;
  h.raw.assign(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(total));
  // What the entries decode, all together, stays within the declared data
  // size: rpm writes each tag's data once, so entries that share bytes (one
  // string decoded 65535 times, or 256M empty strings) are refused.
  std::uint64_t decoded = 0, strings = 0;
  auto charge = [&](std::uint64_t bytes, std::uint64_t items, const std::string& where) -> Result<void> {
    decoded += bytes;
    strings += items;
    if (decoded > hsize) {
      return malformed(where + ": entries decode more than the header's " + std::to_string(hsize) +
                       " data bytes (overlapping entries)");
    }
    if (strings > kMaxStrings) return limit_exceeded(where + ": more than " + std::to_string(kMaxStrings) + " strings in one header");
    return ok();
  };
  for (std::uint32_t i = 0; i < nindex; ++i) {
    const std::uint32_t tag = r.u32be();
    const std::uint32_t type = r.u32be();
    const std::uint32_t offset = r.u32be();
    const std::uint32_t count = r.u32be();
    const std::string where = name + ": index entry " + std::to_string(i) + " (tag " + std::to_string(tag) + ")";
    if (offset >= hsize && !(type == kNull && offset == hsize)) {
      return malformed(where + ": offset " + std::to_string(offset) + " out of range (data " + std::to_string(hsize) +
                       " bytes)");
    }
    if (count == 0 || count > hsize) {
      return malformed(where + ": count " + std::to_string(count) + " out of range");
    }
    RpmHeader::Value v;
    v.type = type;
    std::uint64_t width = 0;
    switch (type) {
      case kNull: break;
      case kChar:
      case kInt8:
      case kBin: width = 1; break;
      case kInt16: width = 2; break;
      case kInt32: width = 4; break;
      case kInt64: width = 8; break;
      case kString:
      case kStringArray:
      case kI18n: {
        if (type == kString && count != 1) return malformed(where + ": STRING with count " + std::to_string(count));
        std::size_t pos = offset;
        for (std::uint32_t k = 0; k < count; ++k) {
          const void* nul = pos < hsize ? std::memchr(store.data() + pos, 0, hsize - pos) : nullptr;
          if (!nul) return malformed(where + ": string " + std::to_string(k) + " runs past the data");
          const std::size_t end = static_cast<std::size_t>(static_cast<const std::uint8_t*>(nul) - store.data());
          KMR_TRY(charge(end - pos + 1, 1, where));
          v.strings.emplace_back(reinterpret_cast<const char*>(store.data() + pos), end - pos);
          pos = end + 1;
        }
        break;
      }
      default: return malformed(where + ": unknown type " + std::to_string(type));
    }
    if (width) {
      const auto len = checked_mul<std::uint64_t>(width, count);
      if (!len || !range_fits(offset, *len, hsize)) {
        return malformed(where + ": " + std::to_string(count) + " items at offset " + std::to_string(offset) +
                         " run past the data (" + std::to_string(hsize) + " bytes)");
      }
      KMR_TRY(charge(*len, 0, where));
      ByteReader d(store.subspan(offset, *len), name);
      if (type == kBin || type == kChar) {
        v.bin.assign(store.begin() + offset, store.begin() + offset + static_cast<std::ptrdiff_t>(*len));
      } else {
        for (std::uint32_t k = 0; k < count && k < 65536; ++k) {
          v.ints.push_back(width == 1 ? d.u8() : width == 2 ? d.u16be() : width == 4 ? d.u32be() : d.u64be());
        }
      }
    }
    h.tags[tag] = std::move(v);
  }
  if (consumed) *consumed = static_cast<std::size_t>(total);
  return h;
}

namespace {

// A stream with a read-ahead buffer: exact reads first, then the rest as a
// plain InputStream (hashing what it hands out).
class Cursor : public InputStream {
 public:
  explicit Cursor(InputStream& in) : in_(in) {}

  Result<ByteVector> exact(std::size_t n, const std::string& what) {
    ByteVector out;
    while (out.size() < n) {
      if (pos_ == cur_.size()) {
        KMR_ASSIGN_OR_RETURN(cur_, in_.next());
        pos_ = 0;
        if (cur_.empty()) return malformed(what + ": truncated");
      }
      const std::size_t k = std::min(n - out.size(), cur_.size() - pos_);
      out.insert(out.end(), cur_.begin() + static_cast<std::ptrdiff_t>(pos_),
                 cur_.begin() + static_cast<std::ptrdiff_t>(pos_ + k));
      pos_ += k;
    }
    return out;
  }

  Result<Bytes> next() override {
    Bytes out;
    if (pos_ < cur_.size()) {
      out = cur_.subspan(pos_);
      pos_ = cur_.size();
    } else {
      KMR_ASSIGN_OR_RETURN(out, in_.next());
    }
    hash_.update(out);
    return out;
  }
  Digest256 payload_digest() { return hash_.finish(); }

 private:
  InputStream& in_;
  Bytes cur_;
  std::size_t pos_ = 0;
  Sha256 hash_;
};

Result<RpmHeader> read_header(Cursor& c, const std::string& name, bool pad8) {
  KMR_ASSIGN_OR_RETURN(ByteVector intro, c.exact(16, name));
  ByteReader r(intro, name);
  r.skip(8);
  const std::uint32_t nindex = r.u32be();
  const std::uint32_t hsize = r.u32be();
  if (std::memcmp(intro.data(), kHeaderMagic, 4) != 0) return malformed(name + ": bad header magic");
  if (nindex == 0 || nindex > kMaxIndex) return malformed(name + ": index count " + std::to_string(nindex) + " out of range");
  if (hsize > kMaxStore) return malformed(name + ": data size " + std::to_string(hsize) + " out of range");
  const std::size_t body = std::size_t{nindex} * 16 + hsize;
  KMR_ASSIGN_OR_RETURN(ByteVector rest, c.exact(body, name));
  intro.insert(intro.end(), rest.begin(), rest.end());
  KMR_ASSIGN_OR_RETURN(RpmHeader h, parse_rpm_header(intro, name));
  if (pad8 && hsize % 8) KMR_TRY(c.exact(8 - hsize % 8, name + " padding"));
  return h;
}

}  // namespace

Result<RpmPackage> read_rpm(InputStream& in, const ReaderOptions& options, const Visitor* visitor) {
  Cursor c(in);
  KMR_ASSIGN_OR_RETURN(ByteVector lead, c.exact(96, options.name + ": RPM lead"));
  if (std::memcmp(lead.data(), kLeadMagic, 4) != 0) return malformed(options.name + ": not an RPM (bad lead magic)");
  if (lead[4] != 3 && lead[4] != 4) return unsupported(options.name + ": RPM major version " + std::to_string(lead[4]));
  RpmPackage p;
  KMR_ASSIGN_OR_RETURN(p.signature, read_header(c, options.name + ": RPM signature header", true));
  KMR_ASSIGN_OR_RETURN(p.header, read_header(c, options.name + ": RPM header", false));
  const RpmHeader& h = p.header;
  p.name = h.str(rpmtag::kName);
  p.version = h.str(rpmtag::kVersion);
  p.release = h.str(rpmtag::kRelease);
  p.arch = h.str(rpmtag::kArch);
  p.epoch = h.integer(rpmtag::kEpoch);
  p.buildtime = static_cast<std::int64_t>(h.integer(rpmtag::kBuildTime).value_or(0));
  p.buildhost = h.str(rpmtag::kBuildHost);
  p.disturl = h.str(rpmtag::kDistUrl);
  p.payload_format = h.str(rpmtag::kPayloadFormat);
  p.payload_compressor = h.str(rpmtag::kPayloadCompressor);
  if (p.name.empty() || p.version.empty() || p.release.empty()) {
    return malformed(options.name + ": RPM header lacks NAME/VERSION/RELEASE");
  }
  const std::string sig_sha = p.signature.str(rpmtag::kSigSha256);
  p.header_sha256_ok = !sig_sha.empty() && sig_sha == sha256_hex(p.header.raw);
  if (!sig_sha.empty() && !p.header_sha256_ok) {
    return Error(ErrorCode::kVerificationFailed, options.name + ": RPM header SHA256 does not match the signature header");
  }
  for (std::uint32_t t : {rpmtag::kSigPgp, rpmtag::kSigGpg, rpmtag::kSigRsa, rpmtag::kSigDsa, rpmtag::kSigOpenPgp}) {
    if (p.signature.find(t)) p.has_openpgp_signature = true;
  }
  if (!visitor) return p;
  if (!p.payload_format.empty() && p.payload_format != "cpio") {
    return unsupported(options.name + ": RPM payload format '" + p.payload_format + "'");
  }
  static const char* const kKnown[] = {"gzip", "bzip2", "xz", "lzma", "zstd", "identity", ""};
  bool known = false;
  for (const char* k : kKnown) known |= p.payload_compressor == k;
  if (!known) return unsupported(options.name + ": RPM payload compressor '" + p.payload_compressor + "'");
  ReaderOptions o = options;
  o.name = options.name + ": payload";
  o.format = Format::kCpio;
  auto payload = read_archive(c, o, *visitor);
  if (!payload) {
    // A damaged payload: when the header's digest says so, that is the finding.
    const auto* d = h.find(rpmtag::kPayloadDigest);
    if (d && !d->strings.empty() && h.integer(rpmtag::kPayloadDigestAlgo).value_or(8) == 8) {
      for (;;) {
        auto b = c.next();
        if (!b || b->empty()) break;
      }
      if (to_hex(c.payload_digest()) != d->strings[0]) {
        return Error(ErrorCode::kVerificationFailed, options.name + ": RPM payload SHA256 does not match PAYLOADDIGEST (" +
                                                         payload.error().message() + ")");
      }
    }
    return std::move(payload).error();
  }
  ArchiveStats st = std::move(*payload);
  std::string filt = st.filter_name;
  const std::string want = p.payload_compressor == "identity" || p.payload_compressor.empty() ? "none"
                                                                                                : p.payload_compressor;
  if (filt != want) {
    return malformed(options.name + ": payload is " + filt + " but the header names " + want);
  }
  // Drain what libarchive left (cpio trailer padding) so the digest covers
  // the whole payload.
  for (;;) {
    KMR_ASSIGN_OR_RETURN(Bytes b, c.next());
    if (b.empty()) break;
  }
  if (const auto* d = h.find(rpmtag::kPayloadDigest); d && !d->strings.empty()) {
    const auto algo = h.integer(rpmtag::kPayloadDigestAlgo).value_or(8);
    if (algo == 8) {
      p.payload_digest_ok = to_hex(c.payload_digest()) == d->strings[0];
      if (!*p.payload_digest_ok) {
        return Error(ErrorCode::kVerificationFailed, options.name + ": RPM payload SHA256 does not match PAYLOADDIGEST");
      }
    }
  }
  return p;
}

}  // namespace kmr::archive

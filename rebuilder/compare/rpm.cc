// RPM header tags as "NAME: value" lines (lead, signature header, main
// header). The payload itself is read by libarchive's rpm filter.
#include <map>

#include "rebuilder/base/byte_reader.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/compare/formats.h"

namespace kmr::compare {

namespace {

constexpr std::uint32_t kMaxIndex = 100000;
constexpr std::uint32_t kMaxStore = 256u << 20;
constexpr std::uint32_t kMaxValuesShown = 10000;

const char* tag_name(std::uint32_t tag, bool signature) {
  if (signature) {
    switch (tag) {
      case 62: return "HEADERSIGNATURES";
      case 267: return "DSAHEADER";
      case 268: return "RSAHEADER";
      case 269: return "SHA1HEADER";
      case 273: return "SHA256HEADER";
      case 1000: return "SIZE";
      case 1002: return "PGP";
      case 1004: return "MD5";
      case 1007: return "PAYLOADSIZE";
      default: return nullptr;
    }
  }
  static const std::map<std::uint32_t, const char*> kNames = {
      {63, "HEADERIMMUTABLE"}, {100, "HEADERI18NTABLE"}, {1000, "NAME"}, {1001, "VERSION"}, {1002, "RELEASE"},
      {1003, "EPOCH"}, {1004, "SUMMARY"}, {1005, "DESCRIPTION"}, {1006, "BUILDTIME"}, {1007, "BUILDHOST"},
      {1009, "SIZE"}, {1010, "DISTRIBUTION"}, {1011, "VENDOR"}, {1014, "LICENSE"}, {1015, "PACKAGER"},
      {1016, "GROUP"}, {1020, "URL"}, {1021, "OS"}, {1022, "ARCH"}, {1028, "FILESIZES"}, {1030, "FILEMODES"},
      {1033, "FILERDEVS"}, {1034, "FILEMTIMES"}, {1035, "FILEDIGESTS"}, {1036, "FILELINKTOS"},
      {1037, "FILEFLAGS"}, {1039, "FILEUSERNAME"}, {1040, "FILEGROUPNAME"}, {1044, "SOURCERPM"},
      {1047, "PROVIDENAME"}, {1049, "REQUIRENAME"}, {1050, "REQUIREVERSION"}, {1064, "RPMVERSION"},
      {1080, "CHANGELOGTIME"}, {1081, "CHANGELOGNAME"}, {1082, "CHANGELOGTEXT"}, {1095, "FILEDEVICES"},
      {1096, "FILEINODES"}, {1097, "FILELANGS"}, {1112, "PROVIDEFLAGS"}, {1113, "PROVIDEVERSION"},
      {1116, "DIRINDEXES"}, {1117, "BASENAMES"}, {1118, "DIRNAMES"}, {1124, "PAYLOADFORMAT"},
      {1125, "PAYLOADCOMPRESSOR"}, {1126, "PAYLOADFLAGS"}, {1132, "PLATFORM"}, {5011, "FILEDIGESTALGO"},
      {5062, "PAYLOADDIGEST"}, {5092, "PAYLOADDIGESTALGO"}, {5097, "PAYLOADDIGESTALT"}};
  auto it = kNames.find(tag);
  return it == kNames.end() ? nullptr : it->second;
}

Result<void> dump_header(ByteReader& r, bool signature, std::string& out) {
  const char* which = signature ? "signature" : "header";
  std::uint64_t start = r.offset();
  Bytes magic = r.bytes(4);
  if (!r.ok() || magic[0] != 0x8e || magic[1] != 0xad || magic[2] != 0xe8) {
    return malformed(std::string("RPM ") + which + ": bad magic at offset " + std::to_string(start));
  }
  r.skip(4);
  std::uint32_t nindex = r.u32be();
  std::uint32_t hsize = r.u32be();
  if (!r.ok()) return malformed(std::string("RPM ") + which + ": truncated header intro");
  if (nindex > kMaxIndex || hsize > kMaxStore) return malformed(std::string("RPM ") + which + ": index or store too large");
  KMR_ASSIGN_OR_RETURN(Bytes index, r.sub(r.offset(), std::uint64_t{nindex} * 16, std::string("RPM ") + which + " index"));
  KMR_ASSIGN_OR_RETURN(Bytes store, r.sub(r.offset() + index.size(), hsize, std::string("RPM ") + which + " store"));
  r.skip(index.size() + store.size());
  ByteReader ir(index, "RPM index");
  for (std::uint32_t i = 0; i < nindex; ++i) {
    std::uint32_t tag = ir.u32be();
    std::uint32_t type = ir.u32be();
    std::uint32_t off = ir.u32be();
    std::uint32_t count = ir.u32be();
    const char* name = tag_name(tag, signature);
    std::string line = std::string(signature ? "SIG " : "") + (name ? name : "TAG_" + std::to_string(tag)) + ":";
    if (off > store.size()) {
      out += line + " <offset out of range>\n";
      continue;
    }
    ByteReader vr(store.subspan(off), "RPM value");
    std::uint32_t shown = std::min(count, kMaxValuesShown);
    switch (type) {
      case 6: case 8: case 9: {  // STRING, STRING_ARRAY, I18NSTRING
        std::uint32_t n = type == 6 ? 1 : shown;
        for (std::uint32_t k = 0; k < n && vr.ok(); ++k) {
          std::string_view sv = vr.cstr(1 << 20);
          if (!vr.ok()) break;
          line += (k == 0 ? " " : " | ") + std::string(sv);
        }
        break;
      }
      case 2: case 1:
        for (std::uint32_t k = 0; k < shown && vr.ok(); ++k) line += " " + std::to_string(vr.u8());
        break;
      case 3:
        for (std::uint32_t k = 0; k < shown && vr.ok(); ++k) line += " " + std::to_string(vr.u16be());
        break;
      case 4:
        for (std::uint32_t k = 0; k < shown && vr.ok(); ++k) line += " " + std::to_string(vr.u32be());
        break;
      case 5:
        for (std::uint32_t k = 0; k < shown && vr.ok(); ++k) line += " " + std::to_string(vr.u64be());
        break;
      case 7: {
        Bytes b = vr.bytes(std::min<std::uint32_t>(count, 4096));
        line += " " + to_hex(b);
        break;
      }
      default:
        line += " <type " + std::to_string(type) + ">";
    }
    if (!vr.ok()) line += " <truncated>";
    if (shown < count) line += " ...(" + std::to_string(count - shown) + " more)";
    out += line + "\n";
  }
  return ir.finish();
}

}  // namespace

bool recognize_rpm(Bytes d, std::string_view) {
  return d.size() >= 4 && d[0] == 0xed && d[1] == 0xab && d[2] == 0xee && d[3] == 0xdb;
}

Result<std::string> rpm_header_text(Bytes data) {
  ByteReader r(data, "RPM");
  r.skip(96);  // lead
  if (!r.ok()) return malformed("RPM: truncated lead");
  std::string out;
  KMR_TRY(dump_header(r, true, out));
  r.align(8);
  KMR_TRY(dump_header(r, false, out));
  return out;
}

}  // namespace kmr::compare

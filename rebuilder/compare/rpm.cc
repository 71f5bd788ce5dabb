// RPM header tags as "TAG: value" lines, from //rebuilder/archive:rpm's
// header parser. The payload is listed by the libarchive member reader.
#include <algorithm>

#include "rebuilder/archive/rpm.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/compare/formats.h"

namespace kmr::compare {

namespace {

constexpr std::size_t kMaxValuesShown = 10000;

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
  switch (tag) {
    case 63: return "HEADERIMMUTABLE";
    case 100: return "HEADERI18NTABLE";
    case 1000: return "NAME";
    case 1001: return "VERSION";
    case 1002: return "RELEASE";
    case 1003: return "EPOCH";
    case 1004: return "SUMMARY";
    case 1005: return "DESCRIPTION";
    case 1006: return "BUILDTIME";
    case 1007: return "BUILDHOST";
    case 1009: return "SIZE";
    case 1014: return "LICENSE";
    case 1022: return "ARCH";
    case 1028: return "FILESIZES";
    case 1030: return "FILEMODES";
    case 1034: return "FILEMTIMES";
    case 1035: return "FILEDIGESTS";
    case 1044: return "SOURCERPM";
    case 1116: return "DIRINDEXES";
    case 1117: return "BASENAMES";
    case 1118: return "DIRNAMES";
    case 1124: return "PAYLOADFORMAT";
    case 1125: return "PAYLOADCOMPRESSOR";
    case 5092: return "PAYLOADDIGEST";
    default: return nullptr;
  }
}

void dump(const archive::RpmHeader& h, bool signature, std::string& out) {
  for (const auto& [tag, v] : h.tags) {
    const char* name = tag_name(tag, signature);
    std::string line = std::string(signature ? "SIG " : "") + (name != nullptr ? name : "TAG_" + std::to_string(tag)) + ":";
    std::size_t n = 0;
    for (const auto& s : v.strings) {
      if (n++ >= kMaxValuesShown) break;
      line += " " + s;
    }
    for (auto i : v.ints) {
      if (n++ >= kMaxValuesShown) break;
      line += " " + std::to_string(i);
    }
    if (!v.bin.empty()) line += " " + to_hex(Bytes(v.bin.data(), std::min<std::size_t>(v.bin.size(), 4096)));
    out += line + "\n";
  }
}

}  // namespace

bool recognize_rpm(Bytes d, std::string_view) { return archive::looks_like_rpm(d); }

Result<std::string> rpm_header_text(Bytes data) {
  if (data.size() < 96) return malformed("RPM: truncated lead");
  std::size_t used = 0;
  KMR_ASSIGN_OR_RETURN(auto sig, archive::parse_rpm_header(data.subspan(96), "RPM signature", &used));
  std::size_t main = 96 + ((used + 7) / 8) * 8;
  if (main > data.size()) return malformed("RPM: truncated before the main header");
  KMR_ASSIGN_OR_RETURN(auto hdr, archive::parse_rpm_header(data.subspan(main), "RPM header"));
  std::string out;
  dump(sig, true, out);
  dump(hdr, false, out);
  return out;
}

}  // namespace kmr::compare

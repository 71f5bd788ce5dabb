#pragma once

// RPM v4 packages: lead, signature header, main header (every index entry
// bounds-checked), then the cpio payload streamed through the archive reader
// with the compressor the header names.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "rebuilder/archive/archive_reader.h"

namespace kmr::archive {

// One parsed header: tag -> value. Strings and string arrays as text,
// integers widened to u64, binary as bytes.
struct RpmHeader {
  struct Value {
    std::uint32_t type = 0;
    std::vector<std::string> strings;
    std::vector<std::uint64_t> ints;
    ByteVector bin;
  };
  std::map<std::uint32_t, Value> tags;
  ByteVector raw;  // the header as stored (magic .. end of store)

  std::string str(std::uint32_t tag) const;  // first string, or ""
  std::optional<std::uint64_t> integer(std::uint32_t tag) const;
  const Value* find(std::uint32_t tag) const;
};

// Parses one header structure from `data` (starting with the 8E AD E8 01
// magic); `consumed` receives its length. Errors name `name`.
Result<RpmHeader> parse_rpm_header(Bytes data, const std::string& name, std::size_t* consumed = nullptr);

namespace rpmtag {
inline constexpr std::uint32_t kName = 1000, kVersion = 1001, kRelease = 1002, kEpoch = 1003, kBuildTime = 1006,
                               kBuildHost = 1007, kArch = 1022, kSourceRpm = 1044, kDistUrl = 1123,
                               kPayloadFormat = 1124, kPayloadCompressor = 1125, kPayloadFlags = 1126,
                               kPayloadDigest = 5092, kPayloadDigestAlgo = 5093;
// Signature header.
inline constexpr std::uint32_t kSigSha256 = 273, kSigSize = 1000, kSigPgp = 1002, kSigGpg = 1005, kSigRsa = 268,
                               kSigDsa = 267, kSigOpenPgp = 278;
}  // namespace rpmtag

struct RpmPackage {
  RpmHeader signature;
  RpmHeader header;
  std::string name, version, release, arch, buildhost, disturl, payload_format, payload_compressor;
  std::optional<std::uint64_t> epoch;
  std::int64_t buildtime = 0;
  bool header_sha256_ok = false;      // signature SHA256 tag matches the main header
  bool has_openpgp_signature = false;
  std::optional<bool> payload_digest_ok;  // set once the payload was read
  std::string nevra() const;
};

// Reads lead + headers from `in`; then, if `visitor` is set, streams the
// payload members to it (and checks PAYLOADDIGEST over the compressed bytes).
Result<RpmPackage> read_rpm(InputStream& in, const ReaderOptions& options, const Visitor* visitor);

bool looks_like_rpm(Bytes data);

}  // namespace kmr::archive

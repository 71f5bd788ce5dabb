#pragma once

// The exact byte ranges of a kernel image that two builds from the same
// inputs may differ in when only their build-time signing key differs, each
// named, and the image's digest with those ranges masked:
//   - "certificate": the build-time X.509 certificate at the start of the
//     system certificate list (.init.data). With a symbol table it is
//     located by `system_certificate_list` and checked against
//     `__module_cert_start`/`__module_cert_end` or `module_cert_size`
//     (0 there: no build-time certificate, nothing masked); without one it is
//     the first DER certificate in .init.data (OpenSSL parses it) and must
//     be self-issued, as every generated build-time certificate is;
//   - "build-id": the descriptor of the NT_GNU_BUILD_ID note (a hash over the
//     linked image, so it follows the certificate);
//   - "authenticode" (PE images): the checksum field, the certificate-table
//     data directory entry and the attribute certificate table, exactly the
//     parts the Authenticode image hash leaves out (the table up to the end
//     of the file);
//   - "checksum": the CRC32 an x86 bzImage ends with (kbuild's tools/build),
//     masked only when it equals the CRC32 of the bytes before it.
// An x86 bzImage is compared as its decompressed payload (ranges "in"
// "payload") plus the wrapper around it: the wrapper's bytes outside the
// payload must be identical, so a payload that compresses to another length
// (and moves the decompressor's code) is not equal once masked.
// Nothing else is ever masked. Every offset and length is bounds-checked.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"

namespace kmr::kmod {

enum class MaskKind { kCertificate, kBuildId, kAuthenticode, kChecksum };
std::string_view mask_kind_name(MaskKind k);  // certificate | build-id | authenticode | checksum

struct MaskedRange {
  MaskKind what = MaskKind::kCertificate;
  std::string in;             // "vmlinux" (the ELF image), "payload" (a bzImage's decompressed payload), "file"
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  // certificate: its subject; build-id: "NT_GNU_BUILD_ID"; authenticode:
  // "pe-checksum", "certificate-directory" or "certificate-table";
  // checksum: "bzimage-crc32".
  std::string detail;
  bool operator==(const MaskedRange&) const = default;
};

struct ImageMask {
  std::string format;                // "elf", "compressed-elf", "bzimage", "pe"
  std::vector<MaskedRange> ranges;   // ordered by (in, offset)
  // sha256 (hex) of the image with every range's bytes zeroed, the
  // Authenticode certificate table cut off. bzImage: sha256 over the raw
  // wrapper digest followed by the raw payload digest.
  std::string masked_sha256;
  // bzImage only: the wrapper (payload bytes zeroed, file ranges masked)
  // and the masked decompressed payload; the compressed payload's length.
  std::string wrapper_sha256;
  std::string payload_sha256;
  std::uint64_t payload_length = 0;
  std::string certificate_method;    // "symbol", "scan" or "" (none masked)
};

struct ImageMaskLimits {
  std::uint64_t max_decompressed = 2ull << 30;
  std::uint64_t max_certificate = 64 * 1024;
  std::uint64_t max_build_id = 64;
};

// True when `name` (a member's base name) is a kernel image mask_image reads.
bool is_kernel_image_name(std::string_view base_name);

// The ranges and masked digest of an ELF vmlinux, a compressed vmlinux
// (.xz/.gz/.zst, ranges in the decompressed ELF), an x86 bzImage (a PE one
// too) or another PE image (Authenticode ranges only). Unsupported: other
// formats (no ranges could be named).
Result<ImageMask> mask_image(Bytes image, const std::string& what, const ImageMaskLimits& limits = {});

// "" when two images with these masks are equal modulo signatures: equal
// masked digests and the same ranges (kind, place, offset, length) except the
// Authenticode certificate table, which may be absent or of another length
// (an unsigned rebuild, another signer). Otherwise why not, naming the first
// difference; a bzImage whose payloads agree once masked but whose wrapper
// differs says so ("use certificate transplant").
std::string compare_masks(const ImageMask& shipped, const ImageMask& rebuilt);

// [{"what","offset","length","in","detail"}] in the mask's order.
nlohmann::json ranges_json(const std::vector<MaskedRange>& ranges);
// {"format","masked_sha256","certificate_method","ranges"} plus, for a
// bzImage, "wrapper_sha256", "payload_sha256" and "payload_length".
nlohmann::json mask_json(const ImageMask& mask);

}  // namespace kmr::kmod

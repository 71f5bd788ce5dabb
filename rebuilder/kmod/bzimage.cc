#include "rebuilder/kmod/bzimage.h"

#include "rebuilder/base/byte_reader.h"
#include "rebuilder/base/checked_math.h"
#include "rebuilder/base/hex.h"

namespace kmr::kmod {

namespace {
constexpr std::size_t kSetupSectsOff = 0x1f1;
constexpr std::size_t kBootFlagOff = 0x1fe;
constexpr std::size_t kHeaderMagicOff = 0x202;
constexpr std::size_t kVersionOff = 0x206;
constexpr std::size_t kPayloadOffsetOff = 0x248;
constexpr std::size_t kHeaderEnd = 0x250;
}  // namespace

bool is_bzimage(Bytes d) {
  return d.size() >= kHeaderMagicOff + 4 && d[kHeaderMagicOff] == 'H' && d[kHeaderMagicOff + 1] == 'd' &&
         d[kHeaderMagicOff + 2] == 'r' && d[kHeaderMagicOff + 3] == 'S';
}

Result<BzImageHeader> parse_bzimage_header(Bytes image, std::string_view what) {
  const std::string w(what);
  if (!is_bzimage(image)) return malformed(w + ": not a bzImage (no HdrS magic at 0x202)");
  if (image.size() < kHeaderEnd) {
    return malformed(w + ": truncated setup header (" + std::to_string(image.size()) + " bytes, need " +
                     std::to_string(kHeaderEnd) + ")");
  }
  BzImageHeader h;
  ByteReader r(image, w);
  r.seek(kSetupSectsOff);
  h.setup_sects = r.u8();
  if (h.setup_sects == 0) h.setup_sects = 4;
  r.seek(kBootFlagOff);
  h.boot_flag = r.u16le();
  r.seek(kVersionOff);
  h.protocol_version = r.u16le();
  r.seek(kPayloadOffsetOff);
  h.payload_offset = r.u32le();
  h.payload_length = r.u32le();
  KMR_TRY(r.finish());
  if (h.protocol_version < 0x0208) {
    return unsupported(w + ": boot protocol " + std::to_string(h.protocol_version >> 8) + "." +
                       std::to_string(h.protocol_version & 0xff) + " has no payload fields (needs 2.08)");
  }
  h.protected_mode_start = (std::uint64_t{h.setup_sects} + 1) * 512;
  h.payload_start = h.protected_mode_start + h.payload_offset;
  if (h.payload_length == 0) return malformed(w + ": empty payload (payload_length 0)");
  if (!range_fits(h.payload_start, h.payload_length, image.size())) {
    return malformed(w + ": payload (offset " + std::to_string(h.payload_start) + ", length " +
                     std::to_string(h.payload_length) + ") beyond end of file (size " + std::to_string(image.size()) + ")");
  }
  return h;
}

Result<BzImagePayload> extract_bzimage_payload(Bytes image, std::string_view what, std::uint64_t cap) {
  KMR_ASSIGN_OR_RETURN(BzImageHeader h, parse_bzimage_header(image, what));
  const Bytes payload = image.subspan(h.payload_start, h.payload_length);
  BzImagePayload out;
  out.codec = archive::detect_codec(payload);
  if (out.codec == archive::Codec::kNone) {
    if (payload.size() >= 3 && payload[0] == 0x89 && payload[1] == 'L' && payload[2] == 'Z') {
      return unsupported(std::string(what) + ": lzo-compressed payloads are not supported");
    }
    return unsupported(std::string(what) + ": payload compression not recognised (starts with " +
                       to_hex(payload.first(std::min<std::size_t>(payload.size(), 8))) + ")");
  }
  archive::DecompressOptions opts;
  opts.max_output = cap;
  opts.allow_trailing_data = true;
  auto r = archive::decompress(payload, out.codec, [&](Bytes b) -> Result<void> {
    out.vmlinux.insert(out.vmlinux.end(), b.begin(), b.end());
    return kmr::ok();
  }, opts);
  if (!r) {
    return std::move(r).error().with_context(std::string(what) + ": " + std::string(archive::codec_name(out.codec)) +
                                             " payload");
  }
  return out;
}

}  // namespace kmr::kmod

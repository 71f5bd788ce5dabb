#pragma once

// x86 bzImage: the setup header ("HdrS" at 0x202) and the compressed
// vmlinux payload it points at (boot protocol >= 2.08).

#include <cstdint>
#include <string_view>

#include "rebuilder/archive/decompress.h"
#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"

namespace kmr::kmod {

struct BzImageHeader {
  std::uint8_t setup_sects = 0;        // effective value (0 means 4)
  std::uint16_t boot_flag = 0;         // 0xAA55 in real images
  std::uint16_t protocol_version = 0;  // 0x020f = 2.15
  std::uint32_t payload_offset = 0;    // relative to protected_mode_start
  std::uint32_t payload_length = 0;
  std::uint64_t protected_mode_start = 0;  // (setup_sects + 1) * 512
  std::uint64_t payload_start = 0;         // absolute file offset
};

// True when "HdrS" sits at 0x202.
bool is_bzimage(Bytes image);

// Parses and bounds-checks the header: the payload must lie inside the file.
Result<BzImageHeader> parse_bzimage_header(Bytes image, std::string_view what);

struct BzImagePayload {
  archive::Codec codec = archive::Codec::kNone;
  ByteVector vmlinux;  // the decompressed payload (an ELF)
};

// Decompresses the payload (at most `cap` bytes of output). The kernel
// appends the uncompressed size after the stream; trailing bytes are ignored.
Result<BzImagePayload> extract_bzimage_payload(Bytes image, std::string_view what, std::uint64_t cap);

}  // namespace kmr::kmod

#pragma once

// Layout of the trailer the kernel build appends to a module:
//   signature blob (sig_len bytes) || struct module_signature (12 bytes) ||
//   "~Module signature appended~\n" (28 bytes).

#include <cstdint>
#include <string_view>

#include "rebuilder/base/bytes.h"

namespace kmr::kmod {

inline constexpr std::string_view kSignatureMarker = "~Module signature appended~\n";
inline constexpr std::size_t kSignatureStructSize = 12;
inline constexpr std::uint8_t kIdTypePkcs7 = 2;
inline constexpr std::uint8_t kIdTypeMerkle = 3;

struct ModuleSignature {
  std::uint8_t algo = 0;
  std::uint8_t hash = 0;
  std::uint8_t id_type = 0;
  std::uint8_t signer_len = 0;
  std::uint8_t key_id_len = 0;
  std::uint8_t pad[3] = {0, 0, 0};
  std::uint32_t sig_len = 0;  // big endian on disk
};

// blob || struct || marker.
ByteVector build_trailer(Bytes blob, const ModuleSignature& sig);

}  // namespace kmr::kmod

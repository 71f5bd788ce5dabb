#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "rebuilder/base/bytes.h"

namespace kmr {

// Lowercase hex.
std::string to_hex(Bytes data);
// Accepts upper and lower case; nullopt on odd length or a non-hex digit.
std::optional<ByteVector> from_hex(std::string_view hex);
// True for exactly 64 hex digits (a SHA-256 in hex).
bool is_sha256_hex(std::string_view hex);

}  // namespace kmr

#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "rebuilder/base/bytes.h"

namespace kmr::attest {

// Standard base64 with padding (RFC 4648 §4).
std::string base64_encode(Bytes data);
// Accepts the standard AND the URL-safe alphabet (RFC 4648 §5), with or
// without padding, as DSSE requires of verifiers. Rejects whitespace, mixed
// garbage, misplaced padding and non-zero trailing bits.
std::optional<ByteVector> base64_decode(std::string_view text);
// Strict standard base64 with padding only (signed notes, checkpoints).
std::optional<ByteVector> base64_decode_std(std::string_view text);

}  // namespace kmr::attest

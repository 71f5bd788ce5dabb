#include "attest/base64.h"

#include <array>
#include <cstdint>

namespace kmr::attest {
namespace {

constexpr char kStd[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int value_of(char c, bool allow_url) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  if (allow_url && c == '-') return 62;
  if (allow_url && c == '_') return 63;
  return -1;
}

std::optional<ByteVector> decode(std::string_view text, bool allow_url, bool require_padding) {
  std::size_t len = text.size();
  std::size_t pad = 0;
  while (len > 0 && text[len - 1] == '=') {
    --len;
    ++pad;
  }
  if (pad > 2) return std::nullopt;
  if (require_padding && (text.size() % 4) != 0) return std::nullopt;
  if (pad > 0 && (text.size() % 4) != 0) return std::nullopt;
  if (len % 4 == 1) return std::nullopt;
  if (pad > 0 && (len + pad) % 4 != 0) return std::nullopt;
  ByteVector out;
  out.reserve(len * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < len; ++i) {
    int v = value_of(text[i], allow_url);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero (canonical encoding).
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

}  // namespace

std::string base64_encode(Bytes data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8) | data[i + 2];
    out.push_back(kStd[(v >> 18) & 63]);
    out.push_back(kStd[(v >> 12) & 63]);
    out.push_back(kStd[(v >> 6) & 63]);
    out.push_back(kStd[v & 63]);
  }
  std::size_t rest = data.size() - i;
  if (rest == 1) {
    std::uint32_t v = std::uint32_t{data[i]} << 16;
    out.push_back(kStd[(v >> 18) & 63]);
    out.push_back(kStd[(v >> 12) & 63]);
    out += "==";
  } else if (rest == 2) {
    std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8);
    out.push_back(kStd[(v >> 18) & 63]);
    out.push_back(kStd[(v >> 12) & 63]);
    out.push_back(kStd[(v >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

std::optional<ByteVector> base64_decode(std::string_view text) {
  return decode(text, /*allow_url=*/true, /*require_padding=*/false);
}

std::optional<ByteVector> base64_decode_std(std::string_view text) {
  return decode(text, /*allow_url=*/false, /*require_padding=*/true);
}

}  // namespace kmr::attest

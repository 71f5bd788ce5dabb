#pragma once

// Small string helpers shared by every layer: ASCII-only, locale-free, so they
// mean the same on every machine and for every byte of untrusted input.

#include <string>
#include <string_view>

namespace kmr {

inline char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

inline std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

// The last component of a '/'-separated path: "a/b.ko" -> "b.ko", "b" -> "b".
inline std::string path_basename(std::string_view p) {
  const auto slash = p.rfind('/');
  return std::string(slash == std::string_view::npos ? p : p.substr(slash + 1));
}

// Everything before the last '/': "a/b.ko" -> "a", "b" -> "".
inline std::string path_dirname(std::string_view p) {
  const auto slash = p.rfind('/');
  return slash == std::string_view::npos ? std::string() : std::string(p.substr(0, slash));
}

}  // namespace kmr

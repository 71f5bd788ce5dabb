#pragma once

// Strict http(s) URLs. Only what the client sends is accepted: scheme http or
// https, a host name, dotted IPv4 or bracketed IPv6 literal, an optional port
// and an RFC 3986 path and query. User information ("user:pass@"), percent
// escapes in the host, IPv6 zone ids, control characters, spaces, bytes >= 0x80
// and backslashes are refused. A fragment is checked and dropped (it is never
// sent).

#include <cstdint>
#include <string>
#include <string_view>

#include "rebuilder/base/result.h"

namespace kmr::net {

inline constexpr std::size_t kMaxUrlLength = 8192;
inline constexpr std::size_t kMaxHostLength = 253;

struct Url {
  std::string scheme;  // "http" or "https" (lower case)
  std::string host;    // lower-case name, dotted IPv4, or IPv6 without brackets
  std::uint16_t port = 0;  // explicit, or the scheme's default
  std::string target;  // path and optional "?query"; starts with '/'

  bool https() const { return scheme == "https"; }
  bool ipv6_literal() const { return host.find(':') != std::string::npos; }
  bool ip_literal() const;
  std::uint16_t default_port() const { return https() ? 443 : 80; }
  // "host" or "host:port" (port omitted when it is the default); IPv6 in brackets.
  std::string host_header() const;
  // "host:port" always, as in a CONNECT request; IPv6 in brackets.
  std::string authority() const;
  // Canonical form: "https://host[:port]/target".
  std::string str() const;
  // Scheme, host and port equal (cookies and credentials stay within one origin).
  bool same_origin(const Url& other) const;
};

Result<Url> parse_url(std::string_view text);

// RFC 3986 section 5.2 reference resolution ("../x", "/x", "?q", "//h/x",
// "https://h/x") against `base`, with dot segments removed; the result is
// checked by parse_url.
Result<Url> resolve_url(const Url& base, std::string_view reference);

// Plain-string form of the resolution above for any hierarchical URL
// (including file:///): base "file:///srv/repo/x.narinfo" + "nar/a.nar" ->
// "file:///srv/repo/nar/a.nar". Errors when `base` has no "scheme://".
Result<std::string> resolve_url_string(std::string_view base, std::string_view reference);
// The same, `reference` itself when it cannot be resolved (the caller then
// fetches it as given, and the fetch reports what is wrong with it).
std::string resolve_url_or_keep(std::string_view base, std::string_view reference);

// file:///abs/path (or file://localhost/abs/path) -> "/abs/path" with percent
// escapes decoded; refuses other hosts, queries, NUL and relative paths.
Result<std::string> file_url_path(std::string_view url);

}  // namespace kmr::net

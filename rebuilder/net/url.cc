#include "rebuilder/net/url.h"

#include <arpa/inet.h>

#include <array>
#include <optional>

#include "rebuilder/base/text.h"

namespace kmr::net {
namespace {

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// RFC 3986 pchar without the percent escape: unreserved, sub-delims, ':' and '@'.
bool is_pchar(char c) {
  if (is_alpha(c) || is_digit(c)) return true;
  switch (c) {
    case '-': case '.': case '_': case '~':                          // unreserved
    case '!': case '$': case '&': case '\'': case '(': case ')':     // sub-delims
    case '*': case '+': case ',': case ';': case '=':
    case ':': case '@':
      return true;
    default:
      return false;
  }
}

std::string describe_byte(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u > 0x20 && u < 0x7f) return std::string("'") + c + "'";
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string("byte 0x") + kHex[u >> 4] + kHex[u & 15];
}

// Checks path, query or fragment characters; `extra` are allowed besides pchar.
Result<void> check_chars(std::string_view s, std::string_view extra, std::string_view what) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) {
        return malformed("bad percent escape in the " + std::string(what));
      }
      i += 2;
      continue;
    }
    if (!is_pchar(c) && extra.find(c) == std::string_view::npos) {
      return malformed(describe_byte(c) + " not allowed in the " + std::string(what));
    }
  }
  return ok();
}

// The five components of RFC 3986 appendix B.
struct Parts {
  std::string scheme;
  bool has_authority = false;
  std::string authority;
  std::string path;
  bool has_query = false;
  std::string query;
  bool has_fragment = false;
  std::string fragment;
};

Parts split_parts(std::string_view s) {
  Parts p;
  auto colon = s.find(':');
  auto first_delim = s.find_first_of("/?#");
  if (colon != std::string_view::npos && colon > 0 && (first_delim == std::string_view::npos || colon < first_delim) &&
      is_alpha(s[0])) {
    bool scheme_ok = true;
    for (char c : s.substr(0, colon)) scheme_ok = scheme_ok && (is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.');
    if (scheme_ok) {
      p.scheme = ascii_lower(s.substr(0, colon));
      s.remove_prefix(colon + 1);
    }
  }
  if (auto hash = s.find('#'); hash != std::string_view::npos) {
    p.has_fragment = true;
    p.fragment = s.substr(hash + 1);
    s = s.substr(0, hash);
  }
  if (auto q = s.find('?'); q != std::string_view::npos) {
    p.has_query = true;
    p.query = s.substr(q + 1);
    s = s.substr(0, q);
  }
  if (s.substr(0, 2) == "//") {
    p.has_authority = true;
    s.remove_prefix(2);
    auto slash = s.find('/');
    p.authority = s.substr(0, slash);
    s = slash == std::string_view::npos ? std::string_view() : s.substr(slash);
  }
  p.path = s;
  return p;
}

void pop_last_segment(std::string& out) {
  auto slash = out.rfind('/');
  out.erase(slash == std::string::npos ? 0 : slash);
}

// RFC 3986 section 5.2.4, in one linear pass.
std::string remove_dot_segments(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  while (!in.empty()) {
    if (in.starts_with("../")) {
      in.remove_prefix(3);
    } else if (in.starts_with("./") || in.starts_with("/./")) {
      in.remove_prefix(2);
    } else if (in == "/.") {
      out += '/';
      in = {};
    } else if (in.starts_with("/../")) {
      in.remove_prefix(3);
      pop_last_segment(out);
    } else if (in == "/..") {
      pop_last_segment(out);
      out += '/';
      in = {};
    } else if (in == "." || in == "..") {
      in = {};
    } else {
      auto end = in.find('/', in[0] == '/' ? 1 : 0);
      if (end == std::string_view::npos) end = in.size();
      out.append(in.substr(0, end));
      in.remove_prefix(end);
    }
  }
  return out;
}

// RFC 3986 section 5.2.2 (strict: a reference with a scheme is taken as is).
Parts resolve_parts(const Parts& base, const Parts& ref) {
  Parts t;
  if (!ref.scheme.empty()) {
    t = ref;
    t.path = remove_dot_segments(ref.path);
  } else if (ref.has_authority) {
    t = ref;
    t.scheme = base.scheme;
    t.path = remove_dot_segments(ref.path);
  } else {
    t.scheme = base.scheme;
    t.has_authority = base.has_authority;
    t.authority = base.authority;
    if (ref.path.empty()) {
      t.path = base.path;
      t.has_query = ref.has_query || base.has_query;
      t.query = ref.has_query ? ref.query : base.query;
    } else {
      if (ref.path[0] == '/') {
        t.path = remove_dot_segments(ref.path);
      } else if (base.has_authority && base.path.empty()) {
        t.path = remove_dot_segments("/" + ref.path);
      } else {
        auto slash = base.path.rfind('/');
        std::string merged = slash == std::string::npos ? std::string() : base.path.substr(0, slash + 1);
        t.path = remove_dot_segments(merged + ref.path);
      }
      t.has_query = ref.has_query;
      t.query = ref.query;
    }
  }
  t.has_fragment = ref.has_fragment;
  t.fragment = ref.fragment;
  return t;
}

std::string compose(const Parts& p) {
  std::string s;
  if (!p.scheme.empty()) s += p.scheme + ":";
  if (p.has_authority) s += "//" + p.authority;
  s += p.path;
  if (p.has_query) s += "?" + p.query;
  if (p.has_fragment) s += "#" + p.fragment;
  return s;
}

Result<void> check_no_controls(std::string_view s) {
  if (s.size() > kMaxUrlLength) return limit_exceeded("URL longer than " + std::to_string(kMaxUrlLength) + " bytes");
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return malformed(describe_byte(c) + " not allowed in a URL");
  }
  return ok();
}

bool valid_label(std::string_view label) {
  if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
  for (char c : label) {
    if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '_') return false;
  }
  return true;
}

Result<std::string> parse_reg_name(std::string_view host) {
  if (host.empty()) return malformed("empty host");
  if (host.size() > kMaxHostLength) return limit_exceeded("host name longer than " + std::to_string(kMaxHostLength) + " bytes");
  std::string_view last_label;
  for (std::string_view rest = host;;) {
    auto dot = rest.find('.');
    std::string_view label = rest.substr(0, dot);
    if (!valid_label(label)) return malformed("bad host name '" + std::string(host) + "'");
    last_label = label;
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  bool numeric = true;
  for (char c : last_label) numeric = numeric && is_digit(c);
  if (numeric) {
    // Looks like IPv4: it must be exactly dotted-quad decimal (no "1.2.3", no octal).
    std::array<unsigned char, 4> addr{};
    if (inet_pton(AF_INET, std::string(host).c_str(), addr.data()) != 1) {
      return malformed("bad IPv4 address '" + std::string(host) + "'");
    }
  }
  return ascii_lower(host);
}

Result<std::string> parse_ipv6(std::string_view literal) {
  if (literal.find('%') != std::string_view::npos) return malformed("IPv6 zone identifiers are not allowed");
  std::array<unsigned char, 16> addr{};
  if (literal.size() > 45 || inet_pton(AF_INET6, std::string(literal).c_str(), addr.data()) != 1) {
    return malformed("bad IPv6 address '" + std::string(literal) + "'");
  }
  std::array<char, INET6_ADDRSTRLEN> text{};
  inet_ntop(AF_INET6, addr.data(), text.data(), text.size());
  return std::string(text.data());
}

Result<std::uint16_t> parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5) return malformed("bad port '" + std::string(s) + "'");
  unsigned value = 0;
  for (char c : s) {
    if (!is_digit(c)) return malformed("bad port '" + std::string(s) + "'");
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) return malformed("port out of range: " + std::string(s));
  return static_cast<std::uint16_t>(value);
}

Result<void> parse_authority(std::string_view authority, Url& url) {
  if (authority.find('@') != std::string_view::npos) return malformed("user information (user@host) is not allowed in URLs");
  std::string_view port;
  if (!authority.empty() && authority[0] == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return malformed("unterminated IPv6 literal");
    KMR_ASSIGN_OR_RETURN(url.host, parse_ipv6(authority.substr(1, close - 1)));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return malformed("unexpected characters after the IPv6 literal");
      port = after.substr(1);
      if (port.empty()) return malformed("empty port");
    }
  } else {
    auto colon = authority.find(':');
    if (colon != std::string_view::npos && authority.find(':', colon + 1) != std::string_view::npos) {
      return malformed("IPv6 addresses must be in brackets");
    }
    KMR_ASSIGN_OR_RETURN(url.host, parse_reg_name(authority.substr(0, colon)));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return malformed("empty port");
    }
  }
  if (port.empty()) {
    url.port = url.default_port();
  } else {
    KMR_ASSIGN_OR_RETURN(url.port, parse_port(port));
  }
  return ok();
}

Result<Url> parse_url_impl(std::string_view text) {
  if (text.empty()) return malformed("empty URL");
  KMR_TRY(check_no_controls(text));
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return malformed("non-ASCII byte in URL (percent-encode it)");
    if (c == '\\') return malformed("backslash not allowed in a URL");
  }
  Parts p = split_parts(text);
  if (p.scheme.empty()) return malformed("URL without a scheme (expected http:// or https://)");
  if (p.scheme != "http" && p.scheme != "https") return unsupported("unsupported URL scheme '" + p.scheme + "' (only http and https)");
  if (!p.has_authority) return malformed("URL without '//' and a host");
  Url url;
  url.scheme = p.scheme;
  KMR_TRY(parse_authority(p.authority, url));
  KMR_TRY(check_chars(p.path, "/", "path"));
  if (p.has_query) KMR_TRY(check_chars(p.query, "/?", "query"));
  if (p.has_fragment) KMR_TRY(check_chars(p.fragment, "/?", "fragment"));
  url.target = p.path.empty() ? "/" : remove_dot_segments(p.path);
  if (url.target.empty() || url.target[0] != '/') url.target.insert(0, "/");
  if (p.has_query) url.target += "?" + p.query;
  return url;
}

std::optional<std::string> percent_decode_path(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return std::nullopt;
    auto nibble = [](char c) { return is_digit(c) ? c - '0' : ascii_lower(c) - 'a' + 10; };
    int v = nibble(s[i + 1]) * 16 + nibble(s[i + 2]);
    if (v == 0) return std::nullopt;
    out += static_cast<char>(v);
    i += 2;
  }
  return out;
}

}  // namespace

bool Url::ip_literal() const {
  if (ipv6_literal()) return true;
  std::array<unsigned char, 4> addr{};
  return inet_pton(AF_INET, host.c_str(), addr.data()) == 1;
}

std::string Url::authority() const {
  std::string h = ipv6_literal() ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

std::string Url::host_header() const {
  std::string h = ipv6_literal() ? "[" + host + "]" : host;
  return port == default_port() ? h : h + ":" + std::to_string(port);
}

std::string Url::str() const { return scheme + "://" + host_header() + target; }

bool Url::same_origin(const Url& other) const {
  return scheme == other.scheme && host == other.host && port == other.port;
}

Result<Url> parse_url(std::string_view text) {
  auto r = parse_url_impl(text);
  if (!r) {
    // Quote at most a prefix of hostile input in the message.
    std::string shown(text.substr(0, 200));
    for (char& c : shown) {
      auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u >= 0x7f) c = '?';
    }
    return std::move(r).error().with_context("bad URL '" + shown + (text.size() > 200 ? "...'" : "'"));
  }
  return r;
}

Result<Url> resolve_url(const Url& base, std::string_view reference) {
  KMR_TRY(check_no_controls(reference));
  Parts b = split_parts(base.str());
  return parse_url(compose(resolve_parts(b, split_parts(reference))));
}

Result<std::string> resolve_url_string(std::string_view base, std::string_view reference) {
  KMR_TRY(check_no_controls(base));
  KMR_TRY(check_no_controls(reference));
  Parts b = split_parts(base);
  if (b.scheme.empty() || !b.has_authority) return malformed("base URL without scheme:// : '" + std::string(base.substr(0, 200)) + "'");
  b.has_fragment = false;
  return compose(resolve_parts(b, split_parts(reference)));
}

Result<std::string> file_url_path(std::string_view url) {
  KMR_TRY(check_no_controls(url));
  Parts p = split_parts(url);
  if (p.scheme != "file" || !p.has_authority) return malformed("not a file:/// URL: " + std::string(url.substr(0, 200)));
  if (!p.authority.empty() && ascii_lower(p.authority) != "localhost") return malformed("file URL with a remote host: " + std::string(url.substr(0, 200)));
  if (p.has_query || p.has_fragment) return malformed("file URL with a query or fragment: " + std::string(url.substr(0, 200)));
  auto path = percent_decode_path(p.path);
  if (!path || path->empty() || (*path)[0] != '/') return malformed("bad file URL path: " + std::string(url.substr(0, 200)));
  return *path;
}

std::string resolve_url_or_keep(std::string_view base, std::string_view reference) {
  return resolve_url_string(base, reference).value_or(std::string(reference));
}

}  // namespace kmr::net

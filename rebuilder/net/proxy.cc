#include "rebuilder/net/proxy.h"

#include <arpa/inet.h>

#include <array>
#include <cstdlib>

#include "rebuilder/base/text.h"

namespace kmr::net {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

std::string first_env(const char* a, const char* b) {
  std::string v = env(a);
  return v.empty() ? env(b) : v;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

struct IpAddress {
  int family = 0;  // AF_INET or AF_INET6
  std::array<unsigned char, 16> bytes{};
  std::size_t bits() const { return family == AF_INET ? 32 : 128; }
};

std::optional<IpAddress> parse_ip(const std::string& text) {
  IpAddress a;
  if (inet_pton(AF_INET, text.c_str(), a.bytes.data()) == 1) {
    a.family = AF_INET;
    return a;
  }
  if (inet_pton(AF_INET6, text.c_str(), a.bytes.data()) == 1) {
    a.family = AF_INET6;
    return a;
  }
  return std::nullopt;
}

bool prefix_equal(const IpAddress& a, const IpAddress& b, std::size_t bits) {
  for (std::size_t i = 0; i < bits; ++i) {
    unsigned mask = 0x80u >> (i % 8);
    if ((a.bytes[i / 8] & mask) != (b.bytes[i / 8] & mask)) return false;
  }
  return true;
}

// One no_proxy entry, already trimmed and lower-cased, without its port.
bool entry_matches(std::string_view entry, const Url& target) {
  if (target.ip_literal()) {
    auto host = parse_ip(target.host);
    std::string addr(entry.substr(0, entry.find('/')));
    auto net = parse_ip(addr);
    if (!host || !net || host->family != net->family) return false;
    std::size_t bits = host->bits();
    if (auto slash = entry.find('/'); slash != std::string_view::npos) {
      std::string_view len = entry.substr(slash + 1);
      if (len.empty() || len.size() > 3 || len.find_first_not_of("0123456789") != std::string_view::npos) return false;
      bits = static_cast<std::size_t>(std::atoi(std::string(len).c_str()));
      if (bits > host->bits()) return false;
    }
    return prefix_equal(*host, *net, bits);
  }
  if (entry.starts_with(".")) entry.remove_prefix(1);
  if (entry.empty()) return false;
  std::string_view host = target.host;
  return host == entry || (host.size() > entry.size() && host.ends_with(entry) && host[host.size() - entry.size() - 1] == '.');
}

// Splits "name:port", "[v6]:port", "v6" or "v6/len" into address and port ("" = any).
std::pair<std::string, std::string> split_entry_port(std::string_view entry) {
  if (entry.starts_with("[")) {
    auto close = entry.find(']');
    if (close == std::string_view::npos) return {std::string(entry), ""};
    std::string_view rest = entry.substr(close + 1);
    return {std::string(entry.substr(1, close - 1)), rest.starts_with(":") ? std::string(rest.substr(1)) : ""};
  }
  auto colon = entry.find(':');
  if (colon == std::string_view::npos || entry.find(':', colon + 1) != std::string_view::npos) return {std::string(entry), ""};
  return {std::string(entry.substr(0, colon)), std::string(entry.substr(colon + 1))};
}

}  // namespace

ProxyOptions ProxyOptions::from_environment() {
  ProxyOptions p;
  p.http_proxy = env("http_proxy");
  p.https_proxy = first_env("https_proxy", "HTTPS_PROXY");
  p.no_proxy = first_env("no_proxy", "NO_PROXY");
  return p;
}

bool no_proxy_matches(std::string_view no_proxy, const Url& target) {
  while (!no_proxy.empty()) {
    auto comma = no_proxy.find(',');
    std::string entry = ascii_lower(trim(no_proxy.substr(0, comma)));
    no_proxy = comma == std::string_view::npos ? std::string_view() : no_proxy.substr(comma + 1);
    if (entry == "*") return true;
    if (entry.empty()) continue;
    auto [addr, port] = split_entry_port(entry);
    if (!port.empty() && port != std::to_string(target.port)) continue;
    if (entry_matches(addr, target)) return true;
  }
  return false;
}

Result<std::optional<Url>> proxy_for(const ProxyOptions& options, const Url& target) {
  const std::string& configured = target.https() ? options.https_proxy : options.http_proxy;
  std::string_view spec = trim(configured);
  if (spec.empty() || no_proxy_matches(options.no_proxy, target)) return std::optional<Url>();
  std::string text(spec);
  if (text.find("://") == std::string::npos) text = "http://" + text;
  auto proxy = parse_url(text);
  if (!proxy) return std::move(proxy).error().with_context("in the proxy setting for " + target.scheme + " URLs");
  if (proxy->https()) return unsupported("TLS to the proxy itself (https:// proxy URL) is not supported; use http://host:port");
  if (proxy->target != "/") return malformed("proxy URL with a path: " + std::string(spec));
  return std::optional<Url>(std::move(*proxy));
}

}  // namespace kmr::net

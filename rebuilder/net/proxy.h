#pragma once

// Proxy selection from http_proxy / https_proxy / no_proxy, as curl reads them.

#include <optional>
#include <string>
#include <string_view>

#include "rebuilder/base/result.h"
#include "rebuilder/net/url.h"

namespace kmr::net {

struct ProxyOptions {
  // Proxy for http:// URLs (requests in absolute form); "" = direct.
  std::string http_proxy;
  // Proxy for https:// URLs (a CONNECT tunnel; TLS runs end to end); "" = direct.
  std::string https_proxy;
  // Comma-separated hosts that bypass the proxies: "*" (all), a host name
  // ("example.org" and ".example.org" both match the name and its
  // subdomains), an IP address or CIDR block ("10.0.0.0/8", "::1"),
  // each optionally with ":port".
  std::string no_proxy;

  // http_proxy (lower case only, as curl: HTTP_PROXY may be set by CGI
  // requests), https_proxy or HTTPS_PROXY, no_proxy or NO_PROXY.
  static ProxyOptions from_environment();
};

// The proxy to use for `target`, or nullopt for a direct connection. Proxy
// URLs are "http://host:port" or "host:port"; credentials in them and TLS to
// the proxy itself are refused.
Result<std::optional<Url>> proxy_for(const ProxyOptions& options, const Url& target);

// True when a no_proxy list covers `target`.
bool no_proxy_matches(std::string_view no_proxy, const Url& target);

}  // namespace kmr::net

#pragma once

// A small synchronous HTTP/1.1 client (Boost.Beast) for kmr-worker and for
// repository sync: one request per connection, whole-request timeout, body cap.
// http:// only; file:// URLs are read from disk by fetch_url().

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rebuilder/base/result.h"

namespace kmr::server {

struct ClientResponse {
  int status = 0;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercase
  std::string header(std::string_view lower_name) const {
    for (const auto& [k, v] : headers)
      if (k == lower_name) return v;
    return "";
  }
};

Result<ClientResponse> http_request(const std::string& method, const std::string& url,
                                    const std::vector<std::pair<std::string, std::string>>& headers,
                                    const std::string& body, std::chrono::milliseconds timeout,
                                    std::uint64_t max_body);

// file:///path or http://host:port/path -> bytes (status must be 200).
Result<std::string> fetch_url(const std::string& url, std::chrono::milliseconds timeout, std::uint64_t max_body);

// file:///a%20b -> "/a b".
Result<std::string> file_url_path(const std::string& url);
// "http://h:p/a/b.json" + "c/d" -> "http://h:p/a/c/d"; absolute refs returned as-is.
std::string resolve_relative(const std::string& base, const std::string& ref);
// "http://h:p/x?y" -> ("h", "p", "/x?y").
struct UrlParts {
  std::string scheme, host, port, target;
};
Result<UrlParts> split_url(const std::string& url);

}  // namespace kmr::server

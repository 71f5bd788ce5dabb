#pragma once

// Socket-free request/response types: the Beast layer converts to and from
// these, so every handler is a pure function testable without a network.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kmr::server {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query as received
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercase
  std::string body;
  std::string remote;  // peer address

  std::string_view header(std::string_view lower_name) const {
    for (const auto& [k, v] : headers)
      if (k == lower_name) return v;
    return {};
  }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string route = "other";  // metrics label: the route template
  bool close = false;           // close the connection after sending
};

}  // namespace kmr::server

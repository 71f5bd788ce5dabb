#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "rebuilder/base/result.h"

namespace kmr::attest {

struct HttpGetResult {
  int status = 0;
  std::string content_type;
  std::string body;
};

struct ParsedUrl {
  std::string host;
  std::string port = "80";
  std::string target = "/";  // path + query
};

// http://host[:port][/path] only (https is refused: TLS is not built in;
// trust comes from pinned keys, not the transport).
Result<ParsedUrl> parse_http_url(const std::string& url);
// Resolves `ref` against `base` ("http://h:1/x" + "/api/..." or a full URL).
std::string resolve_url(const std::string& base, const std::string& ref);

// A synchronous Boost.Beast GET with a whole-request timeout and a body cap.
Result<HttpGetResult> http_get(const std::string& url,
                               std::chrono::milliseconds timeout = std::chrono::seconds(20),
                               std::size_t max_body = 8 << 20);

}  // namespace kmr::attest

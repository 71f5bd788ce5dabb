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

// Resolves `ref` against `base` taken as a directory ("http://h:1/x" +
// "api/..." -> "http://h:1/x/api/..."; "/api/..." keeps only the origin;
// a full URL is returned as is).
std::string resolve_url(const std::string& base, const std::string& ref);

// A GET on the one HTTP(S) client (rebuilder/net): http:// or https://
// (verified against the system trust store; trust in the answers still
// comes from pinned keys), `timeout` for the whole call, a body cap.
Result<HttpGetResult> http_get(const std::string& url,
                               std::chrono::milliseconds timeout = std::chrono::seconds(20),
                               std::size_t max_body = 8 << 20);

}  // namespace kmr::attest

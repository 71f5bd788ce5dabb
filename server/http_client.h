#pragma once

// kmr-worker's and repository sync's calls on the one HTTP(S) client
// (rebuilder/net): `timeout` is the deadline of the whole call (redirects
// included), bodies are capped. file:// URLs are read from disk by fetch_url().

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rebuilder/base/result.h"
#include "rebuilder/base/sha256.h"

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

// file:///path, http:// or https:// URL -> bytes (status must be 200).
Result<std::string> fetch_url(const std::string& url, std::chrono::milliseconds timeout, std::uint64_t max_body);

// GET (status must be 200) streamed into `path` through SHA-256 (written
// beside it and renamed into place when complete); returns the digest.
// http:// and https:// only.
Result<Digest256> fetch_url_to_file(const std::string& url, const std::string& path, std::chrono::milliseconds timeout,
                                    std::uint64_t max_body);

// file:///a%20b -> "/a b".
Result<std::string> file_url_path(const std::string& url);
// RFC 3986 resolution: "http://h:p/a/b.json" + "c/d" -> "http://h:p/a/c/d";
// absolute refs returned as they are.
std::string resolve_relative(const std::string& base, const std::string& ref);

}  // namespace kmr::server

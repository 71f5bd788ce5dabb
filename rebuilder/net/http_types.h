#pragma once

// Socket-free HTTP request and response, shared by every server-side handler
// (kmrd's API and the attestation service's routes): the Beast layer converts
// to and from these, so a handler is a pure function testable without a network.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rebuilder/base/error.h"

namespace kmr::net {

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

  // The first header of this name (as set, case-sensitive), or empty.
  std::string_view header(std::string_view name) const {
    for (const auto& [k, v] : headers)
      if (k == name) return v;
    return {};
  }
};

// The one error shape: {"error":{"code","message"}} (codes listed in schema/openapi.json),
// for kmrd's API and its rebuilderd-compatible API alike. The message may echo request
// bytes: invalid UTF-8 in it becomes U+FFFD.
HttpResponse json_error(int status, std::string_view code, std::string_view message);
// A store, file or internal failure: logged with its detail and where it happened,
// answered with a generic message (503 busy for a busy database, else 500 internal)
// so no SQL text or path reaches a client.
HttpResponse internal_error_response(const Error& e, std::string_view where);
// True when an If-None-Match value names this (quoted, strong) ETag or is "*".
bool etag_matches(std::string_view if_none_match, std::string_view etag);

}  // namespace kmr::net

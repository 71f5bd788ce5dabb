#include "rebuilder/net/http_types.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace kmr::net {

HttpResponse json_error(int status, std::string_view code, std::string_view message) {
  HttpResponse r;
  r.status = status;
  // Messages may echo request bytes: invalid UTF-8 is replaced, never thrown on.
  r.body = nlohmann::json{{"error", {{"code", code}, {"message", message}}}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

HttpResponse internal_error_response(const Error& e, std::string_view where) {
  if (e.code() == ErrorCode::kDbBusy) {
    spdlog::warn("{}: {}", where, e.to_string());
    return json_error(503, "busy", "database busy, retry");
  }
  spdlog::error("{}: {}", where, e.to_string());
  return json_error(500, "internal", "internal error (details in the server log)");
}

bool etag_matches(std::string_view if_none_match, std::string_view etag) {
  return !if_none_match.empty() &&
         (if_none_match == etag || if_none_match == "*" || if_none_match.find(etag) != std::string_view::npos);
}

}  // namespace kmr::net

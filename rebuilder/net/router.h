#pragma once

// kmrd's route table: an ordered list of routes (exact path, path prefix or
// predicate), each with a metrics label and the methods it answers. The
// attestation service adds its routes to the same table, so kmrd has one
// router, one response type and one error shape.

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "rebuilder/net/http_types.h"

namespace kmr::net {

using Query = std::multimap<std::string, std::string>;

// A request target split and checked: the path (absolute, only [A-Za-z0-9._~/-], no
// "..", "//", "\" or "%") and the query, percent-decoded ('+' is a space).
struct Target {
  std::string path;
  Query query;
};

constexpr std::size_t kMaxTarget = 4096;

// The target, or the 400 answer (bad_target, bad_path, bad_query) refusing it.
std::variant<Target, HttpResponse> parse_target(std::string_view target);
// Decodes %XX and (when plus_is_space) '+'; nullopt on bad escapes or NUL.
std::optional<std::string> url_decode(std::string_view s, bool plus_is_space);
// The first value of a query parameter, or null.
const std::string* first_param(const Query& query, const std::string& name);

// What a route's handler gets.
struct RouteRequest {
  const HttpRequest& http;
  const std::string& path;
  const Query& query;
  std::string_view rest;  // prefix routes: the path after the prefix; else empty
};

class Router {
 public:
  using Handler = std::function<HttpResponse(const RouteRequest&)>;
  using Matcher = std::function<bool(std::string_view path)>;
  // kGet routes answer GET and HEAD and refuse other methods with 405
  // method_not_allowed; kAny routes see every method.
  enum class Methods { kGet, kAny };

  // Routes are tried in the order added; the first match answers. A non-empty
  // label is set as the answer's metrics route.
  Router& exact(std::string path, std::string label, Handler handler, Methods methods = Methods::kGet);
  Router& prefix(std::string prefix, std::string label, Handler handler, Methods methods = Methods::kGet);
  Router& match(Matcher matcher, std::string label, Handler handler, Methods methods = Methods::kGet);

  // The first matching route's answer; nullopt when no route matches.
  std::optional<HttpResponse> route(const HttpRequest& req, const Target& target) const;
  // parse_target() then route(): a bad target is answered, an unmatched one is nullopt.
  std::optional<HttpResponse> handle(const HttpRequest& req) const;

 private:
  struct Route {
    enum class Kind { kExact, kPrefix, kMatch } kind;
    std::string path;
    Matcher matcher;
    std::string label;
    Handler handler;
    Methods methods;
  };
  std::vector<Route> routes_;
};

}  // namespace kmr::net

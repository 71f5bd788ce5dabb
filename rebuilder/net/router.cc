#include "rebuilder/net/router.h"

#include <cctype>

#include "rebuilder/base/hex.h"

namespace kmr::net {
namespace {

bool path_char_ok(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~';
}

bool path_ok(std::string_view path) {
  if (path.find("..") != std::string_view::npos || path.find("//") != std::string_view::npos) return false;
  for (char c : path)
    if (!path_char_ok(c)) return false;  // '\' and '%' included
  return true;
}

// "a=1&b=2" decoded into `out`; false on a bad percent-escape.
bool parse_query(std::string_view qs, Query& out) {
  while (!qs.empty()) {
    auto amp = qs.find('&');
    std::string_view kv = qs.substr(0, amp);
    qs = amp == std::string_view::npos ? std::string_view() : qs.substr(amp + 1);
    if (kv.empty()) continue;
    auto eq = kv.find('=');
    auto k = url_decode(kv.substr(0, eq), true);
    auto v = url_decode(eq == std::string_view::npos ? std::string_view() : kv.substr(eq + 1), true);
    if (!k || !v) return false;
    out.emplace(std::move(*k), std::move(*v));
  }
  return true;
}

}  // namespace

std::optional<std::string> url_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      auto h = from_hex(s.substr(i + 1, 2));
      if (!h || h->size() != 1 || (*h)[0] == 0) return std::nullopt;
      out += static_cast<char>((*h)[0]);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::variant<Target, HttpResponse> parse_target(std::string_view target) {
  if (target.empty() || target[0] != '/' || target.size() > kMaxTarget)
    return json_error(400, "bad_target", "request target must be an absolute path");
  auto qpos = target.find('?');
  std::string_view raw_path = target.substr(0, qpos);
  if (!path_ok(raw_path)) return json_error(400, "bad_path", "path contains forbidden characters or segments");
  Target t;
  t.path = std::string(raw_path);
  if (qpos != std::string_view::npos && !parse_query(target.substr(qpos + 1), t.query))
    return json_error(400, "bad_query", "query string has a bad percent-escape");
  return t;
}

const std::string* first_param(const Query& query, const std::string& name) {
  auto it = query.lower_bound(name);  // equal keys keep their insertion order
  return it == query.end() || it->first != name ? nullptr : &it->second;
}

Router& Router::exact(std::string path, std::string label, Handler handler, Methods methods) {
  routes_.push_back({Route::Kind::kExact, std::move(path), nullptr, std::move(label), std::move(handler), methods});
  return *this;
}

Router& Router::prefix(std::string prefix, std::string label, Handler handler, Methods methods) {
  routes_.push_back({Route::Kind::kPrefix, std::move(prefix), nullptr, std::move(label), std::move(handler), methods});
  return *this;
}

Router& Router::match(Matcher matcher, std::string label, Handler handler, Methods methods) {
  routes_.push_back({Route::Kind::kMatch, "", std::move(matcher), std::move(label), std::move(handler), methods});
  return *this;
}

std::optional<HttpResponse> Router::route(const HttpRequest& req, const Target& target) const {
  const std::string& path = target.path;
  for (const Route& r : routes_) {
    const bool hit = r.kind == Route::Kind::kExact    ? path == r.path
                     : r.kind == Route::Kind::kPrefix ? path.rfind(r.path, 0) == 0
                                                      : r.matcher(path);
    if (!hit) continue;
    if (r.methods == Methods::kGet && req.method != "GET" && req.method != "HEAD")
      return json_error(405, "method_not_allowed", "use GET for " + path);
    std::string_view rest =
        r.kind == Route::Kind::kPrefix ? std::string_view(path).substr(r.path.size()) : std::string_view();
    HttpResponse answer = r.handler(RouteRequest{req, path, target.query, rest});
    if (!r.label.empty()) answer.route = r.label;
    return answer;
  }
  return std::nullopt;
}

std::optional<HttpResponse> Router::handle(const HttpRequest& req) const {
  auto parsed = parse_target(req.target);
  if (auto* refused = std::get_if<HttpResponse>(&parsed)) return std::move(*refused);
  return route(req, std::get<Target>(parsed));
}

}  // namespace kmr::net

#include "server/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <optional>

#include "rebuilder/base/file.h"

namespace kmr::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

Result<UrlParts> split_url(const std::string& url) {
  UrlParts p;
  auto s = url.find("://");
  if (s == std::string::npos) return malformed("URL without scheme: " + url);
  p.scheme = url.substr(0, s);
  std::string rest = url.substr(s + 3);
  auto slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  p.target = slash == std::string::npos ? "/" : rest.substr(slash);
  if (p.scheme == "file") {
    p.target = rest.substr(slash == std::string::npos ? rest.size() : slash);
    return p;
  }
  if (p.scheme != "http") return unsupported("only http:// and file:// URLs are supported: " + url);
  if (!hostport.empty() && hostport[0] == '[') {
    auto close = hostport.find(']');
    if (close == std::string::npos) return malformed("bad IPv6 host in " + url);
    p.host = hostport.substr(1, close - 1);
    p.port = close + 2 <= hostport.size() && hostport[close + 1] == ':' ? hostport.substr(close + 2) : "80";
  } else {
    auto colon = hostport.rfind(':');
    p.host = hostport.substr(0, colon);
    p.port = colon == std::string::npos ? "80" : hostport.substr(colon + 1);
  }
  if (p.host.empty()) return malformed("URL without host: " + url);
  return p;
}

std::string resolve_relative(const std::string& base, const std::string& ref) {
  if (ref.find("://") != std::string::npos) return ref;
  if (!ref.empty() && ref[0] == '/') {
    auto s = base.find("://");
    if (base.rfind("file://", 0) == 0) return "file://" + ref;
    auto slash = base.find('/', s + 3);
    return base.substr(0, slash) + ref;
  }
  auto last = base.rfind('/');
  return base.substr(0, last + 1) + ref;
}

Result<ClientResponse> http_request(const std::string& method, const std::string& url,
                                    const std::vector<std::pair<std::string, std::string>>& headers,
                                    const std::string& body, std::chrono::milliseconds timeout,
                                    std::uint64_t max_body) {
  KMR_ASSIGN_OR_RETURN(UrlParts u, split_url(url));
  if (u.scheme != "http") return unsupported("http_request needs an http:// URL: " + url);
  try {
    net::io_context ioc;
    tcp::resolver resolver(ioc);
    beast::tcp_stream stream(ioc);
    beast::error_code ec;
    auto results = resolver.resolve(u.host, u.port, ec);
    if (ec) return io_error("resolve " + u.host + ": " + ec.message());
    stream.expires_after(timeout);
    stream.connect(results, ec);
    if (ec) return io_error("connect " + u.host + ":" + u.port + ": " + ec.message());
    http::request<http::string_body> req{http::string_to_verb(method), u.target, 11};
    req.set(http::field::host, u.host + ":" + u.port);
    req.set(http::field::user_agent, "kmr-worker");
    for (const auto& [k, v] : headers) req.set(k, v);
    if (method == "POST" || method == "PUT") {
      if (req[http::field::content_type].empty()) req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.keep_alive(false);
    req.prepare_payload();
    stream.expires_after(timeout);
    http::write(stream, req, ec);
    if (ec) return io_error("send to " + url + ": " + ec.message());
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(max_body);
    http::read(stream, buffer, parser, ec);
    if (ec == http::error::body_limit) return limit_exceeded("response from " + url + " larger than the limit");
    if (ec) return io_error("read from " + url + ": " + ec.message());
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    ClientResponse out;
    auto& res = parser.get();
    out.status = static_cast<int>(res.result_int());
    out.content_type = std::string(res[http::field::content_type]);
    for (const auto& f : res) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out.headers.emplace_back(std::move(name), std::string(f.value()));
    }
    out.body = std::move(res.body());
    return out;
  } catch (const std::exception& e) {
    return io_error(std::string("http: ") + e.what());
  }
}

namespace {
std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int v = 0;
    for (int k = 1; k <= 2; ++k) {
      char c = s[i + static_cast<std::size_t>(k)];
      int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
      if (d < 0) return std::nullopt;
      v = v * 16 + d;
    }
    if (v == 0) return std::nullopt;
    out += static_cast<char>(v);
    i += 2;
  }
  return out;
}
}  // namespace

Result<std::string> file_url_path(const std::string& url) {
  KMR_ASSIGN_OR_RETURN(UrlParts u, split_url(url));
  if (u.scheme != "file") return malformed("not a file:// URL: " + url);
  auto path = percent_decode(u.target);
  if (!path || path->empty() || (*path)[0] != '/') return malformed("bad file URL " + url);
  return *path;
}

Result<std::string> fetch_url(const std::string& url, std::chrono::milliseconds timeout, std::uint64_t max_body) {
  if (url.rfind("file://", 0) == 0) {
    KMR_ASSIGN_OR_RETURN(std::string path, file_url_path(url));
    return read_text_file(path, max_body);
  }
  KMR_ASSIGN_OR_RETURN(ClientResponse r, http_request("GET", url, {}, "", timeout, max_body));
  if (r.status != 200) return io_error("GET " + url + ": HTTP " + std::to_string(r.status));
  return std::move(r.body);
}

}  // namespace kmr::server

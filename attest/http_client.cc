#include "attest/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "rebuilder/base/version.h"

namespace kmr::attest {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

Result<ParsedUrl> parse_http_url(const std::string& url) {
  constexpr std::string_view kScheme = "http://";
  if (url.rfind("https://", 0) == 0) return unsupported(url + ": https is not supported, use http:// (trust comes from pinned keys)");
  if (url.rfind(kScheme, 0) != 0) return malformed(url + ": URL must start with http://");
  std::string rest = url.substr(kScheme.size());
  ParsedUrl u;
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  if (slash != std::string::npos) u.target = rest.substr(slash);
  if (authority.empty() || authority.find('@') != std::string::npos) return malformed(url + ": bad host");
  if (authority[0] == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos) return malformed(url + ": bad IPv6 host");
    u.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return malformed(url + ": bad port");
      u.port = authority.substr(close + 2);
    }
  } else {
    auto colon = authority.find(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) u.port = authority.substr(colon + 1);
  }
  if (u.host.empty() || u.port.empty() || u.port.size() > 5 ||
      u.port.find_first_not_of("0123456789") != std::string::npos) {
    return malformed(url + ": bad host or port");
  }
  return u;
}

std::string resolve_url(const std::string& base, const std::string& ref) {
  if (ref.rfind("http://", 0) == 0 || ref.rfind("https://", 0) == 0) return ref;
  std::string b = base;
  while (!b.empty() && b.back() == '/') b.pop_back();
  if (!ref.empty() && ref[0] == '/') {
    // Keep scheme://authority of base.
    auto p = b.find("://");
    auto slash = p == std::string::npos ? std::string::npos : b.find('/', p + 3);
    return (slash == std::string::npos ? b : b.substr(0, slash)) + ref;
  }
  return b + "/" + ref;
}

Result<HttpGetResult> http_get(const std::string& url, std::chrono::milliseconds timeout, std::size_t max_body) {
  KMR_ASSIGN_OR_RETURN(ParsedUrl u, parse_http_url(url));
  try {
    boost::asio::io_context ioc;
    tcp::resolver resolver(ioc);
    beast::tcp_stream stream(ioc);
    stream.expires_after(timeout);
    boost::system::error_code ec;
    auto results = resolver.resolve(u.host, u.port, ec);
    if (ec) return io_error(url + ": cannot resolve " + u.host + ": " + ec.message());
    stream.connect(results, ec);
    if (ec) return io_error(url + ": connect failed: " + ec.message());
    http::request<http::empty_body> req{http::verb::get, u.target, 11};
    req.set(http::field::host, u.host);
    req.set(http::field::user_agent, std::string("kmr/") + kVersion);
    req.set(http::field::connection, "close");
    stream.expires_after(timeout);
    http::write(stream, req, ec);
    if (ec) return io_error(url + ": write failed: " + ec.message());
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(max_body);
    parser.header_limit(64 * 1024);
    http::read(stream, buffer, parser, ec);
    if (ec == http::error::body_limit) return limit_exceeded(url + ": response body larger than " + std::to_string(max_body) + " bytes");
    if (ec == beast::error::timeout) return Error(ErrorCode::kTimeout, url + ": timed out after " + std::to_string(timeout.count()) + " ms");
    if (ec) return io_error(url + ": read failed: " + ec.message());
    auto& res = parser.get();
    HttpGetResult out;
    out.status = static_cast<int>(res.result_int());
    out.content_type = std::string(res[http::field::content_type]);
    out.body = std::move(res.body());
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    return out;
  } catch (const std::exception& e) {
    return io_error(url + ": " + e.what());
  }
}

}  // namespace kmr::attest

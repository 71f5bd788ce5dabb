#include "rebuilder/net/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <algorithm>
#include <functional>

#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/version.h"
#include "rebuilder/net/hashed_file.h"
#include "rebuilder/net/tls.h"
#include "rebuilder/net/url.h"

namespace kmr::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr std::size_t kReadChunk = std::size_t{64} * 1024;

std::string ms_text(milliseconds d) { return std::to_string(d.count()) + " ms"; }

// The time budget of one call: every operation gets its own timeout, cut
// short by the deadline of the whole call.
class Budget {
 public:
  explicit Budget(milliseconds total) : total_(total), deadline_(Clock::now() + total) {}

  Clock::time_point expiry(milliseconds op) {
    auto own = Clock::now() + op;
    deadline_bound_ = deadline_ <= own;
    return deadline_bound_ ? deadline_ : own;
  }
  Error timeout(milliseconds op, const std::string& what) const {
    if (deadline_bound_) return Error(ErrorCode::kTimeout, "deadline of " + ms_text(total_) + " for the whole request exceeded while " + what);
    return Error(ErrorCode::kTimeout, "timed out after " + ms_text(op) + " without progress while " + what);
  }

 private:
  milliseconds total_;
  Clock::time_point deadline_;
  bool deadline_bound_ = false;
};

struct IoResult {
  beast::error_code ec;
  std::size_t n = 0;
};

// Completion handler for the synchronous wrapper below.
struct Completion {
  IoResult* result;
  bool* done;
  void operator()(beast::error_code ec) const { finish(ec, 0); }
  void operator()(beast::error_code ec, std::size_t n) const { finish(ec, n); }
  void operator()(beast::error_code ec, const tcp::endpoint&) const { finish(ec, 0); }
  void finish(beast::error_code ec, std::size_t n) const {
    result->ec = ec;
    result->n = n;
    *done = true;
  }
};

// Starts one asynchronous operation and runs the private io_context until it
// completes (its timeout is the stream's expiry).
template <typename Initiate>
IoResult run(asio::io_context& ioc, Initiate&& initiate) {
  IoResult result;
  bool done = false;
  initiate(Completion{&result, &done});
  ioc.restart();
  ioc.run();
  KMR_CHECK(done);
  return result;
}

bool is_tchar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

Result<void> check_header(const std::string& name, const std::string& value) {
  if (name.empty() || name.size() > 256 || !std::all_of(name.begin(), name.end(), is_tchar)) {
    return malformed("bad request header name '" + name.substr(0, 64) + "'");
  }
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') return malformed("request header " + name + " contains CR, LF or NUL");
  }
  for (const char* reserved : {"host", "connection", "content-length", "transfer-encoding", "te", "upgrade", "expect"}) {
    if (iequals(name, reserved)) return malformed("request header " + name + " is set by the client itself");
  }
  return ok();
}

Result<http::request<http::string_body>> build_request(const Request& r, const Url& url, bool absolute_form,
                                                       const std::string& user_agent) {
  if (r.method.empty() || r.method.size() > 16 ||
      !std::all_of(r.method.begin(), r.method.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
    return malformed("bad request method '" + r.method.substr(0, 16) + "'");
  }
  http::request<http::string_body> req;
  req.method_string(r.method);
  req.target(absolute_form ? url.str() : url.target);
  req.version(11);
  req.set(http::field::host, url.host_header());
  req.set(http::field::user_agent, user_agent);
  req.set(http::field::accept_encoding, "identity");
  req.set(http::field::connection, "close");
  for (const auto& [name, value] : r.headers) {
    KMR_TRY(check_header(name, value));
    if (iequals(name, "user-agent") || iequals(name, "accept-encoding")) {
      req.set(name, value);
    } else {
      req.insert(name, value);
    }
  }
  if (!r.body.empty() || r.method == "POST" || r.method == "PUT" || r.method == "PATCH") {
    req.body() = r.body;
    req.prepare_payload();
  }
  return req;
}

bool is_redirect(int status) { return status == 301 || status == 302 || status == 303 || status == 307 || status == 308; }

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// One connection: TCP, optionally a proxy tunnel, optionally TLS.
class Connection {
 public:
  Connection(asio::io_context& ioc, const ClientOptions& options, Budget& budget)
      : ioc_(ioc), options_(options), budget_(budget), tcp_(ioc) {}

  Result<void> connect(const Url& to) {
    peer_ = to.authority();
    tcp::resolver resolver(ioc_);
    beast::error_code ec;
    auto flags = tcp::resolver::numeric_service;
    if (to.ip_literal()) flags = flags | tcp::resolver::numeric_host;
    auto endpoints = resolver.resolve(to.host, std::to_string(to.port), flags, ec);
    if (ec) return io_error("cannot resolve " + to.host + ": " + ec.message());
    tcp_.expires_at(budget_.expiry(options_.connect_timeout));
    auto r = run(ioc_, [&](auto done) { tcp_.async_connect(endpoints, std::move(done)); });
    if (r.ec == beast::error::timeout) return budget_.timeout(options_.connect_timeout, "connecting to " + peer_);
    if (r.ec) return io_error("cannot connect to " + peer_ + ": " + r.ec.message());
    return ok();
  }

  // CONNECT through the proxy we are connected to.
  Result<void> tunnel(const Url& target) {
    std::string proxy = peer_;
    http::request<http::empty_body> req{http::verb::connect, target.authority(), 11};
    req.set(http::field::host, target.authority());
    req.set(http::field::user_agent, user_agent());
    KMR_TRY(write(req, options_.connect_timeout));
    ResponseReader reader(options_.max_header_bytes, /*no_body=*/true);
    beast::flat_buffer buffer(options_.max_header_bytes + 2 * kReadChunk);
    KMR_TRY(read(reader, buffer, /*head_only=*/true, options_.connect_timeout));
    const ResponseHead& head = reader.head();
    if (head.status / 100 != 2) {
      return io_error("proxy " + proxy + " refused CONNECT to " + target.authority() + ": HTTP " +
                      std::to_string(head.status) + " " + head.reason);
    }
    if (buffer.size() != 0) return malformed("proxy " + proxy + " sent data before the tunnel was used");
    peer_ = target.authority();
    return ok();
  }

  Result<void> start_tls(const Url& to, asio::ssl::context& ctx) {
    tls_.emplace(std::move(tcp_), ctx);
    KMR_TRY(tls::prepare(tls_->native_handle(), to, &verify_note_));
    lowest().expires_at(budget_.expiry(options_.connect_timeout));
    auto r = run(ioc_, [&](auto done) { tls_->async_handshake(asio::ssl::stream_base::client, std::move(done)); });
    if (r.ec == beast::error::timeout) return budget_.timeout(options_.connect_timeout, "in the TLS handshake with " + peer_);
    if (r.ec) return tls::describe_handshake_failure(tls_->native_handle(), to, r.ec.message(), verify_note_);
    return tls::check_pins(tls_->native_handle(), options_.tls.pins, to);
  }

  template <typename Body>
  Result<void> write(http::request<Body>& req, milliseconds timeout) {
    http::request_serializer<Body> serializer(req);
    while (!serializer.is_done()) {
      lowest().expires_at(budget_.expiry(timeout));
      auto r = visit([&](auto& stream) {
        return run(ioc_, [&](auto done) { http::async_write_some(stream, serializer, std::move(done)); });
      });
      if (r.ec == beast::error::timeout) return budget_.timeout(timeout, "sending the request to " + peer_);
      if (r.ec) return io_error("cannot send the request to " + peer_ + ": " + r.ec.message());
    }
    return ok();
  }

  // Feeds `reader` until the head (or the whole response) is in.
  Result<void> read(ResponseReader& reader, beast::flat_buffer& buffer, bool head_only, milliseconds timeout) {
    auto finished = [&] { return head_only ? reader.head_done() : reader.done(); };
    bool closed = false;
    while (!finished()) {
      if (buffer.size() > 0) {
        auto data = buffer.data();
        KMR_ASSIGN_OR_RETURN(std::size_t used, reader.feed(Bytes(static_cast<const std::uint8_t*>(data.data()), data.size())));
        buffer.consume(used);
        if (used > 0 || finished()) continue;
      }
      if (closed) return reader.finish();
      if (buffer.size() + kReadChunk > buffer.max_size()) return malformed("response header or chunk header from " + peer_ + " too long");
      lowest().expires_at(budget_.expiry(timeout));
      auto space = buffer.prepare(kReadChunk);
      auto r = visit([&](auto& stream) { return run(ioc_, [&](auto done) { stream.async_read_some(space, std::move(done)); }); });
      buffer.commit(r.n);
      if (r.ec == asio::ssl::error::stream_truncated && reader.close_delimited()) {
        return io_error("TLS connection from " + peer_ + " closed without close_notify inside a body that ends with the "
                        "connection: the body may be truncated");
      }
      if (r.ec == asio::error::eof || r.ec == asio::ssl::error::stream_truncated) {
        closed = true;  // feed what is buffered first, then finish
        continue;
      }
      if (r.ec == beast::error::timeout) {
        return budget_.timeout(timeout, reader.head_done() ? "receiving the body from " + peer_ : "waiting for the response from " + peer_);
      }
      if (r.ec) return io_error("cannot receive from " + peer_ + ": " + r.ec.message());
    }
    return ok();
  }

  const std::string& peer() const { return peer_; }

 private:
  beast::tcp_stream& lowest() { return tls_ ? tls_->next_layer() : tcp_; }
  template <typename F>
  IoResult visit(F&& f) {
    if (tls_) return f(*tls_);
    return f(tcp_);
  }
  std::string user_agent() const { return options_.user_agent.empty() ? std::string("kmr/") + kVersion : options_.user_agent; }

  asio::io_context& ioc_;
  const ClientOptions& options_;
  Budget& budget_;
  beast::tcp_stream tcp_;
  std::optional<TlsStream> tls_;
  tls::VerifyNote verify_note_;
  std::string peer_;
};

struct SinkSpec {
  BodySink sink;
  std::uint64_t max_body = 0;
};
// Sees the final (non-redirect) head and says where its body goes.
using SinkChooser = std::function<Result<SinkSpec>(const ResponseHead&)>;

struct Outcome {
  ResponseHead head;
  std::string url;
};

Error status_error(const ResponseHead& head) {
  std::string msg = "HTTP " + std::to_string(head.status) + (head.reason.empty() ? "" : " " + head.reason);
  return Error(head.status == 404 || head.status == 410 ? ErrorCode::kNotFound : ErrorCode::kIo, msg);
}

}  // namespace

struct HttpClient::Impl {
  ClientOptions options;
  std::shared_ptr<asio::ssl::context> tls_context;

  // One request and response on a fresh connection. With `stop_at_redirect`
  // a redirect's head is returned without its body.
  Result<ResponseHead> exchange(const Request& request, const Url& url, Budget& budget, bool stop_at_redirect,
                                const SinkChooser& choose) const {
    KMR_ASSIGN_OR_RETURN(std::optional<Url> proxy, proxy_for(options.proxy, url));
    std::string ua = options.user_agent.empty() ? std::string("kmr/") + kVersion : options.user_agent;
    KMR_ASSIGN_OR_RETURN(auto req, build_request(request, url, proxy && !url.https(), ua));
    asio::io_context ioc;
    Connection conn(ioc, options, budget);
    if (proxy) {
      auto connected = conn.connect(*proxy);
      if (!connected) return std::move(connected).error().with_context("via proxy " + proxy->authority());
      if (url.https()) KMR_TRY(conn.tunnel(url));
    } else {
      KMR_TRY(conn.connect(url));
    }
    if (url.https()) KMR_TRY(conn.start_tls(url, *tls_context));
    KMR_TRY(conn.write(req, options.read_timeout));
    ResponseReader reader(options.max_header_bytes, request.method == "HEAD");
    beast::flat_buffer buffer(options.max_header_bytes + 2 * kReadChunk);
    KMR_TRY(conn.read(reader, buffer, /*head_only=*/true, options.read_timeout));
    if (stop_at_redirect && is_redirect(reader.head().status)) return reader.head();
    KMR_ASSIGN_OR_RETURN(SinkSpec spec, choose(reader.head()));
    KMR_TRY(reader.start_body(std::move(spec.sink), spec.max_body));
    KMR_TRY(conn.read(reader, buffer, /*head_only=*/false, options.read_timeout));
    return reader.head();
  }

  // Where a redirect leads, and the request to send there.
  Result<Url> next_hop(const Url& from, const ResponseHead& head, const std::vector<std::string>& chain, Request& request) const {
    std::string location = head.header("Location");
    if (location.empty()) return io_error("HTTP " + std::to_string(head.status) + " redirect without a Location header");
    auto to = resolve_url(from, location);
    if (!to) return std::move(to).error().with_context("in the redirect from " + from.str());
    if (from.https() && !to->https()) {
      return Error(ErrorCode::kPermissionDenied, "refusing the redirect from " + from.str() + " to " + to->str() + " (https to http)");
    }
    auto joined = [&] {
      std::string s;
      for (const auto& u : chain) s += u + " -> ";
      return s + to->str();
    };
    if (std::find(chain.begin(), chain.end(), to->str()) != chain.end()) return io_error("redirect loop: " + joined());
    if (static_cast<int>(chain.size()) > options.max_redirects) {
      return io_error("too many redirects (limit " + std::to_string(options.max_redirects) + "): " + joined());
    }
    if (!from.same_origin(*to)) {
      std::erase_if(request.headers, [](const auto& h) {
        return iequals(h.first, "authorization") || iequals(h.first, "cookie") || iequals(h.first, "proxy-authorization");
      });
    }
    bool to_get = head.status == 303 || ((head.status == 301 || head.status == 302) && request.method == "POST");
    if (to_get && request.method != "HEAD") {
      request.method = "GET";
      request.body.clear();
      std::erase_if(request.headers, [](const auto& h) { return iequals(h.first, "content-type"); });
    }
    return to;
  }

  Result<Outcome> perform(Request request, const SinkChooser& choose) const {
    const std::string what = request.method + " " + request.url;
    auto outcome = perform_hops(std::move(request), choose);
    // One self-contained message: "GET <url>: [context: ]reason".
    if (!outcome) return Error(outcome.error().code(), what + ": " + outcome.error().to_string());
    return outcome;
  }

  Result<Outcome> perform_hops(Request request, const SinkChooser& choose) const {
    Budget budget(options.deadline);
    KMR_ASSIGN_OR_RETURN(Url url, parse_url(request.url));
    std::vector<std::string> chain{url.str()};
    for (;;) {
      auto head = exchange(request, url, budget, request.follow_redirects, choose);
      if (!head) {
        if (chain.size() > 1) return std::move(head).error().with_context("after redirects to " + url.str());
        return std::move(head).error();
      }
      if (!request.follow_redirects || !is_redirect(head->status)) return Outcome{std::move(*head), url.str()};
      KMR_ASSIGN_OR_RETURN(url, next_hop(url, *head, chain, request));
      chain.push_back(url.str());
    }
  }
};

ClientOptions options_with_deadline(milliseconds deadline) {
  ClientOptions o;
  o.deadline = deadline;
  o.connect_timeout = std::min(deadline, o.connect_timeout);
  o.read_timeout = std::min(deadline, o.read_timeout);
  return o;
}

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpClient::~HttpClient() = default;
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

Result<HttpClient> HttpClient::create(ClientOptions options) {
  auto impl = std::make_unique<Impl>();
  KMR_ASSIGN_OR_RETURN(impl->tls_context, tls::make_context(options.tls));
  // Check the proxy settings once, up front.
  for (const char* probe : {"http://proxy-check.invalid/", "https://proxy-check.invalid/"}) {
    KMR_ASSIGN_OR_RETURN(Url url, parse_url(probe));
    ProxyOptions no_bypass = options.proxy;
    no_bypass.no_proxy.clear();
    KMR_TRY(proxy_for(no_bypass, url));
  }
  if (options.max_redirects < 0) return malformed("max_redirects must not be negative");
  impl->options = std::move(options);
  return HttpClient(std::move(impl));
}

const ClientOptions& HttpClient::options() const { return impl_->options; }

Result<Response> HttpClient::request(const Request& request, std::uint64_t max_body) const {
  Response out;
  auto choose = [&](const ResponseHead&) -> Result<SinkSpec> {
    return SinkSpec{[&out](Bytes b) -> Result<void> {
                      out.body.append(as_string_view(b));
                      return ok();
                    },
                    max_body};
  };
  KMR_ASSIGN_OR_RETURN(Outcome outcome, impl_->perform(request, choose));
  out.status = outcome.head.status;
  out.reason = std::move(outcome.head.reason);
  out.headers = std::move(outcome.head.headers);
  out.url = std::move(outcome.url);
  return out;
}

Result<Response> HttpClient::get_to_sink(const std::string& url, std::uint64_t max_body, const BodySink& sink) const {
  Request request;
  request.url = url;
  auto choose = [&](const ResponseHead& head) -> Result<SinkSpec> {
    if (head.status != 200) return status_error(head);
    return SinkSpec{sink, max_body};
  };
  KMR_ASSIGN_OR_RETURN(Outcome outcome, impl_->perform(request, choose));
  Response out;
  out.status = outcome.head.status;
  out.reason = std::move(outcome.head.reason);
  out.headers = std::move(outcome.head.headers);
  out.url = std::move(outcome.url);
  return out;
}

Result<std::string> HttpClient::get(const std::string& url, std::uint64_t max_body) const {
  std::string body;
  Request request;
  request.url = url;
  auto choose = [&](const ResponseHead& head) -> Result<SinkSpec> {
    if (head.status / 100 != 2) return status_error(head);
    return SinkSpec{[&body](Bytes b) -> Result<void> {
                      body.append(as_string_view(b));
                      return ok();
                    },
                    max_body};
  };
  KMR_TRY(impl_->perform(request, choose));
  return body;
}

Result<Download> HttpClient::download(const std::string& url, const std::string& path, const DownloadOptions& options) const {
  KMR_ASSIGN_OR_RETURN(HashedFile file, HashedFile::create(path, options.file_mode));
  KMR_ASSIGN_OR_RETURN(Response response, get_to_sink(url, options.max_bytes, [&file](Bytes b) { return file.write(b); }));
  Download out;
  out.url = std::move(response.url);
  out.headers = std::move(response.headers);
  out.size = file.size();
  out.sha256 = file.finish();
  if (options.expected_sha256 && *options.expected_sha256 != out.sha256) {
    return Error(ErrorCode::kVerificationFailed, "GET " + url + ": sha256 mismatch: expected " + to_hex(*options.expected_sha256) +
                                                     ", received " + to_hex(out.sha256) + " (" + std::to_string(out.size) + " bytes)");
  }
  KMR_TRY(file.commit());
  return out;
}

Result<std::string> fetch_url(const std::string& url, milliseconds deadline, std::uint64_t max_body) {
  if (url.rfind("file://", 0) == 0) {
    KMR_ASSIGN_OR_RETURN(std::string path, file_url_path(url));
    return read_text_file(path, max_body);
  }
  KMR_ASSIGN_OR_RETURN(HttpClient client, HttpClient::create(options_with_deadline(deadline)));
  return client.get(url, max_body);
}

}  // namespace kmr::net

#include "server/http_server.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "rebuilder/base/text.h"
#include "server/blocking_pool.h"

namespace kmr::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

struct HttpServer::Impl {
  Api& api;
  HttpConfig cfg;
  // One single-threaded context per I/O thread: a connection stays on the context it was
  // accepted onto, which is its strand (handlers of one connection never run concurrently,
  // and no thread wakes another to run them). ioc also runs the acceptor and signals.
  net::io_context ioc{1};
  std::vector<std::unique_ptr<net::io_context>> more_iocs;
  std::size_t next_ioc = 0;
  tcp::acceptor acceptor{ioc};
  std::unique_ptr<ssl::context> tls;
  std::atomic<bool> stopping{false};
  std::atomic<int> in_flight{0};
  std::atomic<int> connections{0};
  std::atomic<std::uint64_t> body_bytes{0};  // request bodies being read or handled
  net::signal_set signals{ioc, SIGTERM, SIGINT};
  net::steady_timer drain{ioc};
  std::chrono::steady_clock::time_point stop_deadline;
  // After ioc: destroyed (joined) first, so no task posts to a destroyed context.
  BlockingPool pool;

  Impl(Api& a, HttpConfig c)
      : api(a), cfg(std::move(c)), pool(cfg.blocking_threads, cfg.blocking_queue) {
    for (int i = 1; i < cfg.threads; ++i) more_iocs.push_back(std::make_unique<net::io_context>(1));
  }

  // Round robin over the I/O threads' contexts.
  net::io_context& next_context() {
    std::size_t i = next_ioc++ % (more_iocs.size() + 1);
    return i == 0 ? ioc : *more_iocs[i - 1];
  }
  void stop_all() {
    ioc.stop();
    for (auto& c : more_iocs) c->stop();
  }

  void begin_shutdown() {
    if (stopping.exchange(true)) return;
    beast::error_code ec;
    acceptor.close(ec);
    stop_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(cfg.shutdown_grace_ms);
    poll_drain();
  }
  void poll_drain() {
    if (in_flight.load() == 0 || std::chrono::steady_clock::now() >= stop_deadline) {
      stop_all();
      return;
    }
    drain.expires_after(20ms);
    drain.async_wait([this](beast::error_code) { poll_drain(); });
  }
};

namespace {

template <class Body>
void apply(http::response<Body>& out, const HttpResponse& r) {
  out.set(http::field::server, "kmrd");
  out.set(http::field::content_type, r.content_type);
  for (const auto& [k, v] : r.headers) out.insert(k, v);
}

http::response<http::string_body> to_beast(const HttpResponse& r, unsigned version, bool keep_alive) {
  http::response<http::string_body> out{static_cast<http::status>(r.status), version};
  apply(out, r);
  out.body() = r.body;
  out.keep_alive(keep_alive);
  out.prepare_payload();
  return out;
}

template <class Stream>
net::awaitable<void> send_error(Stream& stream, HttpServer::Impl& s, int status, std::string_view code,
                                std::string_view msg) {
  HttpResponse r = json_error(status, code, msg);
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("Content-Security-Policy", "default-src 'self'");
  s.api.handle_rejected(status);
  auto out = to_beast(r, 11, false);
  beast::get_lowest_layer(stream).expires_after(std::chrono::milliseconds(s.cfg.write_timeout_ms));
  beast::error_code ec;
  co_await http::async_write(stream, out, net::redirect_error(net::use_awaitable, ec));
}

// Holds a share of the in-flight body budget for one request.
class BodyReservation {
 public:
  BodyReservation(HttpServer::Impl& s, std::uint64_t n) : s_(s) {
    std::uint64_t cur = s_.body_bytes.load();
    while (cur + n <= s_.cfg.max_inflight_body_bytes) {
      if (s_.body_bytes.compare_exchange_weak(cur, cur + n)) {
        held_ = n;
        ok_ = true;
        return;
      }
    }
  }
  ~BodyReservation() {
    if (ok_) s_.body_bytes.fetch_sub(held_);
  }
  BodyReservation(const BodyReservation&) = delete;
  BodyReservation& operator=(const BodyReservation&) = delete;
  bool ok() const { return ok_; }

 private:
  HttpServer::Impl& s_;
  std::uint64_t held_ = 0;
  bool ok_ = false;
};

template <class Fields>
HttpRequest head_of(const Fields& h, std::string method, std::string target, const std::string& remote) {
  HttpRequest req;
  req.method = std::move(method);
  req.target = std::move(target);
  req.remote = remote;
  req.headers.reserve(8);
  for (const auto& f : h) {
    req.headers.emplace_back(ascii_lower(f.name_string()), std::string(f.value()));
  }
  return req;
}

template <class Stream>
net::awaitable<void> send_response(Stream& stream, HttpServer::Impl& s, const HttpResponse& r) {
  auto out = to_beast(r, 11, false);
  beast::get_lowest_layer(stream).expires_after(std::chrono::milliseconds(s.cfg.write_timeout_ms));
  beast::error_code ec;
  co_await http::async_write(stream, out, net::redirect_error(net::use_awaitable, ec));
}

// Runs fn() on the blocking pool; the coroutine resumes on its own executor (the
// connection's strand). nullopt when the pool is full and refused the work.
template <class T, class F>
net::awaitable<std::optional<T>> offload(HttpServer::Impl& s, F fn) {
  auto ex = co_await net::this_coro::executor;
  co_return co_await net::async_initiate<decltype(net::use_awaitable), void(std::optional<T>)>(
      [&s, ex, fn = std::move(fn)](auto handler) mutable {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        bool queued = s.pool.try_submit([h, ex, fn]() mutable {
          std::optional<T> out(fn());
          net::post(ex, [h, out = std::move(out)]() mutable { (*h)(std::move(out)); });
        });
        if (!queued) net::post(ex, [h]() mutable { (*h)(std::optional<T>()); });
      },
      net::use_awaitable);
}

HttpResponse pool_full(HttpServer::Impl& s) {
  HttpResponse r = json_error(503, "busy", "the server is busy, retry");
  r.headers.emplace_back("Retry-After", "1");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  s.api.handle_rejected(503);
  return r;
}

template <class Stream>
net::awaitable<beast::error_code> write_answer(Stream& stream, HttpServer::Impl& s, const HttpResponse& res,
                                               unsigned version, bool keep, bool head) {
  auto out = to_beast(res, version, keep);
  if (head) {
    std::size_t n = out.body().size();
    out.body().clear();
    out.content_length(n);
  }
  beast::get_lowest_layer(stream).expires_after(std::chrono::milliseconds(s.cfg.write_timeout_ms));
  beast::error_code ec;
  co_await http::async_write(stream, out, net::redirect_error(net::use_awaitable, ec));
  co_return ec;
}

// Counts a request from header to written answer (the shutdown drain waits for these).
struct InFlight {
  explicit InFlight(HttpServer::Impl& s) : s_(s) { s_.in_flight.fetch_add(1); }
  ~InFlight() { s_.in_flight.fetch_sub(1); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
  HttpServer::Impl& s_;
};

using RequestParser = http::request_parser<http::string_body>;

// Where serving a request goes after a step: on with this request, on to the connection's
// next request (this one is answered), or the connection ends.
enum class Next { kProceed, kNextRequest, kClose };

// A read that failed because the peer left or went quiet: the connection ends unanswered.
bool ends_quietly(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::eof ||
         ec == net::error::operation_aborted || ec == net::error::connection_reset;
}

// Reads the next request's header under the header limit and a read (first request) or
// idle timeout. False: the connection ends (an error answer, if any, is sent).
template <class Stream>
net::awaitable<bool> read_header(Stream& stream, HttpServer::Impl& s, beast::flat_buffer& buffer,
                                 RequestParser& parser, bool first) {
  parser.header_limit(s.cfg.max_header_bytes);
  // The route's limit is applied once the target is known (serve()).
  parser.body_limit(std::max<std::uint64_t>(s.cfg.max_json_body, s.cfg.max_report_body));
  beast::get_lowest_layer(stream).expires_after(
      std::chrono::milliseconds(first ? s.cfg.read_timeout_ms : s.cfg.idle_timeout_ms));
  beast::error_code ec;
  co_await http::async_read_header(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
  if (ec == http::error::header_limit) {
    co_await send_error(stream, s, 431, "header_too_large", "request headers exceed the limit");
    co_return false;
  }
  if (ec == http::error::body_limit) {
    co_await send_error(stream, s, 413, "body_too_large", "request body exceeds the limit");
    co_return false;
  }
  if (ends_quietly(ec)) co_return false;
  if (ec) {
    co_await send_error(stream, s, 400, "bad_request", "malformed HTTP request");
    co_return false;
  }
  co_return true;
}

// A cached document on a kept-alive HTTP/1.1 connection: its prepared answer is written
// as is, here on the I/O thread (no store access, no copy).
template <class Stream>
net::awaitable<Next> write_cached_wire(Stream& stream, HttpServer::Impl& s, RequestParser& parser) {
  auto& h = parser.get();
  if (!parser.is_done() || h.version() != 11 || !h.keep_alive() || s.stopping.load()) co_return Next::kProceed;
  auto wire = s.api.cached_wire(h.method_string(), h.target(), h[http::field::if_none_match]);
  if (!wire) co_return Next::kProceed;
  beast::get_lowest_layer(stream).expires_after(std::chrono::milliseconds(s.cfg.write_timeout_ms));
  beast::error_code ec;
  co_await net::async_write(stream, net::buffer(wire->bytes.data(), wire->bytes.size()),
                            net::redirect_error(net::use_awaitable, ec));
  co_return ec ? Next::kClose : Next::kNextRequest;
}

// A cached document is answered here, on the I/O thread: no store access.
template <class Stream>
net::awaitable<Next> write_cached(Stream& stream, HttpServer::Impl& s, RequestParser& parser, const HttpRequest& req,
                                  bool head) {
  if (!parser.is_done()) co_return Next::kProceed;
  auto cached = s.api.handle_cached(req);
  if (!cached) co_return Next::kProceed;
  auto& h = parser.get();
  bool keep = h.keep_alive() && !s.stopping.load();
  beast::error_code ec = co_await write_answer(stream, s, *cached, h.version(), keep, head);
  co_return (ec || !keep) ? Next::kClose : Next::kNextRequest;
}

// Authenticates from the headers before a body is read (and buffered); this reads the
// store (worker keys), so it runs on the blocking pool. False: refused and answered.
template <class Stream>
net::awaitable<bool> admit(Stream& stream, HttpServer::Impl& s, const HttpRequest& req) {
  std::optional<std::optional<HttpResponse>> refused;
  if (s.api.precheck_reads_store(req))
    refused = co_await offload<std::optional<HttpResponse>>(s, [&s, &req] { return s.api.precheck(req); });
  else
    refused = s.api.precheck(req);
  if (!refused) {
    co_await send_response(stream, s, pool_full(s));
    co_return false;
  }
  if (*refused) {
    co_await send_response(stream, s, **refused);
    co_return false;
  }
  co_return true;
}

// Reads the body the header announced (after a 100 Continue when asked for) under the
// route's limit. False: the connection ends (an error answer, if any, is sent).
template <class Stream>
net::awaitable<bool> read_body(Stream& stream, HttpServer::Impl& s, beast::flat_buffer& buffer,
                               RequestParser& parser) {
  auto& lowest = beast::get_lowest_layer(stream);
  beast::error_code ec;
  if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
    http::response<http::empty_body> cont{http::status::continue_, 11};
    lowest.expires_after(std::chrono::milliseconds(s.cfg.write_timeout_ms));
    co_await http::async_write(stream, cont, net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return false;
  }
  lowest.expires_after(std::chrono::milliseconds(s.cfg.read_timeout_ms));
  co_await http::async_read(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
  if (ec == http::error::body_limit) {
    co_await send_error(stream, s, 413, "body_too_large", "request body exceeds the limit for this route");
    co_return false;
  }
  if (ends_quietly(ec)) co_return false;
  if (ec) {
    co_await send_error(stream, s, 400, "bad_request", "malformed HTTP request body");
    co_return false;
  }
  co_return true;
}

template <class Stream>
net::awaitable<void> serve(Stream& stream, HttpServer::Impl& s, std::string remote) {
  beast::flat_buffer buffer;
  bool first = true;
  for (;;) {
    RequestParser parser;
    if (!co_await read_header(stream, s, buffer, parser, first)) co_return;
    first = false;
    InFlight counted(s);
    Next next = co_await write_cached_wire(stream, s, parser);
    if (next == Next::kClose) co_return;
    if (next == Next::kNextRequest) continue;
    auto& h = parser.get();
    std::string method(h.method_string());
    std::string target(h.target());
    std::uint64_t limit = s.api.body_limit(method, target);
    auto len = parser.content_length();
    if (len && *len > limit) {
      co_await send_error(stream, s, 413, "body_too_large", "request body exceeds the limit for this route");
      co_return;
    }
    parser.body_limit(limit);
    HttpRequest req = head_of(h, std::move(method), std::move(target), remote);
    const bool head = req.method == "HEAD";
    next = co_await write_cached(stream, s, parser, req, head);
    if (next == Next::kClose) co_return;
    if (next == Next::kNextRequest) continue;
    if (!co_await admit(stream, s, req)) co_return;
    BodyReservation budget(s, parser.is_done() ? 0 : len ? *len : limit);
    if (!budget.ok()) {
      co_await send_error(stream, s, 503, "busy", "too many request bodies in flight, retry");
      co_return;
    }
    if (!parser.is_done() && !co_await read_body(stream, s, buffer, parser)) co_return;
    auto req_msg = parser.release();
    req.body = std::move(req_msg.body());
    auto res = co_await offload<HttpResponse>(s, [&s, &req] { return s.api.handle(req); });
    if (!res) {
      co_await send_response(stream, s, pool_full(s));
      co_return;
    }
    bool keep = req_msg.keep_alive() && !res->close && !s.stopping.load();
    beast::error_code ec = co_await write_answer(stream, s, *res, req_msg.version(), keep, head);
    if (ec || !keep) co_return;
  }
}

void log_exception(const std::exception_ptr& e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::warn("http session ended with exception: {}", ex.what());
  }
}

net::awaitable<void> plain_session(tcp::socket socket, HttpServer::Impl& s) {
  beast::error_code ec;
  auto ep = socket.remote_endpoint(ec);
  std::string remote = ec ? "" : ep.address().to_string();
  beast::tcp_stream stream(std::move(socket));
  co_await serve(stream, s, remote);
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

net::awaitable<void> tls_session(tcp::socket socket, HttpServer::Impl& s) {
  beast::error_code ec;
  auto ep = socket.remote_endpoint(ec);
  std::string remote = ec ? "" : ep.address().to_string();
  beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(socket)), *s.tls);
  beast::get_lowest_layer(stream).expires_after(std::chrono::milliseconds(s.cfg.read_timeout_ms));
  co_await stream.async_handshake(ssl::stream_base::server, net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return;
  co_await serve(stream, s, remote);
  beast::get_lowest_layer(stream).expires_after(1s);
  co_await stream.async_shutdown(net::redirect_error(net::use_awaitable, ec));
}

// Answers a connection over the limit without a coroutine: one non-blocking write, then close.
void refuse_connection(tcp::socket& socket) {
  static constexpr std::string_view kBusy =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nRetry-After: 1\r\n"
      "Content-Length: 73\r\n\r\n{\"error\":{\"code\":\"busy\",\"message\":\"too many connections, retry later\"}}";
  beast::error_code ec;
  socket.non_blocking(true, ec);
  socket.write_some(net::buffer(kBusy.data(), kBusy.size()), ec);
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
}

bool out_of_descriptors(const beast::error_code& ec) {
  return ec == net::error::no_descriptors || ec.value() == ENFILE || ec == net::error::no_buffer_space ||
         ec == net::error::no_memory;
}

net::awaitable<void> accept_loop(HttpServer::Impl& s) {
  net::steady_timer backoff(s.ioc);
  std::chrono::milliseconds wait = 10ms;
  for (;;) {
    beast::error_code ec;
    tcp::socket socket = co_await s.acceptor.async_accept(s.next_context(),
                                                          net::redirect_error(net::use_awaitable, ec));
    if (ec) {
      if (s.stopping.load() || ec == net::error::operation_aborted) co_return;
      // Out of descriptors (EMFILE/ENFILE) or memory: the pending connection stays queued, so an
      // immediate retry fails again. Wait, doubling up to 1 s, instead of spinning.
      if (out_of_descriptors(ec)) {
        if (wait == 10ms) spdlog::warn("accept: {}; backing off", ec.message());
        wait = std::min<std::chrono::milliseconds>(wait * 2, 1000ms);
      } else {
        spdlog::warn("accept: {}", ec.message());
      }
      backoff.expires_after(wait);
      co_await backoff.async_wait(net::redirect_error(net::use_awaitable, ec));
      continue;
    }
    wait = 10ms;
    if (s.connections.load() >= s.cfg.max_connections) {
      s.api.handle_rejected(503);
      refuse_connection(socket);
      continue;
    }
    s.connections.fetch_add(1);
    auto release = [&s](const std::exception_ptr& e) {
      s.connections.fetch_sub(1);
      log_exception(e);
    };
    auto ex = socket.get_executor();
    if (s.tls) net::co_spawn(ex, tls_session(std::move(socket), s), release);
    else net::co_spawn(ex, plain_session(std::move(socket), s), release);
  }
}

}  // namespace

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() = default;

Result<std::unique_ptr<HttpServer>> HttpServer::create(Api& api, const HttpConfig& config) {
  auto impl = std::make_unique<Impl>(api, config);
  KMR_ASSIGN_OR_RETURN(auto hp, split_listen(config.listen));
  beast::error_code ec;
  auto addr = net::ip::make_address(hp.first, ec);
  if (ec) return malformed("listen address \"" + hp.first + "\": " + ec.message());
  tcp::endpoint ep(addr, hp.second);
  impl->acceptor.open(ep.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(ep, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return io_error("cannot listen on " + config.listen + ": " + ec.message());
  if (!config.tls_cert.empty()) {
    impl->tls = std::make_unique<ssl::context>(ssl::context::tls_server);
    impl->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                           ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    impl->tls->use_certificate_chain_file(config.tls_cert, ec);
    if (ec) return io_error("TLS certificate " + config.tls_cert + ": " + ec.message());
    impl->tls->use_private_key_file(config.tls_key, ssl::context::pem, ec);
    if (ec) return io_error("TLS key " + config.tls_key + ": " + ec.message());
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

BlockingPool& HttpServer::blocking_pool() { return impl_->pool; }

std::uint16_t HttpServer::port() const {
  beast::error_code ec;
  return impl_->acceptor.local_endpoint(ec).port();
}

void HttpServer::run(const std::function<void()>& on_signal) {
  Impl& s = *impl_;
  s.signals.async_wait([&s, on_signal](beast::error_code ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: shutting down (grace {} ms)", sig, s.cfg.shutdown_grace_ms);
    if (on_signal) on_signal();
    s.begin_shutdown();
  });
  net::co_spawn(s.ioc, accept_loop(s), log_exception);
  std::vector<std::thread> threads;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> busy;
  for (auto& c : s.more_iocs) {
    busy.push_back(net::make_work_guard(*c));
    threads.emplace_back([c = c.get()] { c->run(); });
  }
  s.ioc.run();
  s.stop_all();
  for (auto& t : threads) t.join();
}

void HttpServer::stop() {
  net::post(impl_->ioc, [this] { impl_->begin_shutdown(); });
}

}  // namespace kmr::server

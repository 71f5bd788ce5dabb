#include "attest/test_http_server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace kmr::attest::testing {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

struct TestHttpServer::Impl {
  boost::asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::atomic<bool> stop{false};
  Handler handler;
};

TestHttpServer::TestHttpServer(Handler handler) : impl_(new Impl) {
  impl_->handler = std::move(handler);
  tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen();
  port_ = impl_->acceptor.local_endpoint().port();
  Impl* impl = impl_.get();
  thread_ = std::thread([impl] {
    while (!impl->stop.load()) {
      boost::system::error_code ec;
      tcp::socket sock(impl->ioc);
      impl->acceptor.accept(sock, ec);
      if (ec || impl->stop.load()) continue;
      beast::flat_buffer buf;
      http::request<http::string_body> req;
      http::read(sock, buf, req, ec);
      if (ec) continue;
      net::HttpRequest request;
      request.method = std::string(req.method_string());
      request.target = std::string(req.target());
      net::HttpResponse r = impl->handler(request);
      http::response<http::string_body> res{static_cast<http::status>(r.status), 11};
      res.set(http::field::content_type, r.content_type);
      for (const auto& [name, value] : r.headers) res.set(name, value);
      res.set(http::field::connection, "close");
      res.body() = std::move(r.body);
      res.prepare_payload();
      http::write(sock, res, ec);
      sock.shutdown(tcp::socket::shutdown_both, ec);
    }
  });
}

TestHttpServer::~TestHttpServer() {
  impl_->stop.store(true);
  // Unblock accept() with one last connection.
  try {
    boost::asio::io_context ioc;
    tcp::socket s(ioc);
    boost::system::error_code ec;
    s.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port_), ec);
  } catch (...) {
  }
  thread_.join();
}

}  // namespace kmr::attest::testing

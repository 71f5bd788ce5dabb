#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "rebuilder/net/http_types.h"

namespace kmr::attest::testing {

// A tiny synchronous Boost.Beast HTTP/1.1 server on 127.0.0.1 (ephemeral
// port) for tests: one connection at a time, one request per connection.
class TestHttpServer {
 public:
  using Handler = std::function<net::HttpResponse(const net::HttpRequest& request)>;
  explicit TestHttpServer(Handler handler);
  ~TestHttpServer();
  TestHttpServer(const TestHttpServer&) = delete;
  TestHttpServer& operator=(const TestHttpServer&) = delete;
  unsigned short port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  unsigned short port_ = 0;
  std::thread thread_;
};

}  // namespace kmr::attest::testing

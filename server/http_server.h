#pragma once

// The HTTP/1.1 front end of kmrd (Boost.Beast, C++20 coroutines). Only
// http_server.cc includes Beast; everything it serves comes from Api. The I/O
// threads never block: cached documents (Api::handle_cached) are answered on
// them, everything else runs on a bounded BlockingPool and the answer is
// written back on the connection's strand; a full pool answers 503 with
// Retry-After.

#include <cstdint>
#include <functional>
#include <memory>

#include "rebuilder/base/result.h"
#include "server/api.h"
#include "server/blocking_pool.h"
#include "server/config.h"

namespace kmr::server {

class HttpServer {
 public:
  static Result<std::unique_ptr<HttpServer>> create(Api& api, const HttpConfig& config);
  ~HttpServer();
  std::uint16_t port() const;
  // Serves until stop() or SIGTERM/SIGINT. On a signal: calls on_signal, stops
  // accepting, lets in-flight requests finish (up to shutdown_grace_ms), returns.
  void run(const std::function<void()>& on_signal);
  // Thread-safe: begins the same graceful shutdown.
  void stop();
  // Where handlers that may block run (Api::handle, worker prechecks).
  BlockingPool& blocking_pool();

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kmr::server

#pragma once

// Test-only servers for the HTTP client tests: nginx run from a generated
// configuration (an independent, real HTTP/TLS server), a scripted plain TCP
// server that answers with exact bytes (lying Content-Length, stalls,
// redirects between origins), and a forward proxy (CONNECT and absolute-form
// requests) that records what it was asked.

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "rebuilder/base/result.h"

namespace kmr::net::testing {

// A free TCP port on 127.0.0.1 (bound once, then released).
Result<std::uint16_t> free_port();
// True once something accepts TCP connections on 127.0.0.1:port.
bool wait_for_port(std::uint16_t port, std::chrono::milliseconds timeout);

// nginx in the foreground with `http_block` as the body of its http { }
// section; stopped (SIGQUIT, then SIGKILL) on destruction.
class Nginx {
 public:
  // `dir` gets nginx.conf, logs and temp directories; waits until every port
  // in `ports` accepts connections.
  static Result<std::unique_ptr<Nginx>> start(const std::string& dir, const std::string& http_block,
                                             const std::vector<std::uint16_t>& ports);
  ~Nginx();
  std::string error_log() const;

 private:
  Nginx(pid_t pid, std::string dir) : pid_(pid), dir_(std::move(dir)) {}
  pid_t pid_;
  std::string dir_;
};

// A TCP listener on 127.0.0.1 whose thread hands each accepted connection
// to on_connection(), one at a time. Derived classes call stop() first in
// their destructor.
class LoopbackServer {
 public:
  virtual ~LoopbackServer();
  std::uint16_t port() const { return port_; }

 protected:
  LoopbackServer() = default;
  Result<void> start_listening();
  void stop();
  // Readable when the server stops; poll it beside a connection.
  int stop_fd() const { return stop_pipe_[0]; }
  virtual void on_connection(int fd) = 0;

 private:
  void serve();
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::thread thread_;
};

struct ScriptedReply {
  std::string bytes;               // written as is
  bool stall = false;              // then keep the connection open, silent
};

// A plain TCP server on 127.0.0.1 answering each request (head plus a
// Content-Length body) with the handler's bytes, then closing.
class ScriptedServer : public LoopbackServer {
 public:
  using Handler = std::function<ScriptedReply(const std::string& request)>;
  // With `read_request` false, nothing is read: the connection just stalls
  // or gets the bytes (a server that never answers a TLS ClientHello).
  static Result<std::unique_ptr<ScriptedServer>> start(Handler handler, bool read_request = true);
  ~ScriptedServer() override;
  // Every request received so far (head and body).
  std::vector<std::string> requests() const;

 private:
  ScriptedServer(Handler handler, bool read_request) : handler_(std::move(handler)), read_request_(read_request) {}
  void on_connection(int fd) override;

  Handler handler_;
  bool read_request_;
  mutable std::mutex mu_;
  std::vector<std::string> requests_;
  std::vector<int> stalled_;
};

// A forward proxy on 127.0.0.1: "CONNECT host:port" opens a tunnel,
// "GET http://host:port/path" is forwarded in origin form. Request lines
// are recorded; CONNECTs to a port in `deny_ports` get 403.
class TestProxy : public LoopbackServer {
 public:
  static Result<std::unique_ptr<TestProxy>> start(std::vector<std::uint16_t> deny_ports = {});
  ~TestProxy() override;
  std::vector<std::string> request_lines() const;

 private:
  explicit TestProxy(std::vector<std::uint16_t> deny) : deny_(std::move(deny)) {}
  void on_connection(int client) override;

  std::vector<std::uint16_t> deny_;
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

}  // namespace kmr::net::testing

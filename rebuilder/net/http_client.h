#pragma once

// The one HTTP(S) client of kmr (kmrd sync, kmr-worker, kmr query).
//
// Synchronous calls, each on a private Asio io_context: one connection per
// request ("Connection: close"), TLS through OpenSSL verifying the peer
// against the system trust store (plus an optional CA file) with SNI and
// host-name checks, optional certificate pinning, redirects with a cap (never
// from https to http), a connect timeout, a read timeout (longest silence) and
// a deadline for the whole call, body limits, and http_proxy / https_proxy /
// no_proxy (CONNECT tunnels for https). Downloads stream to a file through
// SHA-256; nothing is held whole in memory. See rebuilder/net/README.md.

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/result.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/net/proxy.h"
#include "rebuilder/net/response_reader.h"
#include "rebuilder/net/tls_options.h"
#include "rebuilder/net/url.h"

namespace kmr::net {

struct ClientOptions {
  // Name resolution is the system resolver's (its own timeouts apply);
  // this covers TCP connect, the proxy's CONNECT answer and the TLS handshake.
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(15)};
  // Longest wait for the next bytes while sending or receiving.
  std::chrono::milliseconds read_timeout{std::chrono::seconds(60)};
  // The whole call, redirects included.
  std::chrono::milliseconds deadline{std::chrono::minutes(30)};
  int max_redirects = 5;
  std::size_t max_header_bytes = 64 * 1024;
  TlsOptions tls;
  ProxyOptions proxy = ProxyOptions::from_environment();
  // "" = "kmr/<version>".
  std::string user_agent;
};

// The defaults with `deadline` for the whole call and the connect and read
// timeouts cut to it (for callers with one timeout per call).
ClientOptions options_with_deadline(std::chrono::milliseconds deadline);

struct Request {
  std::string method = "GET";
  std::string url;
  // Sent as given (names must be tokens, values free of CR, LF and NUL).
  // Authorization, Cookie and Proxy-Authorization are dropped when a
  // redirect leaves the origin.
  Headers headers;
  std::string body;
  bool follow_redirects = true;
};

struct Response {
  int status = 0;
  std::string reason;
  std::string url;  // the final URL, after redirects
  Headers headers;
  std::string body;

  std::string header(std::string_view name) const { return find_header(headers, name); }
};

struct DownloadOptions {
  std::uint64_t max_bytes = 0;
  // When set, a body with another digest fails and no file is left.
  std::optional<Digest256> expected_sha256;
  int file_mode = 0644;
};

struct Download {
  std::string url;  // the final URL, after redirects
  Headers headers;
  std::uint64_t size = 0;
  Digest256 sha256{};
};

class HttpClient {
 public:
  // Loads the trust store and the CA file; checks the proxy settings.
  static Result<HttpClient> create(ClientOptions options = {});
  ~HttpClient();
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;

  // Any status is a result; the body is kept up to `max_body` bytes (a
  // larger one is an error).
  Result<Response> request(const Request& request, std::uint64_t max_body) const;
  // A GET that must answer 2xx; the body in memory, for small documents.
  Result<std::string> get(const std::string& url, std::uint64_t max_body) const;
  // A GET that must answer 200, streamed into `path` through SHA-256: the
  // bytes go to a temporary file beside it, fsynced and renamed into place
  // only when complete (and matching expected_sha256 when given).
  Result<Download> download(const std::string& url, const std::string& path, const DownloadOptions& options) const;
  // A GET that must answer 200, its body passed to `sink` as it arrives.
  Result<Response> get_to_sink(const std::string& url, std::uint64_t max_body, const BodySink& sink) const;

  const ClientOptions& options() const;

 private:
  struct Impl;
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One GET for callers with one deadline: a file:///path is read from disk
// (net::file_url_path), an http(s):// URL fetched with the default options
// and `deadline` for the whole call; the body of a 200 answer, at most
// `max_body` bytes.
Result<std::string> fetch_url(const std::string& url, std::chrono::milliseconds deadline, std::uint64_t max_body);

}  // namespace kmr::net

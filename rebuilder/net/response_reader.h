#pragma once

// The HTTP/1.1 response parser of the client, fed with bytes as they arrive
// (Beast's parser with our limits and checks). Kept apart from the sockets so
// the fuzz target drives exactly the code the client runs.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"

namespace kmr::net {

using Headers = std::vector<std::pair<std::string, std::string>>;

// First value of a header, compared case-insensitively; "" when absent.
std::string find_header(const Headers& headers, std::string_view name);

struct ResponseHead {
  int status = 0;
  std::string reason;
  Headers headers;
  std::optional<std::uint64_t> content_length;
  bool chunked = false;

  std::string header(std::string_view name) const { return find_header(headers, name); }
};

// Receives body bytes in order; an error stops the transfer.
using BodySink = std::function<Result<void>(Bytes)>;

class ResponseReader {
 public:
  // `no_body`: the response to a HEAD or CONNECT request carries no body.
  ResponseReader(std::size_t max_header_bytes, bool no_body);
  ~ResponseReader();
  ResponseReader(const ResponseReader&) = delete;
  ResponseReader& operator=(const ResponseReader&) = delete;

  // Consumes a prefix of `data` and returns its length; the rest must be
  // offered again, with more bytes after it. Before the head is complete it
  // stops at the end of the head; afterwards body bytes go to the sink.
  Result<std::size_t> feed(Bytes data);
  // The peer closed the connection: completes a body delimited by the close,
  // or reports what was cut off.
  Result<void> finish();

  bool head_done() const { return head_.has_value(); }
  // Valid once head_done().
  const ResponseHead& head() const { return *head_; }
  // Called once after the head, before body bytes are fed: sets the sink and
  // the largest body accepted (checked against Content-Length at once).
  Result<void> start_body(BodySink sink, std::uint64_t max_body);
  bool done() const;
  // True when only the connection's close can end the body.
  bool close_delimited() const;
  std::uint64_t body_bytes() const { return body_bytes_; }

 private:
  struct Impl;
  Result<void> take_head();
  Result<std::size_t> feed_body(Bytes data);

  std::unique_ptr<Impl> impl_;
  std::optional<ResponseHead> head_;
  BodySink sink_;
  std::uint64_t max_body_ = 0;
  std::uint64_t body_bytes_ = 0;
  int interim_heads_ = 0;
  bool body_started_ = false;
};

}  // namespace kmr::net

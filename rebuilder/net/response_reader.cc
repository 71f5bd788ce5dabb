#include "rebuilder/net/response_reader.h"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>

#include <array>
#include <limits>

namespace kmr::net {

namespace beast = boost::beast;
namespace http = beast::http;

namespace {

constexpr std::size_t kChunk = std::size_t{64} * 1024;
constexpr int kMaxInterimHeads = 8;

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto la = a[i] >= 'A' && a[i] <= 'Z' ? a[i] - 'A' + 'a' : a[i];
    auto lb = b[i] >= 'A' && b[i] <= 'Z' ? b[i] - 'A' + 'a' : b[i];
    if (la != lb) return false;
  }
  return true;
}

Error parse_error(const beast::error_code& ec) {
  if (ec == http::error::header_limit) return limit_exceeded("response header larger than the limit");
  return malformed("bad HTTP response: " + ec.message());
}

}  // namespace

std::string find_header(const Headers& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return "";
}

struct ResponseReader::Impl {
  std::size_t max_header_bytes;
  bool no_body;
  std::optional<http::response_parser<http::buffer_body>> parser;
  std::array<char, kChunk> chunk{};

  void reset() {
    parser.emplace();
    parser->header_limit(static_cast<std::uint32_t>(max_header_bytes));
    // Enforced by ResponseReader with its own message. (Not boost::none:
    // Beast 1.74 compares Content-Length against an empty optional as larger.)
    parser->body_limit(std::numeric_limits<std::uint64_t>::max());
    parser->skip(no_body);
  }
};

ResponseReader::ResponseReader(std::size_t max_header_bytes, bool no_body) : impl_(std::make_unique<Impl>()) {
  impl_->max_header_bytes = max_header_bytes;
  impl_->no_body = no_body;
  impl_->reset();
}

ResponseReader::~ResponseReader() = default;

bool ResponseReader::done() const { return head_done() && impl_->parser->is_done(); }

bool ResponseReader::close_delimited() const {
  return head_done() && !impl_->parser->is_done() && !impl_->parser->chunked() && !impl_->parser->content_length();
}

Result<void> ResponseReader::take_head() {
  auto& msg = impl_->parser->get();
  int status = static_cast<int>(msg.result_int());
  if (status < 100 || status > 599) return malformed("bad HTTP status " + std::to_string(status));
  if (status < 200 && status != 101) {
    // Interim response (100 Continue, 103 Early Hints): the real one follows.
    if (++interim_heads_ > kMaxInterimHeads) return malformed("too many interim (1xx) responses");
    impl_->reset();
    return ok();
  }
  if (status == 101) return unsupported("server switched protocols (HTTP 101)");
  ResponseHead head;
  head.status = status;
  head.reason = std::string(msg.reason());
  for (const auto& field : msg) head.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  if (auto len = impl_->parser->content_length()) head.content_length = *len;
  head.chunked = impl_->parser->chunked();
  head_ = std::move(head);
  return ok();
}

Result<void> ResponseReader::start_body(BodySink sink, std::uint64_t max_body) {
  KMR_CHECK(head_done() && !body_started_);
  body_started_ = true;
  sink_ = std::move(sink);
  max_body_ = max_body;
  if (!impl_->parser->is_done() && head_->content_length && *head_->content_length > max_body) {
    return limit_exceeded("response body of " + std::to_string(*head_->content_length) +
                          " bytes (Content-Length) exceeds the limit of " + std::to_string(max_body) + " bytes");
  }
  return ok();
}

Result<std::size_t> ResponseReader::feed(Bytes data) {
  if (!head_done()) {
    beast::error_code ec;
    std::size_t used = impl_->parser->put(boost::asio::buffer(data.data(), data.size()), ec);
    if (ec == http::error::need_more) return used;
    if (ec) return parse_error(ec);
    if (impl_->parser->is_header_done()) KMR_TRY(take_head());
    return used;
  }
  KMR_CHECK(body_started_);
  return feed_body(data);
}

Result<std::size_t> ResponseReader::feed_body(Bytes data) {
  if (impl_->parser->is_done()) return std::size_t{0};
  auto& body = impl_->parser->get().body();
  body.data = impl_->chunk.data();
  body.size = impl_->chunk.size();
  beast::error_code ec;
  std::size_t used = impl_->parser->put(boost::asio::buffer(data.data(), data.size()), ec);
  if (ec && ec != http::error::need_more && ec != http::error::need_buffer) return parse_error(ec);
  std::size_t got = impl_->chunk.size() - body.size;
  body.data = nullptr;
  body.size = 0;
  if (got > 0) {
    body_bytes_ += got;
    if (body_bytes_ > max_body_) {
      return limit_exceeded("response body exceeds the limit of " + std::to_string(max_body_) + " bytes");
    }
    KMR_TRY(sink_(Bytes(reinterpret_cast<const std::uint8_t*>(impl_->chunk.data()), got)));
  }
  return used;
}

Result<void> ResponseReader::finish() {
  if (!head_done()) {
    return io_error(interim_heads_ == 0 ? "connection closed before a complete response header"
                                        : "connection closed after an interim (1xx) response");
  }
  if (impl_->parser->is_done()) return ok();
  beast::error_code ec;
  impl_->parser->put_eof(ec);
  if (!ec && impl_->parser->is_done()) return ok();
  if (head_->content_length) {
    return io_error("truncated body: connection closed after " + std::to_string(body_bytes_) + " of " +
                    std::to_string(*head_->content_length) + " bytes (Content-Length)");
  }
  if (head_->chunked) return io_error("truncated body: connection closed inside a chunked body after " + std::to_string(body_bytes_) + " bytes");
  return io_error("connection closed early: " + (ec ? ec.message() : std::string("incomplete message")));
}

}  // namespace kmr::net

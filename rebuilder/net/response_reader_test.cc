#include "rebuilder/net/response_reader.h"

#include <gtest/gtest.h>

#include <string>

namespace kmr::net {
namespace {

struct Parsed {
  Result<void> status = ok();
  std::string body;
  std::optional<ResponseHead> head;
};

// Feeds `wire` in pieces of `step` bytes the way the client does (unconsumed
// bytes are offered again with the next piece), then the close when
// `close_at_end`.
Parsed parse(const std::string& wire, std::size_t step, std::uint64_t max_body = 1 << 20, bool close_at_end = true,
             bool no_body = false, std::size_t max_header = 8192) {
  Parsed out;
  ResponseReader reader(max_header, no_body);
  std::string pending;
  auto sink = [&out](Bytes b) -> Result<void> {
    out.body.append(as_string_view(b));
    return ok();
  };
  // Feeds what is pending until no more progress.
  auto drain = [&]() -> Result<void> {
    for (;;) {
      if (reader.head_done() && !out.head) {
        out.head = reader.head();
        KMR_TRY(reader.start_body(sink, max_body));
      }
      if (pending.empty() || reader.done()) return ok();
      KMR_ASSIGN_OR_RETURN(std::size_t used, reader.feed(as_bytes(pending)));
      pending.erase(0, used);
      if (used == 0 && !(reader.head_done() && !out.head)) return ok();
    }
  };
  for (std::size_t pos = 0; !reader.done();) {
    if (pos < wire.size()) {
      std::size_t n = std::min(step, wire.size() - pos);
      pending += wire.substr(pos, n);
      pos += n;
      if (auto d = drain(); !d) {
        out.status = std::move(d).error();
        return out;
      }
      continue;
    }
    if (close_at_end) out.status = reader.finish();
    break;
  }
  return out;
}

const std::string kSimple =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nX-Two: a\r\nx-two: b\r\n\r\nhello world";

TEST(ResponseReader, ContentLengthInEveryPieceSize) {
  for (std::size_t step : {1u, 2u, 7u, 64u, 4096u}) {
    Parsed p = parse(kSimple, step);
    ASSERT_TRUE(p.status) << step << ": " << p.status.error().to_string();
    EXPECT_EQ(p.head->status, 200);
    EXPECT_EQ(p.head->reason, "OK");
    EXPECT_EQ(p.head->content_length, 11u);
    EXPECT_EQ(p.head->header("content-type"), "text/plain");
    EXPECT_EQ(p.head->header("X-TWO"), "a");
    EXPECT_EQ(p.head->headers.size(), 4u);
    EXPECT_EQ(p.body, "hello world");
  }
}

TEST(ResponseReader, Chunked) {
  std::string wire =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer-A: x\r\n\r\n";
  for (std::size_t step : {1u, 3u, 1000u}) {
    Parsed p = parse(wire, step);
    ASSERT_TRUE(p.status) << p.status.error().to_string();
    EXPECT_TRUE(p.head->chunked);
    EXPECT_EQ(p.body, "hello world");
  }
}

TEST(ResponseReader, CloseDelimitedBody) {
  Parsed p = parse("HTTP/1.1 200 OK\r\n\r\nuntil the end", 5);
  ASSERT_TRUE(p.status) << p.status.error().to_string();
  EXPECT_EQ(p.body, "until the end");
}

TEST(ResponseReader, NoBodyResponses) {
  Parsed head = parse("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", 10, 1 << 20, false, /*no_body=*/true);
  ASSERT_TRUE(head.status);
  EXPECT_EQ(head.head->content_length, 100u);
  EXPECT_EQ(head.body, "");
  Parsed not_modified = parse("HTTP/1.1 304 Not Modified\r\n\r\n", 10, 1 << 20, false);
  ASSERT_TRUE(not_modified.status);
  EXPECT_EQ(not_modified.head->status, 304);
  Parsed connect = parse("HTTP/1.1 200 Connection established\r\n\r\n", 100, 0, false, true);
  ASSERT_TRUE(connect.status);
}

TEST(ResponseReader, SkipsInterimResponses) {
  Parsed p = parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + kSimple, 9);
  ASSERT_TRUE(p.status) << p.status.error().to_string();
  EXPECT_EQ(p.head->status, 200);
  EXPECT_EQ(p.body, "hello world");
  std::string many;
  for (int i = 0; i < 9; ++i) many += "HTTP/1.1 100 Continue\r\n\r\n";
  EXPECT_NE(parse(many + kSimple, 50).status.error().message().find("too many interim"), std::string::npos);
}

TEST(ResponseReader, TruncatedBodies) {
  Parsed cl = parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", 3);
  ASSERT_FALSE(cl.status);
  EXPECT_EQ(cl.status.error().message(), "truncated body: connection closed after 5 of 10 bytes (Content-Length)");
  Parsed chunked = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n wo", 4);
  ASSERT_FALSE(chunked.status);
  EXPECT_EQ(chunked.status.error().message(), "truncated body: connection closed inside a chunked body after 8 bytes");
  Parsed head = parse("HTTP/1.1 200 OK\r\nContent-Le", 4);
  ASSERT_FALSE(head.status);
  EXPECT_EQ(head.status.error().message(), "connection closed before a complete response header");
  Parsed nothing = parse("", 4);
  EXPECT_FALSE(nothing.status);
}

TEST(ResponseReader, Limits) {
  Parsed big = parse("HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + std::string(2000, 'x'), 100, 1000);
  ASSERT_FALSE(big.status);
  EXPECT_EQ(big.status.error().code(), ErrorCode::kLimitExceeded);
  EXPECT_EQ(big.status.error().message(), "response body of 2000 bytes (Content-Length) exceeds the limit of 1000 bytes");
  EXPECT_EQ(big.body, "");  // refused before any body byte

  std::string chunks = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 20; ++i) chunks += "64\r\n" + std::string(100, 'y') + "\r\n";
  chunks += "0\r\n\r\n";
  Parsed big_chunked = parse(chunks, 333, 1000);
  ASSERT_FALSE(big_chunked.status);
  EXPECT_EQ(big_chunked.status.error().message(), "response body exceeds the limit of 1000 bytes");
  EXPECT_LE(big_chunked.body.size(), 1000u);

  Parsed close_delimited = parse("HTTP/1.1 200 OK\r\n\r\n" + std::string(5000, 'z'), 700, 1000);
  EXPECT_EQ(close_delimited.status.error().code(), ErrorCode::kLimitExceeded);

  std::string huge_header = "HTTP/1.1 200 OK\r\nX-Big: " + std::string(10000, 'h') + "\r\nContent-Length: 0\r\n\r\n";
  Parsed header = parse(huge_header, 512);
  ASSERT_FALSE(header.status);
  EXPECT_EQ(header.status.error().code(), ErrorCode::kLimitExceeded);
}

TEST(ResponseReader, RejectsMalformedHeads) {
  for (const std::string& wire : {
           std::string("hello\r\n\r\n"),
           std::string("HTTP/1.1 600 Weird\r\nContent-Length: 0\r\n\r\n"),
           std::string("HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n"),
           std::string("HTTP/1.1 2000 OK\r\n\r\n"),
           std::string("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"),
           std::string("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
           std::string("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
           std::string("HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n"),
           std::string("HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n", 30),
           std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
           std::string("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"),
       }) {
    Parsed p = parse(wire, 16);
    EXPECT_FALSE(p.status) << "accepted: " << wire;
  }
}

}  // namespace
}  // namespace kmr::net

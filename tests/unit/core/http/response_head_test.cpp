#include "core/http/response_head.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace moat::core::http {
namespace {

using namespace std::string_literals;

ResponseHeadParser parse(std::string_view bytes) {
  ResponseHeadParser p;
  p.feed(bytes);
  return p;
}

TEST(ResponseHead, ParsesStatusLineAndHeaders) {
  auto p = parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  b \r\n\r\nhello");
  ASSERT_EQ(p.status(), ParseStatus::kComplete);
  EXPECT_EQ(p.status_code(), 200);
  EXPECT_EQ(p.reason(), "OK");
  EXPECT_EQ(p.version(), HttpVersion::kHttp11);
  EXPECT_EQ(p.consumed(), 48u);  // the body is not consumed
  EXPECT_EQ(p.find_header("x-a"), "b");
  EXPECT_EQ(p.header_count(), 2u);
}

TEST(ResponseHead, SameResultByteByByte) {
  const std::string head = "HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\nrest";
  ResponseHeadParser p;
  std::size_t used = 0;
  for (char c : head) {
    p.feed(std::string_view(&c, 1));
    used += p.consumed_last_feed();
    if (p.status() != ParseStatus::kNeedMore) break;
  }
  ASSERT_EQ(p.status(), ParseStatus::kComplete);
  EXPECT_EQ(used, head.size() - 4);
  EXPECT_EQ(p.status_code(), 404);
  EXPECT_EQ(p.version(), HttpVersion::kHttp10);
}

TEST(ResponseHead, EmptyReasonAccepted) {
  EXPECT_EQ(parse("HTTP/1.1 204\r\n\r\n").status(), ParseStatus::kComplete);
  EXPECT_EQ(parse("HTTP/1.1 204 \r\n\r\n").status(), ParseStatus::kComplete);
}

TEST(ResponseHead, RefusesWhatCouldBeReadTwoWays) {
  for (std::string bad : {"HTTP/1.1 200 OK\nX: y\r\n\r\n"s, "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n"s,
                          "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"s,
                          "HTTP/1.1 200 OK\r\nX : a\r\n\r\n"s, "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n"s,
                          "HTTP/2 200 OK\r\n\r\n"s, "HTTP/1.1 20 OK\r\n\r\n"s,
                          "HTTP/1.1 200OK\r\n\r\n"s, "HTTP/3.0 200 OK\r\n\r\n"s,
                          "HTTP/1.1 099 x\r\n\r\n"s, "HTTP/1.1 200 OK\r\n: empty\r\n\r\n"s}) {
    auto p = parse(bad);
    EXPECT_EQ(p.status(), ParseStatus::kError) << bad;
    EXPECT_EQ(p.error().status, 502) << bad;
  }
}

TEST(ResponseHead, HeaderLimit) {
  ResponseHeadLimits limits;
  limits.max_header_bytes = 32;
  ResponseHeadParser p(limits);
  EXPECT_EQ(p.feed("HTTP/1.1 200 OK\r\nX: " + std::string(64, 'a') + "\r\n\r\n"),
            ParseStatus::kError);
  EXPECT_EQ(p.error().code, "response_headers_too_large");
}

// Lines are copied in runs (not byte by byte) when fed whole: the limits must still trip at
// the same byte, with the same error and offset, as when fed one byte at a time.
TEST(ResponseHead, LimitsTripAtTheSameByteWholeOrByteByByte) {
  struct Case {
    std::size_t status_line_limit;
    std::size_t header_limit;
    std::string head;
  };
  std::vector<Case> cases;
  const std::string status = "HTTP/1.1 200 OK";  // 15 bytes
  for (std::size_t limit : {14u, 15u, 16u}) {
    cases.push_back({limit, 1024, status + "\r\nX: y\r\n\r\n"});
  }
  // "X: " + 20 bytes + CRLF is 25 header bytes, the final CRLF 2 more.
  for (std::size_t limit : {23u, 24u, 25u, 26u, 27u, 28u}) {
    cases.push_back({1024, limit, status + "\r\nX: " + std::string(20, 'v') + "\r\n\r\n"});
  }
  cases.push_back({1024, 1024, status + "\r\nX: a\x01b\r\n\r\n"});
  cases.push_back({1024, 1024, "HTTP/1.1 200 O\tK\r\n\r\n"});
  for (const Case& c : cases) {
    ResponseHeadLimits limits;
    limits.max_status_line_bytes = c.status_line_limit;
    limits.max_header_bytes = c.header_limit;
    ResponseHeadParser whole(limits);
    whole.feed(c.head);
    ResponseHeadParser bytes(limits);
    for (char ch : c.head) {
      if (bytes.feed(std::string_view(&ch, 1)) != ParseStatus::kNeedMore) break;
    }
    ASSERT_EQ(whole.status(), bytes.status()) << c.head << " limits " << c.status_line_limit
                                              << "/" << c.header_limit;
    if (whole.status() == ParseStatus::kError) {
      EXPECT_EQ(whole.error().code, bytes.error().code) << c.head;
      EXPECT_EQ(whole.error().offset, bytes.error().offset) << c.head;
    } else {
      EXPECT_EQ(whole.find_header("x"), bytes.find_header("x"));
      EXPECT_EQ(whole.consumed(), bytes.consumed());
    }
  }
}

ResponseFraming framing(std::string_view head, bool was_head = false) {
  return classify_response_framing(parse(head), was_head);
}

TEST(ResponseFramingTest, Kinds) {
  using K = ResponseFraming::Kind;
  EXPECT_EQ(framing("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n").kind, K::kContentLength);
  EXPECT_EQ(framing("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n").content_length, 12u);
  EXPECT_EQ(framing("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n").kind, K::kContentLength);
  EXPECT_EQ(framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n").kind, K::kChunked);
  EXPECT_EQ(framing("HTTP/1.1 200 OK\r\n\r\n").kind, K::kUntilClose);
  EXPECT_EQ(framing("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n").kind, K::kNone);
  EXPECT_EQ(framing("HTTP/1.1 304 Not Modified\r\n\r\n").kind, K::kNone);
  EXPECT_EQ(framing("HTTP/1.1 100 Continue\r\n\r\n").kind, K::kNone);
  EXPECT_EQ(framing("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).kind, K::kNone);
}

TEST(ResponseFramingTest, StrictErrors) {
  using K = ResponseFraming::Kind;
  for (const char* bad :
       {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n"}) {
    EXPECT_EQ(framing(bad).kind, K::kError) << bad;
  }
}

TEST(ResponseHead, ListContainsToken) {
  EXPECT_TRUE(list_contains_token("keep-alive, Close", "close"));
  EXPECT_TRUE(list_contains_token(" close ", "close"));
  EXPECT_FALSE(list_contains_token("closed", "close"));
  EXPECT_FALSE(list_contains_token("", "close"));
}

}  // namespace
}  // namespace moat::core::http

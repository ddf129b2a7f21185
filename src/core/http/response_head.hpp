// core/http: strict, incremental HTTP/1.1 response-head parsing (RFC 9112 4) for the edge's
// upstream side, and how a response body is delimited (RFC 9112 6.3). Pure (no I/O) and bounded.
// Upstreams are less hostile than clients, but a proxy that reads a response two ways desyncs its
// keep-alive connection (response splitting / queue poisoning), so the same rules as the request
// parser apply: CRLF only, no obs-fold, token field names, no NUL or controls in values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/http/request_head.hpp"

namespace moat::core::http {

struct ResponseHeadLimits {
  std::size_t max_status_line_bytes = 8 * 1024;  // without CRLF
  std::size_t max_header_bytes = 64 * 1024;      // field lines and the final CRLF
  std::size_t max_header_count = 200;
};

// Parses one response head from bytes that arrive in pieces of any size. Like RequestHeadParser,
// feed() stops at the end of the head and never looks at body bytes; consumed_last_feed() says
// how many bytes of the last piece were the head's. Views point into the parser's own buffer.
class ResponseHeadParser {
 public:
  explicit ResponseHeadParser(ResponseHeadLimits limits = {});

  ParseStatus feed(std::string_view bytes);
  ParseStatus status() const { return status_; }
  std::size_t consumed() const { return consumed_; }
  std::size_t consumed_last_feed() const { return consumed_last_feed_; }
  void reset();

  // Valid after kComplete.
  HttpVersion version() const { return version_; }
  int status_code() const { return status_code_; }
  std::string_view reason() const { return view(reason_); }
  std::size_t header_count() const { return fields_.size(); }
  HeaderField header(std::size_t index) const;
  std::optional<std::string_view> find_header(std::string_view name) const;
  std::size_t count_headers(std::string_view name) const;

  // Valid after kError. `status` is always 502 (the upstream sent something we do not relay).
  const ParseError& error() const { return error_; }

 private:
  struct Span {
    std::uint32_t offset = 0;
    std::uint32_t length = 0;
  };
  struct Field {
    Span name;
    Span value;
  };
  std::string_view view(Span s) const { return std::string_view(buffer_).substr(s.offset, s.length); }
  ParseStatus fail(std::string_view code, std::string_view message, std::size_t offset);
  bool end_status_line();
  bool end_header_line();

  ResponseHeadLimits limits_;
  std::string buffer_;
  std::vector<Field> fields_;
  ParseStatus status_ = ParseStatus::kNeedMore;
  bool in_headers_ = false;
  bool cr_pending_ = false;
  std::size_t consumed_ = 0;
  std::size_t consumed_last_feed_ = 0;
  std::size_t line_start_ = 0;
  std::size_t line_length_ = 0;
  std::size_t header_bytes_ = 0;
  HttpVersion version_ = HttpVersion::kHttp11;
  int status_code_ = 0;
  Span reason_;
  ParseError error_;
};

// How a response body is delimited (RFC 9112 6.3).
struct ResponseFraming {
  enum class Kind : std::uint8_t { kNone, kContentLength, kChunked, kUntilClose, kError };
  Kind kind = Kind::kNone;
  std::uint64_t content_length = 0;
  ParseError error;
};

// kNone for a response to HEAD and for 1xx, 204 and 304 (RFC 9112 6.3 items 1); kChunked for
// Transfer-Encoding: chunked; kContentLength; else kUntilClose (item 8). Strict where the RFC
// allows recovery: Transfer-Encoding with Content-Length, Transfer-Encoding other than the single
// coding "chunked", Transfer-Encoding in HTTP/1.0, and a malformed or conflicting Content-Length
// are all errors (502), so a response is never read two ways.
ResponseFraming classify_response_framing(const ResponseHeadParser& head, bool request_was_head);

// True if the comma-separated list `value` (a Connection header, RFC 9110 7.6.1) contains
// `token`, ASCII case-insensitively.
bool list_contains_token(std::string_view value, std::string_view token);

// ASCII case-insensitive equality, for header names.
bool iequals_ascii(std::string_view a, std::string_view b);

}  // namespace moat::core::http

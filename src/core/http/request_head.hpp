// core/http: strict, incremental HTTP/1.1 request-head parsing (RFC 9110, RFC 9112) for the
// egress CONNECT proxy and the edge. Pure (no I/O), bounded by RequestHeadLimits, and strict:
// anything two HTTP implementations could read differently (request smuggling) is rejected,
// never repaired. What is accepted and why: docs/parsers.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.hpp"

namespace moat::core::http {

enum class ParseStatus : std::uint8_t { kNeedMore, kComplete, kError };

// Why a head (or its framing) was refused. `code` and `message` have static storage; `status` is
// the HTTP status to answer with (400, 414, 431, 501, 505).
struct ParseError {
  std::string_view code;
  std::string_view message;
  int status = 400;
  std::size_t offset = Error::kNoOffset;  // byte offset from the start of the stream, if known

  // The same as a core Error (source: downstream), for logs.
  Error to_error() const;
};

// Each byte limit is capped at 1 GiB (offsets into the head are 32-bit).
struct RequestHeadLimits {
  // Request line without its CRLF. Exceeding it answers 414.
  std::size_t max_request_line_bytes = 8 * 1024;
  // Everything after the request line's CRLF up to and including the final empty line's CRLF.
  // Exceeding it answers 431.
  std::size_t max_header_bytes = 32 * 1024;
  // Number of header field lines. Exceeding it answers 431.
  std::size_t max_header_count = 100;
  // Empty lines (CRLF) tolerated before the request line (RFC 9112 2.2: a server SHOULD ignore at
  // least one); more is an error.
  std::size_t max_leading_empty_lines = 2;
  // RFC 9112 3.2: an HTTP/1.1 request without Host is answered 400. Off only for tests/tools.
  bool require_host = true;
};

enum class HttpVersion : std::uint8_t { kHttp10, kHttp11 };

// RFC 9112 3.2: which of the four request-target forms the target is in.
enum class TargetForm : std::uint8_t { kOrigin, kAbsolute, kAuthority, kAsterisk };

struct HeaderField {
  std::string_view name;   // as received (case preserved)
  std::string_view value;  // leading and trailing SP/HTAB removed
};

class RequestHeadParser;

// The header fields in the order received. Iterating yields HeaderField by value.
class HeaderList {
 public:
  class Iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = HeaderField;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = HeaderField;

    Iterator() = default;
    Iterator(const RequestHeadParser* parser, std::size_t index) : parser_(parser), index_(index) {}
    HeaderField operator*() const;
    Iterator& operator++() {
      ++index_;
      return *this;
    }
    Iterator operator++(int) {
      Iterator old = *this;
      ++index_;
      return old;
    }
    friend bool operator==(const Iterator&, const Iterator&) = default;

   private:
    const RequestHeadParser* parser_ = nullptr;
    std::size_t index_ = 0;
  };

  explicit HeaderList(const RequestHeadParser* parser) : parser_(parser) {}
  Iterator begin() const { return {parser_, 0}; }
  Iterator end() const;
  std::size_t size() const;

 private:
  const RequestHeadParser* parser_;
};

// Parses one request head from bytes that arrive in pieces of any size.
//
// feed() takes the next piece and stops at the end of the head: bytes after the final CRLF of the
// head (a body, or data a client pipelined behind a CONNECT) are neither stored nor looked at;
// `consumed_last_feed()` says how many bytes of the last piece belonged to the head, so the caller
// keeps the rest. Once kComplete or kError, further feeds consume nothing and return the same
// status. Views returned by the accessors point into the parser's own buffer: valid while the
// parser lives and is not reset (moving the parser keeps them valid).
class RequestHeadParser {
 public:
  explicit RequestHeadParser(RequestHeadLimits limits = {});

  ParseStatus feed(std::string_view bytes);
  ParseStatus status() const { return status_; }

  // Bytes of the stream that belong to the head so far (all pieces; leading empty lines and the
  // final empty line included). After kComplete: the head's exact length.
  std::size_t consumed() const { return consumed_; }
  // How many bytes of the most recent feed() belong to the head.
  std::size_t consumed_last_feed() const { return consumed_last_feed_; }

  // Forgets everything and starts over with the same limits (next request on a connection).
  void reset();

  // Valid after kComplete.
  std::string_view method() const { return view(method_); }
  std::string_view target() const { return view(target_); }
  HttpVersion version() const { return version_; }
  TargetForm target_form() const { return target_form_; }
  bool is_connect() const { return method() == "CONNECT"; }

  std::size_t header_count() const { return fields_.size(); }
  HeaderField header(std::size_t index) const;
  HeaderList headers() const { return HeaderList(this); }
  // First field with this name (ASCII case-insensitive), if any.
  std::optional<std::string_view> find_header(std::string_view name) const;
  // Number of field lines with this name (ASCII case-insensitive).
  std::size_t count_headers(std::string_view name) const;

  // Valid after kError.
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
  enum class Phase : std::uint8_t { kLeading, kRequestLine, kHeaders };

  std::string_view view(Span span) const {
    return std::string_view(buffer_).substr(span.offset, span.length);
  }
  ParseStatus fail(std::string_view code, std::string_view message, int status,
                   std::size_t offset);
  bool end_request_line();
  bool end_header_line();
  bool end_head();

  RequestHeadLimits limits_;
  std::string buffer_;  // the head's bytes so far (offsets in Span are into it)
  std::vector<Field> fields_;
  ParseStatus status_ = ParseStatus::kNeedMore;
  Phase phase_ = Phase::kLeading;
  bool cr_pending_ = false;
  std::size_t consumed_ = 0;
  std::size_t consumed_last_feed_ = 0;
  std::size_t leading_empty_lines_ = 0;
  std::size_t line_start_ = 0;  // buffer offset of the current line
  std::size_t line_length_ = 0;  // content bytes of the current line (CR/LF excluded)
  std::size_t header_bytes_ = 0;
  std::size_t host_count_ = 0;
  Span method_;
  Span target_;
  HttpVersion version_ = HttpVersion::kHttp11;
  TargetForm target_form_ = TargetForm::kOrigin;
  ParseError error_;
};

// How the body of a completed request is delimited (RFC 9112 6.3), decided strictly.
struct BodyFraming {
  enum class Kind : std::uint8_t { kNone, kContentLength, kChunked, kError };
  Kind kind = Kind::kNone;
  std::uint64_t content_length = 0;  // kContentLength
  ParseError error;                  // kError
};

// kNone when neither Content-Length nor Transfer-Encoding is present (no body, RFC 9112 6.3 item
// 7). Errors: both present; Transfer-Encoding in HTTP/1.0; any Transfer-Encoding other than the
// single coding "chunked" (unknown codings: 501); Content-Length not 1*DIGIT without leading
// zeros, or repeated with differing values. Calling it on an incomplete parser is an error.
BodyFraming classify_body_framing(const RequestHeadParser& head);

// A CONNECT request target (RFC 9112 3.2.3, authority-form): `host` is a view into the parsed
// text, without brackets for an IPv6 literal; not normalized (that is the policy layer's job).
struct ConnectTarget {
  std::string_view host;
  std::uint16_t port = 0;
  bool ipv6_literal = false;
};

// "host:port" or "[v6]:port" only: port required (1..65535, no leading zeros); no userinfo, path,
// query, fragment, percent-encoding, whitespace, controls or non-ASCII. Errors carry the offset.
Result<ConnectTarget> parse_connect_target(std::string_view target);

}  // namespace moat::core::http

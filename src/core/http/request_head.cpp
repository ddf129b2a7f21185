#include "core/http/request_head.hpp"
#include "core/http/syntax.hpp"

#include <algorithm>
#include <limits>

namespace moat::core::http {
namespace {

using syntax::iequals;
using syntax::is_digit;
using syntax::is_field_byte;
using syntax::is_ows;
using syntax::is_tchar;
using syntax::is_token;
using syntax::trim_ows;

// Request line: VCHAR and SP only (RFC 9112 3; the target is ASCII per RFC 3986, so obs-text is
// refused too).
constexpr bool is_request_line_byte(unsigned char c) { return c == ' ' || (c > 0x20 && c < 0x7f); }

constexpr bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// RFC 3986 3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then "://": an absolute-form
// target we accept has an authority (RFC 9110 4.2: http and https URIs always do), so that
// "host:port" is never mistaken for scheme "host" with path "port".
bool has_scheme_and_authority(std::string_view target) {
  const auto colon = target.find("://");
  if (colon == std::string_view::npos || colon == 0 || !is_alpha(target[0])) return false;
  for (std::size_t i = 1; i < colon; ++i) {
    const char c = target[i];
    if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') return false;
  }
  return true;
}

ParseError make_error(std::string_view code, std::string_view message, int status) {
  ParseError e;
  e.code = code;
  e.message = message;
  e.status = status;
  return e;
}

BodyFraming framing_error(std::string_view code, std::string_view message, int status = 400) {
  BodyFraming f;
  f.kind = BodyFraming::Kind::kError;
  f.error = make_error(code, message, status);
  return f;
}

}  // namespace

Error ParseError::to_error() const {
  Error e = Error::make(std::string(code), std::string(message), ErrorSource::kDownstream, false);
  e.offset = offset;
  return e;
}

HeaderField HeaderList::Iterator::operator*() const { return parser_->header(index_); }
HeaderList::Iterator HeaderList::end() const { return {parser_, parser_->header_count()}; }
std::size_t HeaderList::size() const { return parser_->header_count(); }

RequestHeadParser::RequestHeadParser(RequestHeadLimits limits) : limits_(limits) {
  // Offsets into the head are 32-bit: keep the whole head far below 4 GiB whatever is configured.
  constexpr std::size_t kMaxLimit = std::size_t{1} << 30;
  limits_.max_request_line_bytes = std::min(limits_.max_request_line_bytes, kMaxLimit);
  limits_.max_header_bytes = std::min(limits_.max_header_bytes, kMaxLimit);
  limits_.max_leading_empty_lines = std::min<std::size_t>(limits_.max_leading_empty_lines, 1024);
  // Room for a typical head at once instead of growing by doubling.
  buffer_.reserve(1024);
  fields_.reserve(16);
}

void RequestHeadParser::reset() { *this = RequestHeadParser(limits_); }

ParseStatus RequestHeadParser::fail(std::string_view code, std::string_view message, int status,
                                    std::size_t offset) {
  error_ = make_error(code, message, status);
  error_.offset = offset;
  status_ = ParseStatus::kError;
  return status_;
}

// Every check below is made on one byte at a time, in stream order, and never depends on where a
// piece ends: feeding the same stream in any split gives the same status, error and offset.
ParseStatus RequestHeadParser::feed(std::string_view bytes) {
  consumed_last_feed_ = 0;
  if (status_ != ParseStatus::kNeedMore) return status_;

  std::size_t flushed = 0;  // bytes of this piece already copied into buffer_
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    const std::size_t at = consumed_ + i;  // stream offset of c

    if (phase_ == Phase::kHeaders && ++header_bytes_ > limits_.max_header_bytes) {
      return fail("header_fields_too_large", "header section exceeds the size limit", 431, at);
    }

    if (cr_pending_) {
      // RFC 9112 2.2: a CR not followed by LF is refused (never treated as a line end).
      if (c != '\n') return fail("bare_cr", "CR not followed by LF", 400, at - 1);
      cr_pending_ = false;
      buffer_.append(bytes.substr(flushed, i + 1 - flushed));
      flushed = i + 1;
      bool keep_going = true;
      switch (phase_) {
        case Phase::kLeading:
          if (++leading_empty_lines_ > limits_.max_leading_empty_lines) {
            return fail("too_many_empty_lines", "too many empty lines before the request line",
                        400, at);
          }
          break;
        case Phase::kRequestLine:
          keep_going = end_request_line();
          break;
        case Phase::kHeaders:
          keep_going = line_length_ == 0 ? end_head() : end_header_line();
          break;
      }
      if (!keep_going || status_ == ParseStatus::kComplete) {
        if (status_ == ParseStatus::kComplete) {
          consumed_ += i + 1;
          consumed_last_feed_ = i + 1;
        }
        return status_;
      }
      line_start_ = buffer_.size();
      line_length_ = 0;
      continue;
    }

    if (c == '\r') {
      cr_pending_ = true;
      continue;
    }
    // RFC 9112 2.2 lets a server accept a bare LF as a line end; we do not: a front end and a back
    // end that disagree on line ends are the classic request-smuggling setup.
    if (c == '\n') return fail("bare_lf", "line ends with LF without CR", 400, at);

    switch (phase_) {
      case Phase::kLeading:
        phase_ = Phase::kRequestLine;
        line_start_ = buffer_.size() + (i - flushed);
        line_length_ = 0;
        [[fallthrough]];
      case Phase::kRequestLine:
        if (line_length_ >= limits_.max_request_line_bytes) {
          return fail("request_line_too_long", "request line exceeds the size limit", 414, at);
        }
        if (!is_request_line_byte(c)) {
          return fail("invalid_request_line_byte",
                      "control, whitespace other than SP, or non-ASCII byte in the request line",
                      400, at);
        }
        break;
      case Phase::kHeaders:
        // RFC 9112 5.2: obs-fold is refused; RFC 9112 2.2: so is whitespace between the request
        // line and the first field line.
        if (line_length_ == 0 && (c == ' ' || c == '\t')) {
          return fail("obs_fold", "field line starts with whitespace (obsolete line folding)", 400,
                      at);
        }
        if (!is_field_byte(c)) {
          return fail("invalid_field_byte", "NUL or control byte in a header field", 400, at);
        }
        break;
    }
    ++line_length_;
  }
  buffer_.append(bytes.substr(flushed));
  consumed_ += bytes.size();
  consumed_last_feed_ = bytes.size();
  return status_;
}

// RFC 9112 3: request-line = method SP request-target SP HTTP-version, exactly one SP each.
bool RequestHeadParser::end_request_line() {
  const std::string_view line = std::string_view(buffer_).substr(line_start_, line_length_);
  const std::size_t base = line_start_;
  const auto sp1 = line.find(' ');
  if (sp1 == 0 || !is_token(line.substr(0, sp1 == std::string_view::npos ? line.size() : sp1))) {
    const auto bad = std::find_if(line.begin(), line.end(), [](char c) {
      return !is_tchar(static_cast<unsigned char>(c));
    });
    fail("invalid_method", "method is not a token", 400,
         base + static_cast<std::size_t>(bad - line.begin()));
    return false;
  }
  if (sp1 == std::string_view::npos) {
    fail("invalid_request_line", "request line has no target and version", 400, base);
    return false;
  }
  const auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == sp1 + 1) {
    fail("extra_whitespace", "more than one SP between request-line parts", 400, base + sp2);
    return false;
  }
  if (sp2 == std::string_view::npos) {
    // HTTP/0.9 ("GET /") and anything else without a version.
    fail("invalid_request_line", "request line has no version", 400, base + line.size());
    return false;
  }
  const std::string_view version = line.substr(sp2 + 1);
  if (version.empty() || version.find(' ') != std::string_view::npos) {
    const auto extra = version.find(' ');
    fail("extra_whitespace", "more than one SP between request-line parts", 400,
         base + sp2 + (extra == std::string_view::npos ? 0 : extra + 1));
    return false;
  }
  // RFC 9112 2.3: HTTP-version = "HTTP" "/" DIGIT "." DIGIT, case-sensitive.
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || !is_digit(version[5]) ||
      version[6] != '.' || !is_digit(version[7])) {
    fail("invalid_version", "malformed HTTP version", 400, base + sp2 + 1);
    return false;
  }
  if (version == "HTTP/1.1") {
    version_ = HttpVersion::kHttp11;
  } else if (version == "HTTP/1.0") {
    version_ = HttpVersion::kHttp10;
  } else {
    fail("unsupported_version", "only HTTP/1.0 and HTTP/1.1 are supported", 505, base + sp2 + 1);
    return false;
  }

  method_ = {static_cast<std::uint32_t>(base), static_cast<std::uint32_t>(sp1)};
  target_ = {static_cast<std::uint32_t>(base + sp1 + 1), static_cast<std::uint32_t>(sp2 - sp1 - 1)};
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);

  // RFC 9112 3.2: which form the target must take depends on the method. The authority itself
  // is checked by parse_connect_target(), where the caller needs host and port anyway.
  if (method == "CONNECT") {
    if (target[0] == '/' || target == "*") {
      fail("invalid_target", "CONNECT needs an authority-form target (host:port)", 400,
           base + sp1 + 1);
      return false;
    }
    target_form_ = TargetForm::kAuthority;
  } else if (target[0] == '/') {
    target_form_ = TargetForm::kOrigin;
  } else if (target == "*") {
    if (method != "OPTIONS") {
      fail("invalid_target", "asterisk-form target is only valid for OPTIONS", 400,
           base + sp1 + 1);
      return false;
    }
    target_form_ = TargetForm::kAsterisk;
  } else if (has_scheme_and_authority(target)) {
    target_form_ = TargetForm::kAbsolute;
  } else {
    fail("invalid_target", "request target is neither origin-form nor absolute-form", 400,
         base + sp1 + 1);
    return false;
  }
  phase_ = Phase::kHeaders;
  return true;
}

// RFC 9112 5: field-line = field-name ":" OWS field-value OWS.
bool RequestHeadParser::end_header_line() {
  const std::string_view line = std::string_view(buffer_).substr(line_start_, line_length_);
  const std::size_t base = line_start_;
  const auto colon = line.find(':');
  if (colon == std::string_view::npos) {
    fail("missing_colon", "header field line has no colon", 400, base);
    return false;
  }
  if (colon == 0) {
    fail("empty_header_name", "header field name is empty", 400, base);
    return false;
  }
  const std::string_view name = line.substr(0, colon);
  // RFC 9112 5.1: whitespace between name and colon MUST be rejected with 400.
  if (is_ows(name.back())) {
    fail("space_before_colon", "whitespace between header field name and colon", 400,
         base + colon - 1);
    return false;
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!is_tchar(static_cast<unsigned char>(name[i]))) {
      fail("invalid_header_name", "header field name is not a token", 400, base + i);
      return false;
    }
  }
  if (fields_.size() >= limits_.max_header_count) {
    fail("too_many_headers", "too many header fields", 431, base);
    return false;
  }
  // RFC 9112 3.2: more than one Host field line is answered 400.
  if (iequals(name, "host") && ++host_count_ > 1) {
    fail("duplicate_host", "more than one Host header field", 400, base);
    return false;
  }
  std::string_view value = line.substr(colon + 1);
  std::size_t value_start = colon + 1;
  while (!value.empty() && is_ows(value.front())) {
    value.remove_prefix(1);
    ++value_start;
  }
  while (!value.empty() && is_ows(value.back())) value.remove_suffix(1);

  if (fields_.capacity() == 0) fields_.reserve(16);
  fields_.push_back(
      {{static_cast<std::uint32_t>(base), static_cast<std::uint32_t>(colon)},
       {static_cast<std::uint32_t>(base + value_start), static_cast<std::uint32_t>(value.size())}});
  return true;
}

bool RequestHeadParser::end_head() {
  if (limits_.require_host && version_ == HttpVersion::kHttp11 && host_count_ == 0) {
    fail("missing_host", "HTTP/1.1 request without a Host header field", 400, line_start_);
    return false;
  }
  status_ = ParseStatus::kComplete;
  return true;
}

HeaderField RequestHeadParser::header(std::size_t index) const {
  const Field& f = fields_[index];
  return {view(f.name), view(f.value)};
}

std::optional<std::string_view> RequestHeadParser::find_header(std::string_view name) const {
  for (const Field& f : fields_) {
    if (iequals(view(f.name), name)) return view(f.value);
  }
  return std::nullopt;
}

std::size_t RequestHeadParser::count_headers(std::string_view name) const {
  return static_cast<std::size_t>(std::count_if(
      fields_.begin(), fields_.end(), [&](const Field& f) { return iequals(view(f.name), name); }));
}

BodyFraming classify_body_framing(const RequestHeadParser& head) {
  if (head.status() != ParseStatus::kComplete) {
    return framing_error("incomplete_head", "request head is not complete");
  }
  bool has_te = false;
  bool has_cl = false;
  for (const HeaderField f : head.headers()) {
    has_te = has_te || iequals(f.name, "transfer-encoding");
    has_cl = has_cl || iequals(f.name, "content-length");
  }
  if (has_te && head.version() == HttpVersion::kHttp10) {
    // RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
    return framing_error("transfer_encoding_http10", "Transfer-Encoding in an HTTP/1.0 request");
  }
  if (has_te && has_cl) {
    // RFC 9112 6.1 lets a server reject this; an intermediary that forwards it is how a body
    // gets read two ways (CL.TE / TE.CL smuggling).
    return framing_error("content_length_with_transfer_encoding",
                         "both Content-Length and Transfer-Encoding present");
  }

  if (has_te) {
    // Only the single coding "chunked" is supported, across all Transfer-Encoding lines.
    std::size_t chunked = 0;
    for (const HeaderField f : head.headers()) {
      if (!iequals(f.name, "transfer-encoding")) continue;
      std::string_view rest = f.value;
      while (true) {
        const auto comma = rest.find(',');
        const std::string_view element = trim_ows(rest.substr(0, comma));
        const auto semicolon = element.find(';');
        const std::string_view coding = trim_ows(element.substr(0, semicolon));
        if (!is_token(coding)) {
          return framing_error("invalid_transfer_encoding", "malformed Transfer-Encoding");
        }
        if (iequals(coding, "chunked")) {
          if (semicolon != std::string_view::npos) {
            return framing_error("invalid_transfer_encoding", "chunked takes no parameters");
          }
          ++chunked;
        } else {
          // RFC 9112 6.1: a transfer coding the server does not understand: 501.
          return framing_error("unsupported_transfer_coding",
                               "transfer coding other than chunked", 501);
        }
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
    }
    if (chunked != 1) {
      return framing_error("chunked_repeated", "chunked applied more than once");
    }
    BodyFraming f;
    f.kind = BodyFraming::Kind::kChunked;
    return f;
  }

  if (has_cl) {
    // Leading zeros are refused: some parsers read them as octal.
    syntax::ContentLengthReader length(/*allow_leading_zeros=*/false);
    for (const HeaderField f : head.headers()) {
      if (!iequals(f.name, "content-length")) continue;
      auto state = length.add(f.value);
      if (state == syntax::ContentLengthReader::State::kMalformed) {
        return framing_error("invalid_content_length", "malformed Content-Length");
      }
      if (state == syntax::ContentLengthReader::State::kConflicting) {
        return framing_error("conflicting_content_length", "Content-Length values differ");
      }
    }
    BodyFraming f;
    f.kind = BodyFraming::Kind::kContentLength;
    f.content_length = length.length();
    return f;
  }
  return BodyFraming{};
}

Result<ConnectTarget> parse_connect_target(std::string_view target) {
  auto error = [](std::string code, std::string message, std::size_t offset) {
    return Error::make(std::move(code), std::move(message), ErrorSource::kDownstream, false)
        .at(offset);
  };
  if (target.empty()) return error("connect_target_empty", "CONNECT target is empty", 0);
  for (std::size_t i = 0; i < target.size(); ++i) {
    const auto c = static_cast<unsigned char>(target[i]);
    if (c <= 0x20 || c >= 0x7f) {
      return error("connect_target_invalid_byte",
                   "whitespace, control or non-ASCII byte in CONNECT target", i);
    }
    switch (c) {
      case '@':
        return error("connect_target_userinfo", "CONNECT target must not carry userinfo", i);
      case '/': case '?': case '#':
        return error("connect_target_path",
                     "CONNECT target must be host:port only (no path, query or fragment)", i);
      case '%':
        return error("connect_target_percent", "percent-encoding in CONNECT target host", i);
      default:
        break;
    }
  }

  ConnectTarget out;
  std::size_t port_at = 0;
  if (target[0] == '[') {
    // RFC 3986 3.2.2: IP-literal. Only IPv6 characters; zone ids ("%") and IPvFuture ("v1.x")
    // are refused. Full address syntax is checked by the policy layer's normalize_host.
    const auto close = target.find(']');
    if (close == std::string_view::npos) {
      return error("connect_target_bracket", "unclosed '[' in CONNECT target", 0);
    }
    const std::string_view inner = target.substr(1, close - 1);
    if (inner.empty() || inner.find(':') == std::string_view::npos) {
      return error("connect_target_ipv6", "bracketed host is not an IPv6 address", 1);
    }
    for (std::size_t i = 0; i < inner.size(); ++i) {
      if (!is_hex(inner[i]) && inner[i] != ':' && inner[i] != '.') {
        return error("connect_target_ipv6", "bracketed host is not an IPv6 address", 1 + i);
      }
    }
    if (close + 1 >= target.size() || target[close + 1] != ':') {
      return error("connect_target_port_missing", "CONNECT target needs a port", close + 1);
    }
    out.host = inner;
    out.ipv6_literal = true;
    port_at = close + 2;
  } else {
    const auto colon = target.rfind(':');
    if (colon == std::string_view::npos) {
      return error("connect_target_port_missing", "CONNECT target needs a port", target.size());
    }
    const std::string_view host = target.substr(0, colon);
    if (host.empty()) return error("connect_target_host_empty", "CONNECT target has no host", 0);
    // reg-name restricted to what DNS names and IPv4 literals use (RFC 1123); sub-delims are
    // legal URI syntax but never part of a host we would connect to.
    for (std::size_t i = 0; i < host.size(); ++i) {
      const char c = host[i];
      if (c == ':') {
        return error("connect_target_ipv6_unbracketed", "IPv6 address must be in brackets", i);
      }
      if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '.' && c != '_') {
        return error("connect_target_host_invalid", "invalid character in CONNECT target host",
                     i);
      }
    }
    if (host.size() > 255) {
      return error("connect_target_host_too_long", "CONNECT target host is too long", 255);
    }
    out.host = host;
    port_at = colon + 1;
  }

  const std::string_view port = target.substr(port_at);
  if (port.empty()) {
    return error("connect_target_port_missing", "CONNECT target needs a port", port_at);
  }
  if (port.size() > 5 || port[0] == '0' || !std::all_of(port.begin(), port.end(), is_digit)) {
    return error("connect_target_port_invalid", "CONNECT port must be 1..65535", port_at);
  }
  std::uint32_t value = 0;
  for (const char c : port) value = value * 10 + static_cast<std::uint32_t>(c - '0');
  if (value > std::numeric_limits<std::uint16_t>::max()) {
    return error("connect_target_port_invalid", "CONNECT port must be 1..65535", port_at);
  }
  out.port = static_cast<std::uint16_t>(value);
  return out;
}

}  // namespace moat::core::http

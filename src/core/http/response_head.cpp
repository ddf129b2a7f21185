#include "core/http/response_head.hpp"
#include "core/http/syntax.hpp"

#include <algorithm>

namespace moat::core::http {
namespace {

using syntax::is_digit;
using syntax::is_field_byte;
using syntax::is_ows;
using syntax::is_tchar;
using syntax::is_token;
using syntax::trim_ows;

ResponseFraming framing_error(std::string_view code, std::string_view message) {
  ResponseFraming f;
  f.kind = ResponseFraming::Kind::kError;
  f.error.code = code;
  f.error.message = message;
  f.error.status = 502;
  return f;
}

}  // namespace

bool iequals_ascii(std::string_view a, std::string_view b) { return syntax::iequals(a, b); }

bool list_contains_token(std::string_view value, std::string_view token) {
  while (true) {
    const auto comma = value.find(',');
    if (iequals_ascii(trim_ows(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) return false;
    value.remove_prefix(comma + 1);
  }
}

ResponseHeadParser::ResponseHeadParser(ResponseHeadLimits limits) : limits_(limits) {
  constexpr std::size_t kMaxLimit = std::size_t{1} << 30;
  limits_.max_status_line_bytes = std::min(limits_.max_status_line_bytes, kMaxLimit);
  limits_.max_header_bytes = std::min(limits_.max_header_bytes, kMaxLimit);
  // Room for a typical head at once instead of growing by doubling.
  buffer_.reserve(1024);
  fields_.reserve(16);
}

void ResponseHeadParser::reset() { *this = ResponseHeadParser(limits_); }

ParseStatus ResponseHeadParser::fail(std::string_view code, std::string_view message,
                                     std::size_t offset) {
  error_.code = code;
  error_.message = message;
  error_.status = 502;
  error_.offset = offset;
  status_ = ParseStatus::kError;
  return status_;
}

ParseStatus ResponseHeadParser::feed(std::string_view bytes) {
  consumed_last_feed_ = 0;
  if (status_ != ParseStatus::kNeedMore) return status_;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    const std::size_t at = consumed_ + i;
    if (in_headers_ && ++header_bytes_ > limits_.max_header_bytes) {
      return fail("response_headers_too_large", "response header section exceeds the limit", at);
    }
    if (cr_pending_) {
      // RFC 9112 2.2: CR only as part of CRLF.
      if (c != '\n') return fail("bare_cr", "CR not followed by LF in the response head", at - 1);
      cr_pending_ = false;
      buffer_.push_back('\n');
      bool ok = true;
      bool complete = false;
      if (!in_headers_) {
        ok = end_status_line();
      } else if (line_length_ == 0) {
        complete = true;
      } else {
        ok = end_header_line();
      }
      if (!ok) return status_;
      if (complete) {
        status_ = ParseStatus::kComplete;
        consumed_ += i + 1;
        consumed_last_feed_ = i + 1;
        return status_;
      }
      line_start_ = buffer_.size();
      line_length_ = 0;
      continue;
    }
    if (c == '\r') {
      cr_pending_ = true;
      buffer_.push_back('\r');
      continue;
    }
    if (c == '\n') return fail("bare_lf", "LF without CR in the response head", at);
    if (line_length_ > 0 && is_field_byte(c) && (in_headers_ || c != '\t')) {
      // Inside a line: the run of ordinary bytes up to the next CR (or bad byte) is checked and
      // copied at once; the per-byte path below handles the rest, limits included.
      std::size_t end = i + 1;
      while (end < bytes.size() && is_field_byte(static_cast<unsigned char>(bytes[end])) &&
             (in_headers_ || bytes[end] != '\t')) {
        ++end;
      }
      std::size_t run = end - i;
      if (in_headers_) {
        // header_bytes_ already counts byte i.
        run = std::min(run, limits_.max_header_bytes - header_bytes_ + 1);
      } else {
        run = std::min(run, limits_.max_status_line_bytes - line_length_);
      }
      if (run > 1) {
        if (in_headers_) header_bytes_ += run - 1;
        buffer_.append(bytes.data() + i, run);
        line_length_ += run;
        i += run - 1;
        continue;
      }
    }
    if (!in_headers_) {
      if (line_length_ >= limits_.max_status_line_bytes) {
        return fail("status_line_too_long", "status line exceeds the limit", at);
      }
      if (!is_field_byte(c) || c == '\t') {
        return fail("invalid_status_line_byte", "control byte in the status line", at);
      }
    } else {
      if (line_length_ == 0 && (c == ' ' || c == '\t')) {
        return fail("obs_fold", "response field line starts with whitespace (obs-fold)", at);
      }
      if (!is_field_byte(c)) {
        return fail("invalid_field_byte", "NUL or control byte in a response header", at);
      }
    }
    buffer_.push_back(static_cast<char>(c));
    ++line_length_;
  }
  consumed_ += bytes.size();
  consumed_last_feed_ = bytes.size();
  return status_;
}

// RFC 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ].
bool ResponseHeadParser::end_status_line() {
  const std::string_view line = std::string_view(buffer_).substr(line_start_, line_length_);
  if (line.size() < 12 || line.substr(0, 5) != "HTTP/" || !is_digit(line[5]) || line[6] != '.' ||
      !is_digit(line[7]) || line[8] != ' ' || !is_digit(line[9]) || !is_digit(line[10]) ||
      !is_digit(line[11]) || (line.size() > 12 && line[12] != ' ')) {
    // "HTTP/1.1 200" without the second SP is common enough to accept (reason is optional
    // and some servers drop its separator); anything else is refused.
    fail("invalid_status_line", "malformed status line", line_start_);
    return false;
  }
  if (line.substr(0, 8) == "HTTP/1.1") {
    version_ = HttpVersion::kHttp11;
  } else if (line.substr(0, 8) == "HTTP/1.0") {
    version_ = HttpVersion::kHttp10;
  } else {
    fail("unsupported_version", "upstream answered with an HTTP version other than 1.x",
         line_start_);
    return false;
  }
  status_code_ = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  if (status_code_ < 100) {
    fail("invalid_status_code", "status code below 100", line_start_ + 9);
    return false;
  }
  if (line.size() > 13) {
    reason_ = {static_cast<std::uint32_t>(line_start_ + 13),
               static_cast<std::uint32_t>(line.size() - 13)};
  }
  in_headers_ = true;
  return true;
}

bool ResponseHeadParser::end_header_line() {
  const std::string_view line = std::string_view(buffer_).substr(line_start_, line_length_);
  const auto colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    fail("invalid_header_line", "response header line has no name", line_start_);
    return false;
  }
  const std::string_view name = line.substr(0, colon);
  if (!is_token(name)) {
    // Includes whitespace before the colon (RFC 9112 5.1).
    fail("invalid_header_name", "response header name is not a token", line_start_);
    return false;
  }
  if (fields_.size() >= limits_.max_header_count) {
    fail("too_many_headers", "too many response header fields", line_start_);
    return false;
  }
  std::size_t value_start = colon + 1;
  std::string_view value = line.substr(value_start);
  while (!value.empty() && is_ows(value.front())) {
    value.remove_prefix(1);
    ++value_start;
  }
  while (!value.empty() && is_ows(value.back())) value.remove_suffix(1);
  fields_.push_back({{static_cast<std::uint32_t>(line_start_), static_cast<std::uint32_t>(colon)},
                     {static_cast<std::uint32_t>(line_start_ + value_start),
                      static_cast<std::uint32_t>(value.size())}});
  return true;
}

HeaderField ResponseHeadParser::header(std::size_t index) const {
  return {view(fields_[index].name), view(fields_[index].value)};
}

std::optional<std::string_view> ResponseHeadParser::find_header(std::string_view name) const {
  for (const Field& f : fields_) {
    if (iequals_ascii(view(f.name), name)) return view(f.value);
  }
  return std::nullopt;
}

std::size_t ResponseHeadParser::count_headers(std::string_view name) const {
  return static_cast<std::size_t>(std::count_if(fields_.begin(), fields_.end(), [&](const Field& f) {
    return iequals_ascii(view(f.name), name);
  }));
}

ResponseFraming classify_response_framing(const ResponseHeadParser& head, bool request_was_head) {
  if (head.status() != ParseStatus::kComplete) {
    return framing_error("incomplete_head", "response head is not complete");
  }
  const int code = head.status_code();
  if (request_was_head || code < 200 || code == 204 || code == 304) return ResponseFraming{};
  bool has_te = false;
  bool has_cl = false;
  for (std::size_t i = 0; i < head.header_count(); ++i) {
    const HeaderField f = head.header(i);
    has_te = has_te || iequals_ascii(f.name, "transfer-encoding");
    has_cl = has_cl || iequals_ascii(f.name, "content-length");
  }
  if (has_te && head.version() == HttpVersion::kHttp10) {
    return framing_error("transfer_encoding_http10", "Transfer-Encoding in an HTTP/1.0 response");
  }
  if (has_te && has_cl) {
    return framing_error("content_length_with_transfer_encoding",
                         "response has both Content-Length and Transfer-Encoding");
  }
  if (has_te) {
    std::size_t codings = 0;
    bool chunked = false;
    for (std::size_t i = 0; i < head.header_count(); ++i) {
      const HeaderField f = head.header(i);
      if (!iequals_ascii(f.name, "transfer-encoding")) continue;
      std::string_view rest = f.value;
      while (true) {
        const auto comma = rest.find(',');
        const std::string_view coding = trim_ows(rest.substr(0, comma));
        ++codings;
        chunked = iequals_ascii(coding, "chunked");
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
    }
    if (codings != 1 || !chunked) {
      return framing_error("unsupported_transfer_coding",
                           "response transfer coding other than chunked");
    }
    ResponseFraming f;
    f.kind = ResponseFraming::Kind::kChunked;
    return f;
  }
  if (has_cl) {
    syntax::ContentLengthReader length(/*allow_leading_zeros=*/true);
    for (std::size_t i = 0; i < head.header_count(); ++i) {
      const HeaderField f = head.header(i);
      if (!iequals_ascii(f.name, "content-length")) continue;
      auto state = length.add(f.value);
      if (state == syntax::ContentLengthReader::State::kMalformed) {
        return framing_error("invalid_content_length", "malformed response Content-Length");
      }
      if (state == syntax::ContentLengthReader::State::kConflicting) {
        return framing_error("conflicting_content_length", "response Content-Length values differ");
      }
    }
    ResponseFraming f;
    f.kind = ResponseFraming::Kind::kContentLength;
    f.content_length = length.length();
    return f;
  }
  ResponseFraming f;
  f.kind = ResponseFraming::Kind::kUntilClose;
  return f;
}

}  // namespace moat::core::http

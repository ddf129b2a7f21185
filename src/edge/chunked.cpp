#include "edge/chunked.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace moat::edge {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

// RFC 9112 7.1:
//   chunked-body = *chunk last-chunk trailer-section CRLF
//   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//   chunk-size   = 1*HEXDIG
//   chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
// Strict: CRLF only (no bare LF or CR), no whitespace before the size, at most 15 hex digits (no
// overflow), extension bytes limited to visible ASCII, SP and HTAB, bounded lines and trailers.
ChunkedDecoder::Status ChunkedDecoder::feed(std::string_view in, std::string& out,
                                            std::size_t& consumed) {
  consumed = 0;
  std::size_t i = 0;
  while (i < in.size() && status_ == Status::kNeedMore) {
    const char c = in[i];
    switch (state_) {
      case State::kSize: {
        if (++line_length_ > max_line_) return fail("chunk size line too long");
        if (c == '\r') {
          if (size_digits_ == 0) return fail("chunk size missing");
          state_ = State::kSizeLf;
          break;
        }
        if (c == '\n') return fail("bare LF in chunk size line");
        if (!in_extension_) {
          const int v = hex_value(c);
          if (v >= 0) {
            if (++size_digits_ > 15) return fail("chunk size too large");
            chunk_left_ = chunk_left_ * 16 + static_cast<std::uint64_t>(v);
            break;
          }
          if (size_digits_ == 0) return fail("chunk size is not hexadecimal");
          if (c != ';' && c != ' ' && c != '\t') return fail("invalid byte after chunk size");
          in_extension_ = true;
          semicolon_ = c == ';';
          break;
        }
        // BWS, then ';' must come before any extension text ("5 x" is not a chunk size).
        if (!semicolon_) {
          if (c == ';') {
            semicolon_ = true;
          } else if (c != ' ' && c != '\t') {
            return fail("invalid byte after chunk size");
          }
          break;
        }
        // Extension bytes: tokens, quoted strings, '=', ';' and BWS. NUL and controls refused.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t') return fail("control in chunk-ext");
        if (c == 0x7f) return fail("control in chunk-ext");
        break;
      }
      case State::kSizeLf:
        if (c != '\n') return fail("CR not followed by LF after chunk size");
        line_length_ = 0;
        size_digits_ = 0;
        in_extension_ = false;
        semicolon_ = false;
        state_ = chunk_left_ == 0 ? State::kTrailer : State::kData;
        break;
      case State::kData: {
        const std::size_t n =
            static_cast<std::size_t>(std::min<std::uint64_t>(chunk_left_, in.size() - i));
        out.append(in.substr(i, n));
        chunk_left_ -= n;
        data_bytes_ += n;
        i += n;
        if (chunk_left_ == 0) state_ = State::kDataCr;
        continue;
      }
      case State::kDataCr:
        if (c != '\r') return fail("chunk data not followed by CRLF");
        state_ = State::kDataLf;
        break;
      case State::kDataLf:
        if (c != '\n') return fail("chunk data not followed by CRLF");
        state_ = State::kSize;
        break;
      case State::kTrailer:
        // One trailer field line per iteration until the empty line; fields are dropped.
        if (++trailer_bytes_ > max_trailer_) return fail("trailer section too large");
        if (c == '\r') {
          state_ = State::kTrailerLf;
          break;
        }
        if (c == '\n') return fail("bare LF in trailer section");
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
          return fail("control byte in trailer section");
        }
        if (line_length_ == 0 && (c == ' ' || c == '\t')) return fail("obs-fold in trailer");
        ++line_length_;
        break;
      case State::kTrailerLf:
        if (c != '\n') return fail("CR not followed by LF in trailer section");
        if (line_length_ == 0) {
          status_ = Status::kDone;
        } else {
          line_length_ = 0;
          state_ = State::kTrailer;
        }
        break;
    }
    ++i;
  }
  consumed = i;
  return status_;
}

void append_chunk(std::string& out, std::string_view data) {
  if (data.empty()) return;
  out += fmt::format("{:x}\r\n", data.size());
  out.append(data);
  out += "\r\n";
}

}  // namespace moat::edge

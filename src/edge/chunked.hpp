// edge: a strict, incremental decoder of the chunked transfer coding (RFC 9112 7.1), used for
// request bodies (decoded, then forwarded with Content-Length) and upstream response bodies
// (decoded, then re-chunked to the client). Pure (no I/O). A candidate for core/http once a
// second mode needs it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moat::edge {

class ChunkedDecoder {
 public:
  enum class Status : std::uint8_t { kNeedMore, kDone, kError };

  // `max_line`: a chunk-size line with its extensions; `max_trailer`: the whole trailer section.
  explicit ChunkedDecoder(std::size_t max_line = 4096, std::size_t max_trailer = 16 * 1024)
      : max_line_(max_line), max_trailer_(max_trailer) {}

  // Decodes from `in`, appending chunk data to `out`, and stops right after the last CRLF of the
  // body: `consumed` is set to the bytes of `in` that belonged to it (the rest is the next
  // message). Trailer fields are checked for syntax and dropped.
  Status feed(std::string_view in, std::string& out, std::size_t& consumed);
  Status status() const { return status_; }
  std::string_view error() const { return error_; }
  // Decoded data bytes so far.
  std::uint64_t data_bytes() const { return data_bytes_; }

 private:
  enum class State : std::uint8_t { kSize, kSizeLf, kData, kDataCr, kDataLf, kTrailer,
                                    kTrailerLf };
  Status fail(std::string_view why) {
    status_ = Status::kError;
    error_ = why;
    return status_;
  }

  std::size_t max_line_;
  std::size_t max_trailer_;
  State state_ = State::kSize;
  Status status_ = Status::kNeedMore;
  std::string_view error_;
  std::uint64_t chunk_left_ = 0;
  std::uint64_t data_bytes_ = 0;
  std::size_t line_length_ = 0;
  std::size_t size_digits_ = 0;
  bool in_extension_ = false;
  bool semicolon_ = false;
  std::size_t trailer_bytes_ = 0;
};

// Appends one chunk (size line, data, CRLF) for `data` (nothing for empty data).
void append_chunk(std::string& out, std::string_view data);
// The last chunk and an empty trailer section.
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace moat::edge

// Fuzzes what the edge runs on an HTTP/1.1 byte stream from a client or an upstream: the request
// head parser and its body framing, the chunked decoder (edge/chunked.cpp) on the bytes after the
// head, and the response head parser with its framing. Input: one control byte (how the stream is
// split into pieces), then the bytes. Checks that decoding all at once and piece by piece agree
// exactly (status, decoded data, bytes consumed), that nothing past the message is consumed, and
// that the decoder never produces more data than it was given.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/http/request_head.hpp"
#include "core/http/response_head.hpp"
#include "edge/chunked.hpp"
#include "fuzz_check.hpp"

namespace {

using moat::fuzz::check;
using moat::core::http::ParseStatus;
using moat::edge::ChunkedDecoder;

struct Decoded {
  ChunkedDecoder::Status status;
  std::string data;
  std::size_t consumed = 0;
};

// Small limits so the fuzzer reaches them.
Decoded decode(std::string_view body, std::size_t max_piece, std::uint32_t seed) {
  ChunkedDecoder decoder(64, 256);
  Decoded out{ChunkedDecoder::Status::kNeedMore, {}, 0};
  std::size_t pos = 0;
  std::uint32_t state = seed | 1u;
  while (pos < body.size() && decoder.status() == ChunkedDecoder::Status::kNeedMore) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    const std::size_t n = max_piece == 0 ? body.size() - pos
                                         : std::min<std::size_t>(body.size() - pos, 1 + state % max_piece);
    std::size_t used = 0;
    decoder.feed(body.substr(pos, n), out.data, used);
    check(used <= n);
    out.consumed += used;
    if (decoder.status() == ChunkedDecoder::Status::kNeedMore) check(used == n);
    pos += n;
  }
  out.status = decoder.status();
  check(decoder.data_bytes() == out.data.size());
  // On error the failing piece's `used` is unspecified; otherwise data comes from consumed bytes.
  if (out.status != ChunkedDecoder::Status::kError) check(out.data.size() <= out.consumed);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t control = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::size_t max_piece = (control & 0x1f) + 1u;

  // As a request: head, framing, then a chunked body if that is what the head says.
  moat::core::http::RequestHeadParser request;
  request.feed(input);
  std::string_view body = input;  // without a head, the whole input is a chunked body
  if (request.status() == ParseStatus::kComplete) {
    check(request.consumed() <= input.size());
    body = input.substr(request.consumed());
    (void)moat::core::http::classify_body_framing(request);
  }
  const Decoded whole = decode(body, 0, control);
  const Decoded split = decode(body, max_piece, control);
  check(whole.status == split.status);
  if (whole.status != ChunkedDecoder::Status::kError) {
    check(whole.data == split.data);
    check(whole.consumed == split.consumed);
  }
  if (whole.status == ChunkedDecoder::Status::kDone) {
    // The body ends in the CRLF that closes the trailer section.
    check(whole.consumed >= 5 && body.substr(whole.consumed - 2, 2) == "\r\n");
  }

  // As a response.
  moat::core::http::ResponseHeadParser response;
  response.feed(input);
  if (response.status() == ParseStatus::kComplete) {
    (void)moat::core::http::classify_response_framing(response, (control & 0x20) != 0);
    check(response.status_code() >= 100 && response.status_code() <= 999);
  }
  return 0;
}

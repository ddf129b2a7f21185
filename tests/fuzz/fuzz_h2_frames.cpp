// Fuzzes the edge's HTTP/2 frame handling: the bytes after the client connection preface go into
// an H2Connection (edge/h2/h2_connection.hpp) with the limits every edge connection uses by
// default, whose nghttp2 server session, callbacks and flood defences are exactly the edge's.
// Every complete request is answered (a head, then a body in two pieces) so that the response
// paths and flow control run too. Input: one control byte (how the rest is split into reads),
// then the frames.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "edge/h2/h2_connection.hpp"

namespace {

using moat::edge::H2Connection;
using moat::edge::H2Handler;
using moat::edge::H2Limits;
using moat::edge::H2Request;

class Answerer final : public H2Handler {
 public:
  std::vector<std::int32_t> pending;
  std::size_t closed = 0;
  void on_request(H2Request&& request) override {
    if (request.header_bytes > 0 && request.method.empty() && request.path.empty()) {
      // Allowed only when the list went over its size: then nothing is kept.
      if (!request.header_too_large) __builtin_trap();
    }
    pending.push_back(request.id);
  }
  void on_stream_close(std::int32_t, std::uint32_t, bool, std::uint64_t) override { ++closed; }
  void on_response_drained(std::int32_t) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t piece = 1 + (data[0] % 64) * 97;  // 1 .. 6112 bytes per read
  std::string input = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  input.append(reinterpret_cast<const char*>(data + 1), size - 1);
  Answerer handler;
  H2Connection connection(H2Limits{}, handler);
  std::string out;
  connection.send(out, 1 << 20);
  for (std::size_t at = 0; at < input.size(); at += piece) {
    const bool ok = connection.receive(std::string_view(input).substr(at, piece));
    for (std::int32_t id : handler.pending) {
      const std::pair<std::string_view, std::string_view> fields[] = {
          {"content-type", "text/plain"}};
      connection.submit_response(id, 200, fields, false);
      connection.append_body(id, "hello ", false);
      connection.append_body(id, "world", true);
    }
    handler.pending.clear();
    out.clear();
    if (!connection.send(out, 1 << 20)) break;
    if (!ok || !connection.want_read()) break;
  }
  return 0;
}

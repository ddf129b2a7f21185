// edge: the HTTP/2 protocol engine of one downstream connection: an nghttp2 server session fed
// and drained through memory (no I/O here), the request streams it assembles, the response
// bodies it frames under flow control, and the defences against the HTTP/2 floods (rapid reset,
// CONTINUATION, SETTINGS, PING, outbound ACKs). The I/O side (edge/h2_session.hpp) moves bytes
// and serves the requests; the fuzz target (tests/fuzz/fuzz_h2_frames.cpp) drives this class
// exactly as the edge configures it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

struct nghttp2_session;

namespace moat::edge {

// HTTP/2 limits. The edge fills them from its `limits:` (edge/h2_session.cpp h2_limits_for);
// these defaults are the config's defaults, and what the fuzz target uses.
struct H2Limits {
  std::uint32_t max_concurrent_streams = 100;  // SETTINGS_MAX_CONCURRENT_STREAMS
  std::uint32_t initial_window_size = 1 << 20;  // per stream, for request bodies
  std::size_t max_header_list_bytes = 32 * 1024;  // decoded, RFC 9113 6.5.2 size; over it: 431
  std::size_t max_header_block_bytes = 36 * 1024;  // HEADERS + CONTINUATION payloads of a block
  std::size_t max_continuations = 8;  // CONTINUATION frames after one HEADERS
  std::uint64_t max_body_bytes = 1024 * 1024;  // per request; over it: 413
  // Request body bytes the connection holds at once, over all its streams (counted from DATA
  // until the stream closes). Without it, 100 streams could each park a whole max_body_bytes.
  // The stream whose DATA would pass it is refused: RST_STREAM(REFUSED_STREAM), safe to retry.
  std::uint64_t max_buffered_body_bytes = 8 * 1024 * 1024;
  // Rapid reset (CVE-2023-44487): a token bucket per connection; a client RST_STREAM on a stream
  // whose response has not ended takes a token. Empty: GOAWAY(ENHANCE_YOUR_CALM).
  std::uint32_t reset_burst = 100;
  std::uint32_t resets_per_second = 10;
  // SETTINGS and PING frames from the client, per second; over it: GOAWAY(ENHANCE_YOUR_CALM).
  std::uint32_t max_settings_per_second = 20;
  std::uint32_t max_pings_per_second = 20;
  std::size_t max_outbound_ack = 100;  // queued SETTINGS/PING ACKs the client did not read
  std::size_t max_requests = 1000;  // streams per connection, then a graceful GOAWAY
};

// Why the edge ended a connection with GOAWAY(ENHANCE_YOUR_CALM) or a protocol error.
enum class H2Defence {
  kNone,
  kRapidReset,
  kContinuationFlood,
  kHeaderBlockTooLarge,
  kSettingsFlood,
  kPingFlood,
  kAckFlood,
  kProtocolError,
};
const char* h2_defence_name(H2Defence d);

// One request as the client sent it, assembled from HEADERS, CONTINUATION and DATA frames.
struct H2Request {
  std::int32_t id = 0;
  std::string method, scheme, authority, path;
  std::vector<std::pair<std::string, std::string>> headers;  // regular fields, lowercase names
  std::string cookie;  // the cookie crumbs joined with "; " (RFC 9113 8.2.3)
  std::optional<std::string> host;  // a host field, if any
  std::optional<std::uint64_t> content_length;
  std::string body;
  std::uint64_t header_bytes = 0;  // RFC 9113 6.5.2 size of the field list
  bool saw_data = false;
  bool header_too_large = false;  // answered 431
  bool body_too_large = false;    // answered 413 (DATA past the limit is dropped)
};

// What the I/O side is told. Called from inside H2Connection::receive() and send(): it must not
// call back into the connection's receive/send (submitting responses is fine).
class H2Handler {
 public:
  virtual ~H2Handler() = default;
  // A request is complete (END_STREAM), or it will never be served whole (too large): answer.
  virtual void on_request(H2Request&& request) = 0;
  // The stream is gone. `by_client`: the client reset it before its response ended.
  virtual void on_stream_close(std::int32_t id, std::uint32_t error_code, bool by_client,
                               std::uint64_t body_bytes_sent) = 0;
  // The frame writer took response bytes of this stream (room for more).
  virtual void on_response_drained(std::int32_t id) = 0;
};

class H2Connection {
 public:
  H2Connection(const H2Limits& limits, H2Handler& handler);
  ~H2Connection();
  H2Connection(const H2Connection&) = delete;
  H2Connection& operator=(const H2Connection&) = delete;

  // Bytes from the client. False when the connection must end (after sending what is queued,
  // typically a GOAWAY); defence() says whether a defence tripped.
  bool receive(std::string_view bytes);
  // Appends frames to send to `out`, up to about `max` bytes. False on a fatal error.
  bool send(std::string& out, std::size_t max);
  bool want_read() const;
  bool want_write() const;

  // A response head; `end_stream` when it has no body. Body bytes follow with append_body().
  // `headers`: lower-case names; nghttp2 copies them, so they need only live for the call.
  void submit_response(std::int32_t id, int status,
                       std::span<const std::pair<std::string_view, std::string_view>> headers,
                       bool end_stream);
  // Response body bytes; `end` closes the stream. Flow control decides when they leave.
  void append_body(std::int32_t id, std::string_view bytes, bool end);
  // Response bytes of the stream not yet framed (0 for unknown streams).
  std::size_t buffered(std::int32_t id) const;
  // Once the response has ended, reset the stream with NO_ERROR: the request body is unwanted
  // (RFC 9113 8.1, a response before the request is complete).
  void reset_after_response(std::int32_t id);
  void reset_stream(std::int32_t id, std::uint32_t error_code);
  // Graceful: GOAWAY(NO_ERROR) naming the last stream taken; those finish, no new ones start.
  void shut_down();
  // GOAWAY with `error_code` now; streams are abandoned.
  void terminate(std::uint32_t error_code);

  H2Defence defence() const { return defence_; }
  std::size_t open_streams() const { return streams_.size(); }
  std::uint64_t requests() const { return requests_; }
  bool preface_received() const { return frames_received_ > 0; }
  std::uint64_t client_resets() const { return client_resets_; }
  // Streams refused for the connection's request-body budget (max_buffered_body_bytes).
  std::uint64_t refused_streams() const { return refused_streams_; }
  std::uint64_t buffered_body() const { return buffered_body_; }
  // Streams whose request is not complete: (id, started, last DATA or header time).
  template <typename F>
  void for_each_incomplete(F&& f) const {
    for (const auto& [id, s] : streams_) {
      if (!s.dispatched) f(id, s.headers_done, s.last_input, s.headers_at, s.request.body.size());
    }
  }

 private:
  struct Stream {
    H2Request request;
    bool headers_done = false;
    std::chrono::steady_clock::time_point headers_at{};  // head complete; body rate from here
    bool dispatched = false;  // handed to on_request
    bool refused = false;     // reset for the connection's body budget: its DATA is dropped
    std::uint64_t body_counted = 0;  // its share of buffered_body_
    bool response_started = false;
    bool response_ended = false;  // END_STREAM sent
    bool reset_after_response = false;
    bool reset_by_client = false;
    std::string out;  // response bytes not yet framed
    std::size_t out_offset = 0;
    bool out_end = false;
    bool deferred = false;
    std::uint64_t sent = 0;
    std::chrono::steady_clock::time_point last_input;
  };
  struct Callbacks;
  friend struct Callbacks;

  Stream* find(std::int32_t id);
  void dispatch(std::int32_t id, Stream& s);
  void uncount_body(Stream& s);  // gives the stream's share of buffered_body_ back
  bool trip(H2Defence d);  // records the defence, queues GOAWAY(ENHANCE_YOUR_CALM)
  bool count_per_second(std::uint32_t& count, std::chrono::steady_clock::time_point& window,
                        std::uint32_t max);

  H2Limits limits_;
  H2Handler& handler_;
  nghttp2_session* session_ = nullptr;
  std::unordered_map<std::int32_t, Stream> streams_;
  H2Defence defence_ = H2Defence::kNone;
  std::uint64_t requests_ = 0;
  std::uint64_t buffered_body_ = 0;  // request body bytes of open streams (max_buffered_body_bytes)
  std::uint64_t refused_streams_ = 0;
  std::uint64_t frames_received_ = 0;
  std::uint64_t client_resets_ = 0;
  std::size_t block_bytes_ = 0;
  std::size_t continuations_ = 0;
  double reset_tokens_ = 0;
  std::chrono::steady_clock::time_point reset_refill_;
  std::uint32_t settings_count_ = 0;
  std::uint32_t ping_count_ = 0;
  std::chrono::steady_clock::time_point settings_window_;
  std::chrono::steady_clock::time_point ping_window_;
  bool shutting_down_ = false;
};

}  // namespace moat::edge

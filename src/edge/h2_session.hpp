// edge: one HTTP/2 downstream connection after its TLS handshake chose h2 (Session hands it
// over). Three coroutines move bytes between the TLS stream and the protocol engine
// (edge/h2/h2_connection.hpp): a read loop, a write loop and a deadline watch. Each request
// stream gets its own coroutine (serve_stream) that goes through the same phases as HTTP/1.1:
// request budget, check, route, upstream exchange (edge/upstream_exchange.hpp), response relay,
// one access record with http_version "HTTP/2".
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include "core/guard/client_key.hpp"
#include "edge/config.hpp"
#include "edge/h2/h2_connection.hpp"
#include "edge/session.hpp"
#include "edge/upstream_exchange.hpp"

namespace moat::edge {

// The HTTP/2 limits of a connection from the edge's limits (all come from limits:).
H2Limits h2_limits_for(const Limits& limits);

class H2Session : public std::enable_shared_from_this<H2Session>, public H2Handler {
 public:
  // `stream`: the connection's TLS stream, owned by the Session, which outlives run().
  H2Session(Server& server, WorkerState& worker, std::shared_ptr<const EdgeSnapshot> snapshot,
            TlsStream& stream, DownstreamInfo who,
            core::guard::ClientKey client_key);
  ~H2Session() override;

  // Serves the connection until it ends; every stream coroutine has ended when this returns.
  asio::awaitable<void> run();
  // Drain: GOAWAY; streams in flight finish, unless `in_flight_too` (then they end now).
  void abort(bool in_flight_too);

  // H2Handler: called from inside the engine.
  void on_request(H2Request&& request) override;
  void on_stream_close(std::int32_t id, std::uint32_t error_code, bool by_client,
                       std::uint64_t body_bytes_sent) override;
  void on_response_drained(std::int32_t id) override;

 private:
  struct Stream;

  asio::awaitable<void> read_loop();
  asio::awaitable<void> write_loop();
  asio::awaitable<void> watch();
  asio::awaitable<void> serve_stream(std::shared_ptr<Stream> stream);
  // The phases of one stream; the response is submitted to the engine as it comes.
  asio::awaitable<void> serve_phases(Stream& s);
  bool check_request(Stream& s);  // false: answered locally
  void reply_local(Stream& s, int status, const char* code, std::string reason,
                   const char* termination = "proxy",
                   std::vector<std::pair<std::string, std::string>> extra = {});
  asio::awaitable<void> wait(asio::steady_timer& timer);
  asio::awaitable<void> linger();
  void wake_writer();
  void wake_run();
  void end_streams();  // the connection is over: cancel what is still running

  Server& server_;
  WorkerState& worker_;
  std::shared_ptr<const EdgeSnapshot> snapshot_;
  const EdgeConfig& config_;
  TlsStream& stream_;
  DownstreamInfo who_;
  core::guard::ClientKey client_key_;
  std::unique_ptr<H2Connection> connection_;
  std::unordered_map<std::int32_t, std::shared_ptr<Stream>> streams_;
  asio::steady_timer writer_wake_;
  asio::steady_timer write_deadline_;
  asio::steady_timer run_wake_;
  asio::steady_timer watch_timer_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // deadline callbacks check it
  bool writer_waiting_ = false;
  bool write_timed_out_ = false;
  bool reading_done_ = false;
  bool writing_done_ = false;
  bool watching_ = false;
  bool closed_ = false;    // the connection is over; streams are being ended
  bool draining_ = false;
  std::size_t tasks_ = 0;  // stream coroutines running
  std::uint64_t refused_counted_ = 0;  // connection_->refused_streams() already in the metrics
  // min_body_rate: measured over the connection while any request body is awaited (frames
  // are not attributed to streams here; HTTP/2 flow control is per connection too).
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point idle_since_;
};

}  // namespace moat::edge

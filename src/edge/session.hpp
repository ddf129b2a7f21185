// edge: one downstream connection, accept to close. Session::run_phases() (session.cpp) lists
// the phases in order: TLS handshake, then one stream per request (read head, check, route, read
// body, forward upstream, relay the response), each ending in one access record. Between
// requests the session parks: a readiness callback, no coroutine, no buffer (park()). A
// connection whose ALPN is h2 is handed to an H2Session after the handshake. The HTTP
// listener's sessions answer every request with a 308 to HTTPS.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include "core/guard/client_key.hpp"
#include "core/net/address.hpp"
#include "core/obs/batched_log.hpp"
#include "core/obs/json_line.hpp"
#include "core/runtime/deadline_wheel.hpp"
#include "edge/config.hpp"
#include "edge/overload.hpp"
#include "edge/tls.hpp"
#include "edge/tls_stream.hpp"
#include "edge/upstream_exchange.hpp"

namespace moat::core::http {
class RequestHeadParser;
}

namespace moat::edge {

class H2Session;
class Server;
class Session;

// What a connection starts with and keeps until it ends, even across a reload.
struct EdgeSnapshot {
  std::shared_ptr<const EdgeConfig> config;
  std::shared_ptr<TlsContexts> tls;
  std::string hsts;             // the Strict-Transport-Security value
  std::uint16_t https_port = 443;  // for redirects: the first HTTPS listener's port
};

// Idle keep-alive connections to upstream members, per worker (never shared between threads).
// Keyed by "address:port". A connection is reused only if it is still open and silent.
class UpstreamPool {
 public:
  // An idle connection to `key` that is still usable, or nullopt.
  std::optional<asio::ip::tcp::socket> take(const std::string& key);
  // Keeps `socket` for reuse, unless `max_idle` are already kept for `key`.
  void give_back(const std::string& key, asio::ip::tcp::socket socket, std::size_t max_idle);
  void clear();
  std::size_t idle_count() const;

  // Upstream servers close idle connections after their own timeout (often 60 s or more);
  // dropping ours first avoids most reuse-after-close races.
  static constexpr std::chrono::seconds kMaxIdle{30};

 private:
  struct Idle {
    asio::ip::tcp::socket socket;
    std::chrono::steady_clock::time_point since;
  };
  std::unordered_map<std::string, std::vector<Idle>> idle_;
};

// Grown buffers that idle connections gave back, for the next request that needs one: an idle
// connection holds no buffer, yet a busy worker does not allocate and free 16 KiB per read.
class BufferPool {
 public:
  // Empties `buffer` (keeping its memory here if it is worth keeping and there is room).
  void give(std::string& buffer) {
    if (buffer.capacity() >= kKeepFrom && spare_.size() < kMaxSpare) {
      buffer.clear();
      spare_.push_back(std::move(buffer));
    }
    std::string().swap(buffer);
  }
  // Gives `buffer` a kept one when it has less than `want` bytes of room.
  void lend(std::string& buffer, std::size_t want) {
    if (buffer.capacity() >= want || spare_.empty()) return;
    std::string kept = std::move(spare_.back());
    spare_.pop_back();
    kept.assign(buffer);
    buffer.swap(kept);
  }

 private:
  static constexpr std::size_t kKeepFrom = 4 * 1024;
  static constexpr std::size_t kMaxSpare = 256;  // per worker: at most a few MiB kept
  std::vector<std::string> spare_;
};

// What one worker owns: nothing here is shared with another worker.
struct WorkerState {
  std::size_t index = 0;
  std::vector<std::shared_ptr<asio::ip::tcp::acceptor>> acceptors;
  std::unordered_set<Session*> sessions;  // open sessions, for drain
  UpstreamPool upstreams;
  BufferPool buffers;
  core::obs::JsonLine access_line;
  std::mt19937_64 random;  // request ids; seeded from the OS at start
  // Header, body, idle and upstream deadlines: arming one is a store, not a timerfd syscall.
  std::unique_ptr<core::runtime::DeadlineWheel> deadlines;
  // Access records, written in blocks (64 KiB or 100 ms) instead of one write per request.
  std::unique_ptr<core::obs::BatchedLog> access_batch;
  bool access_records = true;  // false with access_log: off (metrics are still counted)
  // Overload shedding (edge/overload.hpp), updated by Server::overload_watch on this worker.
  LagDetector lag;
  bool overloaded = false;
};

// Everything the access record says about one request (stream).
struct StreamRecord {
  std::chrono::system_clock::time_point start_time;
  std::chrono::steady_clock::time_point start;
  std::string request_id;
  std::string method;
  std::string host;
  std::string path;  // without the query (queries may carry secrets)
  const char* http_version = "";
  int status = 0;
  std::uint64_t bytes_in = 0;   // from the client: head and body, as received
  std::uint64_t bytes_out = 0;  // to the client: head and body, as sent
  const char* route = "";       // points into the snapshot's config
  const char* pool = "";
  std::string upstream;
  bool upstream_reused = false;
  std::int64_t upstream_ms = -1;  // request written to response head received
  const char* phase = "request";
  const char* termination = "";  // complete, proxy (local reply), client, upstream, timeout
  const char* code = "";         // stable token for the outcome: ok, no_route, bad_request, ...
  const char* limit = "";        // the guard limit that answered (requests, banned), if any
  std::string reason;

  // Back to a new record, keeping the strings' buffers for the next request.
  void reset() {
    std::string* kept[] = {&request_id, &method, &host, &path, &upstream, &reason};
    std::string saved[std::size(kept)];
    for (std::size_t i = 0; i < std::size(kept); ++i) saved[i] = std::move(*kept[i]);
    *this = StreamRecord{};
    for (std::size_t i = 0; i < std::size(kept); ++i) {
      *kept[i] = std::move(saved[i]);
      kept[i]->clear();
    }
  }
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  // `tls` false: the HTTP listener (redirect only). `client_key`: admitted under it at accept
  // (Server::admit); released when the session ends.
  Session(Server& server, WorkerState& worker, std::shared_ptr<const EdgeSnapshot> snapshot,
          asio::ip::tcp::socket socket, const asio::ip::tcp::endpoint& remote, bool tls,
          core::guard::ClientKey client_key);
  ~Session();

  // How run() is entered: at accept (handshake, then requests), when a parked idle connection
  // became readable (the next request), or when its wait ended otherwise (timeout, drain,
  // error: close).
  enum class Entry { kStart, kResume, kEnd };
  asio::awaitable<void> run(Entry entry);
  // Drain: idle connections close now; a request in flight finishes unless `in_flight_too`.
  void abort(bool in_flight_too);

 private:
  enum class Step { kContinue, kDone };
  enum class Next { kKeepAlive, kClose };

  // true: parked (idle, waiting for the next request without a coroutine); false: ended.
  asio::awaitable<bool> run_phases(Entry entry);
  void park();
  // The phases, in order.
  asio::awaitable<Step> handshake();
  asio::awaitable<Next> serve_stream(bool first);
  asio::awaitable<Step> read_head(core::http::RequestHeadParser& parser, bool first);
  Step check_request(const core::http::RequestHeadParser& parser);
  asio::awaitable<Step> read_body(const core::http::RequestHeadParser& parser);
  asio::awaitable<Step> forward(const core::http::RequestHeadParser& parser);
  asio::awaitable<Step> relay_response();
  asio::awaitable<Next> redirect(const core::http::RequestHeadParser& parser);
  // The per-client request budget (core/guard): over it, 429 with Retry-After. kDone: answered.
  asio::awaitable<Step> rate_limit(const core::http::RequestHeadParser& parser);
  // The route's rate_limit (per client and route), once the route is known: 429 with Retry-After.
  asio::awaitable<Step> route_rate_limit(const core::http::RequestHeadParser& parser);
  // Overload shedding: a new request while the worker sheds gets 503 and a close.
  asio::awaitable<Step> shed_if_overloaded();
  // After a 101 from the upstream (WebSocket): bytes both ways until either side closes.
  asio::awaitable<void> tunnel();
  asio::awaitable<void> tunnel_upstream_to_client(asio::steady_timer& done, bool& running);
  // The body's deadline: idle_timeout from now, or earlier when the bytes received so far since
  // `started` fall under min_body_rate (after body_rate_grace).
  void arm_body(std::chrono::steady_clock::time_point started, std::uint64_t received);
  asio::awaitable<void> body_incomplete();

  // The one place that turns an outcome into a local reply (400, 404, 413, 502, 504, ...).
  asio::awaitable<void> reply_local(int status, const char* code, std::string reason,
                                    const char* termination = "proxy");
  // Between requests: gives back the buffers a request grew, and the upstream side.
  void release_buffers();
  asio::awaitable<std::size_t> client_read(std::size_t limit, asio::error_code& ec);
  asio::awaitable<bool> client_write(std::string_view bytes);
  asio::awaitable<void> tls_shutdown();
  asio::ip::tcp::socket& lowest();
  void arm(std::chrono::milliseconds timeout);
  void disarm();
  static void on_deadline(void* self);
  void begin_stream();
  void write_access_record();
  const DownstreamInfo& info() const { return who_; }
  void assign_request_id();  // a new random id into record_.request_id

  Server& server_;
  WorkerState& worker_;
  std::shared_ptr<const EdgeSnapshot> snapshot_;
  const EdgeConfig& config_;
  bool tls_;
  asio::ip::tcp::socket plain_;
  std::optional<TlsStream> stream_;
  // This connection's upstream side while a request is forwarded; none while idle.
  std::unique_ptr<UpstreamExchange> exchange_;
  std::shared_ptr<H2Session> h2_;  // set when ALPN chose h2: it serves the connection
  core::runtime::Deadline deadline_;
  bool timed_out_ = false;
  bool body_rate_due_ = false;  // the armed body deadline is the min_body_rate one
  bool write_failed_ = false;   // a write to the client failed or timed out: no close_notify
  bool websocket_ = false;      // this request asks for a WebSocket upgrade (forwarded as such)
  bool tunnelling_ = false;     // after a 101: the deadline also cancels the upstream side
  bool idle_ = true;  // waiting for a request (drain may close now)
  bool draining_ = false;
  std::string in_;        // client bytes not yet consumed
  std::string body_;      // the request body, decoded
  std::string out_;       // bytes being prepared for the client
  std::string data_;      // response body bytes being relayed
  std::string request_;   // the upstream request being sent
  bool close_after_ = false;  // the current response ends the connection
  bool head_request_ = false;
  bool client_http10_ = false;
  std::string host_header_;  // the Host to send upstream
  std::string forward_target_;
  const Route* route_ = nullptr;
  core::guard::ClientKey client_key_;  // admitted under this key (released at the end)
  std::string reply_headers_;           // extra header lines for the next local reply
  core::net::IpAddress client_address_;
  DownstreamInfo who_;  // the client's address and TLS facts, for records and forwarding
  std::size_t requests_ = 0;
  StreamRecord record_;
  bool record_open_ = false;
};

}  // namespace moat::edge

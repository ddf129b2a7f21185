// edge: the upstream side of one stream, shared by HTTP/1.1 (Session) and HTTP/2 (H2Session):
// pick a pool member, take a pooled keep-alive connection or open one, send the request, read the
// response head (1xx dropped), then hand out the body piece by piece, decoded, and give the
// connection back to the worker's pool when it is still in sync. Also the helpers both HTTP
// versions share: hop-by-hop fields, the access record.
#pragma once

#include <chrono>
#include <memory>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include "core/net/address.hpp"
#include "core/runtime/deadline_wheel.hpp"
#include "edge/chunked.hpp"
#include "edge/config.hpp"

namespace moat::edge {

class Server;
struct StreamRecord;
struct WorkerState;

// RFC 9110 7.6.1 hop-by-hop fields, plus Proxy-* and "Proxy" itself (httpoxy).
bool is_hop_by_hop(std::string_view name);
// RFC 9110 9.2.2: methods a proxy may retry on its own.
bool is_idempotent(std::string_view method);
// A "." or ".." segment (also percent-encoded) in a path: refused by both HTTP versions.
bool has_dot_segment(std::string_view path);

// Who is on the other end of a downstream connection (what every access record repeats).
struct DownstreamInfo {
  bool tls = true;
  std::string client_text;
  std::uint16_t client_port = 0;
  bool client_v4 = true;
  std::string tls_version;
  std::string alpn;
  std::string sni;
};

// One JSON access record for `record`, then the request metrics.
void write_access_record(Server& server, WorkerState& worker, const DownstreamInfo& who,
                         const StreamRecord& record);

// The X-Forwarded-For/-Proto/-Host, Forwarded and X-Request-Id lines the edge sets upstream.
void append_forwarding_headers(std::string& out, const DownstreamInfo& who, std::string_view host,
                               std::string_view request_id);

// A reply the edge makes itself because the upstream side failed (502, 503, 504).
struct LocalReply {
  int status = 502;
  const char* code = "upstream_error";
  std::string reason;
  const char* termination = "upstream";
  std::uint32_t retry_after = 0;  // seconds; non-zero adds Retry-After (503 no_healthy_upstream)
};

// The upstream's response head, reduced to what the client may see: end-to-end fields only
// (hop-by-hop, those named by Connection, and the upstream's HSTS removed; Content-Length kept
// only for HEAD and 304, where it describes a body that is not sent).
struct UpstreamResponse {
  int status = 0;
  std::string reason;
  // The kept fields as HTTP/1.1 lines, "Name: value\r\n" each, in the upstream's order: the
  // HTTP/1.1 side appends them as they are, the HTTP/2 side walks them (for_each_field_in).
  std::string fields;
  bool has_request_id = false;
  enum class Body : std::uint8_t { kNone, kContentLength, kChunked, kUntilClose } body = Body::kNone;
  std::uint64_t content_length = 0;

  // For the next response on the same exchange; keeps the strings' capacity.
  void clear() {
    status = 0;
    reason.clear();
    fields.clear();
    has_request_id = false;
    body = Body::kNone;
    content_length = 0;
  }
  void add_field(std::string_view name, std::string_view value) {
    fields.append(name).append(": ").append(value).append("\r\n");
  }
  // Calls `f(name, value)` for each field line of `block` (`fields` or a copy of it), in order;
  // the views point into `block`.
  template <typename F>
  static void for_each_field_in(std::string_view block, F&& f) {
    std::string_view rest = block;
    while (!rest.empty()) {
      const std::size_t colon = rest.find(": ");
      const std::size_t end = rest.find("\r\n", colon);
      f(rest.substr(0, colon), rest.substr(colon + 2, end - colon - 2));
      rest.remove_prefix(end + 2);
    }
  }
};

// Which member of `pool` gets an attempt by `worker`: the pool's method among the members that
// are up and not ejected, never one of `tried` (edge/balancer.hpp). nullptr: none is usable.
const Member* pick_member(const Pool& pool, std::size_t worker,
                          std::span<const Member* const> tried);

class UpstreamExchange {
 public:
  UpstreamExchange(Server& server, WorkerState& worker, const EdgeConfig& config,
                   asio::any_io_executor executor);
  ~UpstreamExchange();

  // Sends `request` (head and body, ready to write) to a member of `pool` and reads the response
  // head into response(). A reused connection that fails before any response byte is retried on
  // a new one, and a failed connect on the next member, for idempotent methods only. Fills the
  // upstream fields of `record` (upstream, reused, upstream_ms, phase, reason). nullopt: ok.
  // `websocket`: the request asks for a WebSocket upgrade; a 101 whose Upgrade is websocket is
  // then a response (status 101, no body) and the connection is the caller's to tunnel over
  // (socket(), take_buffered()); without it a 101 is an upstream error (502).
  asio::awaitable<std::optional<LocalReply>> send(const Pool& pool, std::string_view method,
                                                  const std::string& request, bool head_request,
                                                  StreamRecord& record, bool websocket = false);
  const UpstreamResponse& response() const { return response_; }

  // Appends the next decoded piece of the response body to `piece`; `done` once it ended.
  // With `wait` false only bytes already received are handed out. False when the body failed
  // (record's termination, code and reason say why); the connection is then closed.
  asio::awaitable<bool> read_body(std::string& piece, bool& done, bool wait, StreamRecord& record);

  // Back to the worker's pool when the response left the connection in sync (and `keep`),
  // closed otherwise. Idempotent.
  void release(bool keep);
  // Drops the connection now (client gone, drain): pending operations end with an error.
  void cancel();
  // Between requests: gives back the read buffer (an idle connection holds none).
  void release_buffers();
  bool timed_out() const { return timed_out_; }
  // The upstream asked to close, or its body ends with the close.
  bool closes() const { return !reusable_; }
  // After a 101: the upstream connection, and the bytes already read after the 101's head
  // (appended to `out`, then forgotten). The connection is never pooled again.
  asio::ip::tcp::socket& socket() { return socket_; }
  void take_buffered(std::string& out) {
    out += in_;
    in_.clear();
  }

 private:
  asio::awaitable<std::optional<LocalReply>> connect(const Member& member, bool fresh,
                                                     StreamRecord& record);
  asio::awaitable<bool> send_and_read_head(const std::string& request, bool head_request,
                                           bool websocket, bool& retryable,
                                           StreamRecord& record);
  asio::awaitable<std::size_t> read_some(asio::error_code& ec);
  void hand_over(std::string& piece, std::size_t n);
  void arm(std::chrono::milliseconds timeout);
  void disarm();
  static void on_deadline(void* self);

  Server& server_;
  WorkerState& worker_;
  const EdgeConfig& config_;
  asio::ip::tcp::socket socket_;
  asio::any_io_executor executor_;
  core::runtime::Deadline deadline_;  // on the worker's DeadlineWheel: no timer per request
  bool timed_out_ = false;
  bool cancelled_ = false;  // cancel() was called: failures after it are not the member's
  bool open_ = false;
  bool reusable_ = false;
  std::string key_;
  std::string in_;  // upstream bytes not yet consumed
  UpstreamResponse response_;
  std::uint64_t left_ = 0;  // Content-Length bytes still to come
  ChunkedDecoder decoder_;
};

}  // namespace moat::edge

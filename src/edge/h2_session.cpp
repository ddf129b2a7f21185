// One HTTP/2 connection; see h2_session.hpp. Everything runs on the worker's thread: the engine's
// callbacks (inside receive/send) only record facts and wake coroutines, never suspend.
#include "edge/h2_session.hpp"

#include <algorithm>
#include <cctype>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>
#include <nghttp2/nghttp2.h>

#include "core/http/request_head.hpp"
#include "core/policy/host_pattern.hpp"
#include "edge/server.hpp"

namespace moat::edge {

namespace cp = core::policy;
namespace http = core::http;
using asio::use_awaitable;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kReadChunk = 16 * 1024;
constexpr std::size_t kWriteBatch = 64 * 1024;
// Response bytes buffered per stream before its upstream read waits for the client's window.
constexpr std::size_t kMaxBuffered = 256 * 1024;

bool may_have_body(std::string_view method) {
  return method == "POST" || method == "PUT" || method == "PATCH";
}

}  // namespace

H2Limits h2_limits_for(const Limits& limits) {
  H2Limits h;
  h.max_header_list_bytes = limits.max_header_bytes;
  // The compressed block is at most about the decoded size (each field costs 32 bytes there).
  h.max_header_block_bytes = limits.max_header_bytes + 4096;
  h.max_body_bytes = limits.max_body_bytes;
  h.max_requests = limits.max_requests_per_connection;
  h.max_concurrent_streams = limits.h2_max_concurrent_streams;
  h.initial_window_size = limits.h2_initial_window_size;
  h.max_continuations = limits.h2_max_continuations;
  h.resets_per_second = limits.h2_resets_per_second;
  h.reset_burst = limits.h2_reset_burst;
  h.max_settings_per_second = limits.h2_settings_per_second;
  h.max_pings_per_second = limits.h2_pings_per_second;
  h.max_buffered_body_bytes = std::max<std::uint64_t>(limits.h2_max_buffered_body,
                                                      limits.max_body_bytes);
  return h;
}

struct H2Session::Stream {
  explicit Stream(asio::any_io_executor executor) : wake(executor) {}
  H2Request request;
  StreamRecord record;
  std::optional<UpstreamExchange> exchange;
  asio::steady_timer wake;  // woken when the stream closes or its buffer drains
  bool closed = false;
  bool by_client = false;
  std::uint64_t sent = 0;  // body bytes framed
  std::uint64_t head_bytes = 0;
  Clock::time_point last_progress;
};

H2Session::H2Session(Server& server, WorkerState& worker,
                     std::shared_ptr<const EdgeSnapshot> snapshot,
                     TlsStream& stream, DownstreamInfo who,
                     core::guard::ClientKey client_key)
    : server_(server),
      worker_(worker),
      snapshot_(std::move(snapshot)),
      config_(*snapshot_->config),
      stream_(stream),
      who_(std::move(who)),
      client_key_(client_key),
      writer_wake_(stream.get_executor()),
      write_deadline_(stream.get_executor()),
      run_wake_(stream.get_executor()),
      watch_timer_(stream.get_executor()) {}

H2Session::~H2Session() = default;

asio::awaitable<void> H2Session::run() {
  auto self = shared_from_this();
  server_.count_h2_connection(worker_.index);
  connection_ = std::make_unique<H2Connection>(h2_limits_for(config_.limits), *this);
  started_ = idle_since_ = Clock::now();
  auto executor = stream_.get_executor();
  asio::co_spawn(executor, write_loop(), asio::detached);
  watching_ = true;
  asio::co_spawn(executor, watch(), asio::detached);
  co_await read_loop();
  reading_done_ = true;
  wake_writer();
  while (!writing_done_) co_await wait(run_wake_);
  closed_ = true;
  if (connection_->defence() != H2Defence::kNone) co_await linger();
  end_streams();
  watch_timer_.cancel();
  while (tasks_ > 0 || watching_) co_await wait(run_wake_);
}

// After a GOAWAY for a flood the client is usually still sending: closing at once would answer
// its bytes with a TCP RST, which can destroy the GOAWAY in its receive buffer before it is read.
// So: FIN, then read and drop what still comes, for at most a second and 1 MiB.
asio::awaitable<void> H2Session::linger() {
  auto& socket = stream_.next_layer();
  asio::error_code ec;
  socket.shutdown(asio::socket_base::shutdown_send, ec);
  if (ec) co_return;
  write_deadline_.expires_after(std::chrono::seconds(1));
  write_deadline_.async_wait([this, alive = std::weak_ptr<int>(alive_)](const asio::error_code& e) {
    if (e || alive.expired()) return;
    asio::error_code ignored;
    stream_.next_layer().cancel(ignored);
  });
  std::string sink(kReadChunk, '\0');
  for (std::size_t total = 0; total < (1u << 20);) {
    std::size_t n = co_await socket.async_read_some(asio::buffer(sink),
                                                    asio::redirect_error(use_awaitable, ec));
    if (ec || n == 0) break;
    total += n;
  }
  write_deadline_.cancel();
}

void H2Session::abort(bool in_flight_too) {
  draining_ = true;
  if (!connection_) return;
  if (in_flight_too) {
    connection_->terminate(NGHTTP2_NO_ERROR);
    end_streams();
  } else {
    connection_->shut_down();  // GOAWAY(NO_ERROR): streams taken so far finish
  }
  wake_writer();
}

void H2Session::end_streams() {
  for (auto& [id, s] : streams_) {
    if (s->closed) continue;
    s->closed = true;
    if (s->exchange) s->exchange->cancel();
    s->wake.cancel();
  }
}

asio::awaitable<void> H2Session::wait(asio::steady_timer& timer) {
  timer.expires_at(Clock::time_point::max());
  asio::error_code ec;
  co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
}

void H2Session::wake_writer() {
  if (writer_waiting_) writer_wake_.cancel();
}

void H2Session::wake_run() { run_wake_.cancel(); }

// ---- the three connection coroutines --------------------------------------------------------

asio::awaitable<void> H2Session::read_loop() {
  std::string buffer(kReadChunk, '\0');
  for (;;) {
    asio::error_code ec;
    std::size_t n = co_await stream_.read_some(asio::buffer(buffer), ec);
    if (ec || n == 0) break;
    bool ok = connection_->receive(std::string_view(buffer.data(), n));
    if (const std::uint64_t refused = connection_->refused_streams(); refused > refused_counted_) {
      server_.count_h2_body_buffer(worker_.index, refused - refused_counted_);
      refused_counted_ = refused;
    }
    wake_writer();
    if (!ok) {  // a GOAWAY is queued: the writer sends it, then the connection closes
      if (connection_->defence() != H2Defence::kNone) {
        server_.count_h2_defence(worker_.index, connection_->defence());
      }
      break;
    }
    if (!connection_->want_read()) break;
  }
}

asio::awaitable<void> H2Session::write_loop() {
  auto self = shared_from_this();
  std::string out;
  for (;;) {
    out.clear();
    if (!connection_->send(out, kWriteBatch)) break;
    if (!out.empty()) {
      // Slow read: a client that does not take a batch (at most kWriteBatch) within
      // send_timeout is dropped, with every stream on it.
      write_timed_out_ = false;
      write_deadline_.expires_after(config_.limits.send_timeout);
      write_deadline_.async_wait(
          [this, alive = std::weak_ptr<int>(alive_)](const asio::error_code& e) {
            if (e || alive.expired()) return;
            write_timed_out_ = true;
            asio::error_code ignored;
            stream_.next_layer().cancel(ignored);
          });
      asio::error_code ec;
      co_await stream_.write_all(out, ec);
      write_deadline_.cancel();
      if (write_timed_out_) server_.count_send_timeout(worker_.index);
      if (ec || write_timed_out_) break;
      continue;
    }
    if (reading_done_ || (!connection_->want_read() && !connection_->want_write())) break;
    writer_waiting_ = true;
    co_await wait(writer_wake_);
    writer_waiting_ = false;
  }
  writing_done_ = true;
  // Nothing more will be written: stop the reader too.
  asio::error_code ignored;
  stream_.next_layer().cancel(ignored);
  wake_run();
}

// Deadlines that no single read or write covers: the client preface (header_timeout), an idle
// connection (idle_timeout with no stream: GOAWAY), a request that does not arrive whole
// (header_timeout for its head, idle_timeout between body frames) and a response the client does
// not take (idle_timeout without window: RST_STREAM, and its upstream is dropped).
asio::awaitable<void> H2Session::watch() {
  auto self = shared_from_this();
  const auto& limits = config_.limits;
  while (!closed_) {
    const auto now = Clock::now();
    Clock::time_point next = now + std::chrono::seconds(1);
    if (!connection_->preface_received()) {
      if (now - started_ >= limits.header_timeout) {
        connection_->terminate(NGHTTP2_NO_ERROR);
      } else {
        next = std::min(next, started_ + limits.header_timeout);
      }
    } else if (streams_.empty() && connection_->open_streams() == 0) {
      if (now - idle_since_ >= limits.idle_timeout) {
        connection_->terminate(NGHTTP2_NO_ERROR);
      } else {
        // Long sleeps while idle; a stream that starts meanwhile is checked within
        // header_timeout at worst.
        next = std::min(idle_since_ + limits.idle_timeout, now + limits.header_timeout);
      }
    } else {
      std::vector<std::int32_t> overdue;
      connection_->for_each_incomplete([&](std::int32_t id, bool headers_done,
                                           Clock::time_point last_input,
                                           Clock::time_point headers_at, std::size_t body_bytes) {
        const auto allowed = headers_done ? limits.idle_timeout : limits.header_timeout;
        if (now - last_input >= allowed) {
          overdue.push_back(id);
          return;
        }
        // min_body_rate (slow POST), per stream as for HTTP/1.1: after body_rate_grace the body
        // must have come at least that fast on average since its head was complete.
        if (!headers_done || limits.min_body_rate == 0 ||
            now - headers_at < limits.body_rate_grace) {
          return;
        }
        const auto elapsed_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(now - headers_at).count();
        if (static_cast<std::uint64_t>(body_bytes) * 1000 <
            limits.min_body_rate * static_cast<std::uint64_t>(elapsed_ms)) {
          overdue.push_back(id);
          server_.count_slow_body(worker_.index);
        }
      });
      for (auto& [id, s] : streams_) {
        if (!s->closed && connection_->buffered(id) > 0 &&
            now - s->last_progress >= limits.send_timeout) {
          overdue.push_back(id);
          s->record.termination = "timeout";
          s->record.code = "send_timeout";
          s->record.reason = "the client did not take the response in time";
          if (s->exchange) s->exchange->cancel();
        }
      }
      for (std::int32_t id : overdue) connection_->reset_stream(id, NGHTTP2_CANCEL);
    }
    wake_writer();
    watch_timer_.expires_at(next);
    asio::error_code ec;
    co_await watch_timer_.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  watching_ = false;
  wake_run();
}

// ---- engine callbacks --------------------------------------------------------------------------

void H2Session::on_request(H2Request&& request) {
  auto s = std::make_shared<Stream>(stream_.get_executor());
  s->request = std::move(request);
  s->record.start_time = std::chrono::system_clock::now();
  s->record.start = Clock::now();
  s->last_progress = s->record.start;
  streams_[s->request.id] = s;
  ++tasks_;
  asio::co_spawn(stream_.get_executor(), serve_stream(std::move(s)), asio::detached);
}

void H2Session::on_stream_close(std::int32_t id, std::uint32_t, bool by_client,
                                std::uint64_t body_bytes_sent) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  Stream& s = *it->second;
  s.sent = body_bytes_sent;
  if (s.closed) return;
  s.closed = true;
  s.by_client = by_client;
  if (by_client) {
    server_.count_h2_client_reset(worker_.index);
    if (s.exchange) s.exchange->cancel();  // the upstream work of a reset stream stops now
  }
  s.wake.cancel();
}

void H2Session::on_response_drained(std::int32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  it->second->last_progress = Clock::now();
  if (connection_->buffered(id) <= kMaxBuffered / 2) it->second->wake.cancel();
}

// ---- one stream ------------------------------------------------------------------------------

asio::awaitable<void> H2Session::serve_stream(std::shared_ptr<Stream> stream) {
  auto self = shared_from_this();
  Stream& s = *stream;
  try {
    co_await serve_phases(s);
  } catch (const std::exception& e) {
    server_.on_session_exception(worker_.index, e.what());
    s.record.termination = "proxy";
    s.record.code = "internal_error";
    if (!closed_) connection_->reset_stream(s.request.id, NGHTTP2_INTERNAL_ERROR);
    wake_writer();
  }
  // The record is written once the stream is gone: all of the response sent, or a reset.
  while (!s.closed) co_await wait(s.wake);
  if (s.exchange) s.exchange->release(false);  // no-op when given back already
  StreamRecord& r = s.record;
  if (s.by_client && std::string_view(r.termination) != "complete") {
    r.termination = "client";
    r.code = "client_reset";
    if (r.reason.empty()) r.reason = "stream reset by the client";
  } else if (closed_ && std::string_view(r.termination).empty()) {
    if (write_timed_out_) {
      r.termination = "timeout";
      r.code = "send_timeout";
      r.reason = "the client did not take the response in time";
    } else {
      r.termination = "client";
      r.code = "client_closed";
      r.reason = "connection closed before the response ended";
    }
  }
  r.bytes_out = s.head_bytes + s.sent;
  write_access_record(server_, worker_, who_, r);
  server_.count_h2_stream(worker_.index);
  streams_.erase(s.request.id);
  if (streams_.empty()) idle_since_ = Clock::now();
  --tasks_;
  wake_run();
}

asio::awaitable<void> H2Session::serve_phases(Stream& s) {
  H2Request& q = s.request;
  StreamRecord& r = s.record;
  r.request_id = fmt::format("{:016x}{:016x}", worker_.random(), worker_.random());
  r.http_version = "HTTP/2";
  r.method = q.method;
  r.host = (q.authority.empty() && q.host ? *q.host : q.authority).substr(0, 255);
  r.path = q.path.substr(0, std::min(q.path.find('?'), std::size_t{2048}));
  r.bytes_in = q.header_bytes + q.body.size();
  r.phase = "request";
  if (s.closed) co_return;  // reset before it was served: nothing goes upstream

  // Overload: new work is refused (503), old work finishes; GOAWAY so no new stream follows.
  if (server_.overloaded(worker_.index)) {
    server_.count_overload_rejection(worker_.index);
    r.phase = "limit";
    r.limit = "overload";
    reply_local(s, 503, "overloaded", "the edge is overloaded, try again", "proxy",
                {{"retry-after", "1"}});
    connection_->shut_down();
    co_return;
  }
  // The client's request budget, shared with HTTP/1.1: 429 with Retry-After.
  auto d = server_.guard_request(worker_.index, client_key_);
  if (!d.allowed()) {
    r.phase = "limit";
    r.limit = core::guard::verdict_name(d.verdict);
    const bool banned = d.verdict == core::guard::Verdict::kBanned || d.banned_now;
    const std::int64_t retry = std::max<std::int64_t>(1, d.retry_after.count());
    reply_local(s, 429, banned ? "banned" : "rate_limited",
                banned ? "client temporarily banned" : "request rate over the limit", "proxy",
                {{"retry-after", std::to_string(retry)}});
    if (banned) connection_->shut_down();
    co_return;
  }
  if (!check_request(s)) co_return;

  // Phase 5: the HTTP/1.1 request upstream. The edge sets the forwarding fields itself.
  r.phase = "upstream";
  const Route& route = *config_.route_for(r.host, r.path);
  const std::string& authority = q.authority.empty() ? *q.host : q.authority;
  std::string request;
  request.reserve(1024 + q.body.size());
  request.append(q.method).append(" ").append(q.path).append(" HTTP/1.1\r\nHost: ");
  request.append(authority).append("\r\n");
  for (const auto& [name, value] : q.headers) {
    if (is_hop_by_hop(name)) continue;
    bool replaced = false;
    for (std::string_view n : {"host", "content-length", "expect", "x-forwarded-for",
                               "x-forwarded-proto", "x-forwarded-host", "forwarded",
                               "x-request-id"}) {
      replaced = replaced || name == n;
    }
    if (replaced) continue;
    request.append(name).append(": ").append(value).append("\r\n");
  }
  if (!q.cookie.empty()) request.append("cookie: ").append(q.cookie).append("\r\n");
  append_forwarding_headers(request, who_, authority, r.request_id);
  if (!q.body.empty() || q.saw_data || q.content_length || may_have_body(q.method)) {
    fmt::format_to(std::back_inserter(request), "Content-Length: {}\r\n", q.body.size());
  }
  request += "\r\n";
  request += q.body;
  q.body.clear();
  q.body.shrink_to_fit();

  const bool head_request = q.method == "HEAD";
  s.exchange.emplace(server_, worker_, config_, stream_.get_executor());
  auto failed = co_await s.exchange->send(config_.pools[route.pool], q.method, request,
                                          head_request, r);
  if (s.closed) co_return;
  if (failed) {
    std::vector<std::pair<std::string, std::string>> extra;
    if (failed->retry_after != 0) {
      extra.emplace_back("retry-after", std::to_string(failed->retry_after));
    }
    reply_local(s, failed->status, failed->code, std::move(failed->reason), failed->termination,
                std::move(extra));
    co_return;
  }

  // Phase 6: the response. Names are lower-case in HTTP/2 (RFC 9113 8.2.2).
  r.phase = "response";
  const UpstreamResponse& response = s.exchange->response();
  // One lower-cased copy of the upstream's field block; the list points into it.
  std::string block = response.fields;
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  headers.reserve(16);
  UpstreamResponse::for_each_field_in(block, [&](std::string_view name, std::string_view value) {
    char* p = block.data() + (name.data() - block.data());
    for (std::size_t i = 0; i < name.size(); ++i) {
      p[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(p[i])));
    }
    headers.emplace_back(name, value);
  });
  headers.emplace_back("strict-transport-security", snapshot_->hsts);
  if (!response.has_request_id) headers.emplace_back("x-request-id", r.request_id);
  const std::string length = std::to_string(response.content_length);
  if (response.body == UpstreamResponse::Body::kContentLength) {
    headers.emplace_back("content-length", length);
  }
  for (const auto& [name, value] : headers) s.head_bytes += name.size() + value.size() + 4;
  const bool bodiless = response.body == UpstreamResponse::Body::kNone;
  connection_->submit_response(q.id, response.status, headers, bodiless);
  wake_writer();
  std::string piece;
  for (;;) {
    piece.clear();
    bool done = false;
    bool ok = co_await s.exchange->read_body(piece, done, true, r);
    if (s.closed && !bodiless) co_return;  // reset (by the client, or the send deadline)
    if (!ok) {
      connection_->reset_stream(q.id, NGHTTP2_INTERNAL_ERROR);
      wake_writer();
      co_return;
    }
    if (!bodiless) connection_->append_body(q.id, piece, done);
    wake_writer();
    if (done) break;
    // Flow control: the upstream is read only as fast as the client takes the bytes.
    while (!s.closed && connection_->buffered(q.id) > kMaxBuffered) co_await wait(s.wake);
    if (s.closed) co_return;
  }
  s.exchange->release(!draining_);
  r.termination = "complete";
  r.code = "ok";
}

// Phase 3 for HTTP/2: nghttp2 has checked the framing, the pseudo-header set, the field syntax
// and the connection-specific fields; what is left is what HTTP/1.1's check_request does.
bool H2Session::check_request(Stream& s) {
  H2Request& q = s.request;
  StreamRecord& r = s.record;
  r.phase = "check";
  if (q.header_too_large) {
    reply_local(s, 431, "header_too_large", "request header fields over the limit");
    return false;
  }
  if (q.body_too_large) {
    reply_local(s, 413, "body_too_large", "request body exceeds the limit");
    return false;
  }
  if (q.method == "CONNECT") {
    reply_local(s, 405, "bad_target", "the edge serves origin-form requests only");
    return false;
  }
  if (q.scheme != "https" && q.scheme != "http") {
    reply_local(s, 400, "bad_target", "a scheme other than http(s)");
    return false;
  }
  const std::string& authority = q.authority.empty() && q.host ? *q.host : q.authority;
  if (authority.empty()) {
    reply_local(s, 400, "missing_host", "request without :authority or Host");
    return false;
  }
  auto host = cp::parse_destination(authority, 443);
  if (!host) {
    reply_local(s, 400, "bad_host", ":authority is not a valid host name");
    return false;
  }
  if (q.host && !q.authority.empty()) {
    // RFC 9113 8.3.1: both present means the same; two hops must not route differently.
    auto other = cp::parse_destination(*q.host, 443);
    if (!other || other->host != host->host) {
      reply_local(s, 400, "host_mismatch", "Host disagrees with :authority");
      return false;
    }
  }
  r.host = host->host;
  if (q.path.empty() || q.path.front() != '/') {
    reply_local(s, 400, "bad_target", "the edge serves origin-form requests only");
    return false;
  }
  if (q.path.find('#') != std::string::npos) {
    reply_local(s, 400, "bad_target", "fragment in the request target");
    return false;
  }
  if (has_dot_segment(r.path)) {
    reply_local(s, 400, "dot_segment", "'.' or '..' segment in the request path");
    return false;
  }
  if (q.method == "TRACE") {
    reply_local(s, 405, "method_not_allowed", "TRACE is not allowed");
    return false;
  }
  const Route* route = config_.route_for(host->host, r.path);
  if (route == nullptr) {
    reply_local(s, 404, "no_route", "no route for this host and path");
    return false;
  }
  r.route = route->label.c_str();
  r.pool = config_.pools[route->pool].name.c_str();
  // The route's rate_limit (edge/route_limiter.hpp), as for HTTP/1.1.
  if (const std::int64_t retry = server_.route_limit(worker_.index, *route, client_key_);
      retry != 0) {
    r.phase = "limit";
    r.limit = "route";
    reply_local(s, 429, "rate_limited", "request rate over the route's limit", "proxy",
                {{"retry-after", std::to_string(retry)}});
    return false;
  }
  return true;
}

void H2Session::reply_local(Stream& s, int status, const char* code, std::string reason,
                            const char* termination,
                            std::vector<std::pair<std::string, std::string>> extra) {
  StreamRecord& r = s.record;
  r.status = status;
  r.code = code;
  r.reason = std::move(reason);
  r.termination = termination;
  std::string safe = r.reason;
  std::replace_if(safe.begin(), safe.end(), [](char c) { return c < 0x20 || c == 0x7f; }, '?');
  const std::string body = fmt::format("moat: {}\n", safe);
  const std::string length = std::to_string(body.size());
  std::vector<std::pair<std::string_view, std::string_view>> headers = {
      {"content-type", "text/plain; charset=utf-8"},
      {"content-length", length},
      {"x-request-id", r.request_id},
      {"strict-transport-security", snapshot_->hsts}};
  for (const auto& [name, value] : extra) headers.emplace_back(name, value);
  for (const auto& [name, value] : headers) s.head_bytes += name.size() + value.size() + 4;
  const bool head = s.request.method == "HEAD";
  connection_->submit_response(s.request.id, status, headers, head);
  if (!head) connection_->append_body(s.request.id, body, true);
  wake_writer();
}

}  // namespace moat::edge

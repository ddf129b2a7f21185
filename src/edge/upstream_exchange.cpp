// The upstream exchange of one stream; see upstream_exchange.hpp. Every wait has a deadline:
// connect_timeout for the connect, first_byte_timeout from the first request byte written to the
// response head, idle_timeout between body reads.
#include "edge/upstream_exchange.hpp"

#include <algorithm>
#include <array>
#include <span>

#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>

#include "core/http/response_head.hpp"
#include "core/runtime/process.hpp"
#include "edge/balancer.hpp"
#include "edge/server.hpp"
#include "edge/session.hpp"

namespace moat::edge {

namespace http = core::http;
using asio::use_awaitable;

namespace {

constexpr std::size_t kReadChunk = 16 * 1024;

// Names listed in any Connection field are hop-by-hop too (RFC 9110 7.6.1).
template <typename Head>
bool named_by_connection(const Head& head, std::string_view name) {
  for (std::size_t i = 0; i < head.header_count(); ++i) {
    const http::HeaderField f = head.header(i);
    if (http::iequals_ascii(f.name, "connection") && http::list_contains_token(f.value, name)) {
      return true;
    }
  }
  return false;
}

}  // namespace

bool is_hop_by_hop(std::string_view name) {
  using http::iequals_ascii;
  if (name.size() >= 5 && iequals_ascii(name.substr(0, 5), "proxy")) return true;
  for (std::string_view h : {"connection", "keep-alive", "te", "trailer", "transfer-encoding",
                             "upgrade"}) {
    if (iequals_ascii(name, h)) return true;
  }
  return false;
}

bool is_idempotent(std::string_view method) {
  for (std::string_view m : {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"}) {
    if (method == m) return true;
  }
  return false;
}

// So that a path-prefix route cannot be escaped by "/public/../admin" read one way here and
// another way upstream.
bool has_dot_segment(std::string_view path) {
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view segment = path.substr(start, end - start);
    std::string decoded;
    for (std::size_t i = 0; i < segment.size(); ++i) {
      if (segment[i] == '%' && i + 2 < segment.size() && segment[i + 1] == '2' &&
          (segment[i + 2] == 'e' || segment[i + 2] == 'E')) {
        decoded += '.';
        i += 2;
      } else {
        decoded += segment[i];
      }
    }
    if (decoded == "." || decoded == "..") return true;
    start = end + 1;
  }
  return false;
}


void write_access_record(Server& server, WorkerState& worker, const DownstreamInfo& who,
                         const StreamRecord& r) {
  auto duration = std::chrono::steady_clock::now() - r.start;
  if (!worker.access_records) {
    server.count_request(worker.index, r, std::chrono::duration<double>(duration).count());
    return;
  }
  auto& j = worker.access_line;
  j.clear();
  j.add_timestamp("time", r.start_time);
  j.add("request_id", r.request_id);
  j.add("listener", who.tls ? "https" : "http");
  j.add("client", who.client_text);
  j.add("client_port", who.client_port);
  if (who.tls) {
    j.add("tls_version", who.tls_version);
    j.add("alpn", who.alpn);
    j.add("sni", who.sni);
  }
  j.add("method", r.method);
  j.add("host", r.host);
  j.add("path", r.path);
  j.add("http_version", r.http_version);
  j.add("status", r.status);
  j.add("bytes_in", r.bytes_in);
  j.add("bytes_out", r.bytes_out);
  j.add("route", r.route);
  j.add("pool", r.pool);
  j.add("upstream", r.upstream);
  j.add("upstream_reused", r.upstream_reused);
  if (r.upstream_ms >= 0) j.add("upstream_ms", r.upstream_ms); else j.add_null("upstream_ms");
  j.add("duration_ms", std::chrono::duration_cast<std::chrono::milliseconds>(duration).count());
  j.add("phase", r.phase);
  j.add("termination", r.termination);
  j.add("code", r.code);
  j.add("reason", r.reason);
  if (*r.limit != '\0') j.add("limit", r.limit);
  worker.access_batch->add(j.view());
  server.count_request(worker.index, r, std::chrono::duration<double>(duration).count());
}

// RFC 7239 4: an IPv6 node is bracketed and quoted; the Host (checked by parse_destination: no
// quotes or backslashes) is always quoted since it may carry ':'. The edge is the first hop, so
// the client's own values for these are claims, not facts: callers drop them.
void append_forwarding_headers(std::string& out, const DownstreamInfo& who, std::string_view host,
                               std::string_view request_id) {
  fmt::format_to(std::back_inserter(out),
                 "X-Forwarded-For: {}\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: {}\r\n"
                 "Forwarded: for={}{}{};proto=https;host=\"{}\"\r\nX-Request-Id: {}\r\n",
                 who.client_text, host, who.client_v4 ? "" : "\"[", who.client_text,
                 who.client_v4 ? "" : "]\"", host, request_id);
}

const Member* pick_member(const Pool& pool, std::size_t worker,
                          std::span<const Member* const> tried) {
  return pick(pool, worker, BalancerClock::now(), tried);  // edge/balancer.hpp
}

UpstreamExchange::UpstreamExchange(Server& server, WorkerState& worker, const EdgeConfig& config,
                                   asio::any_io_executor executor)
    : server_(server),
      worker_(worker),
      config_(config),
      socket_(executor),
      executor_(executor),
      deadline_(*worker.deadlines, &UpstreamExchange::on_deadline, this) {}

UpstreamExchange::~UpstreamExchange() {
  asio::error_code ignored;
  socket_.close(ignored);
}

asio::awaitable<std::optional<LocalReply>> UpstreamExchange::send(const Pool& pool,
                                                                  std::string_view method,
                                                                  const std::string& request,
                                                                  bool head_request,
                                                                  StreamRecord& record,
                                                                  bool websocket) {
  record.phase = "upstream";
  // Members this request has failed to connect to: never picked again for it.
  constexpr std::size_t kMaxTried = 8;
  std::array<const Member*, kMaxTried> tried{};
  std::size_t tried_count = 0;
  const Member* member = pick_member(pool, worker_.index, {});
  if (member == nullptr) {
    // Every member is down (active checks) or ejected (passive checks).
    LocalReply none{503, "no_healthy_upstream",
                    fmt::format("no healthy member in pool '{}'", pool.name), "proxy"};
    none.retry_after = static_cast<std::uint32_t>(pool.retry_after.count() / 1000);
    co_return none;
  }
  // A pooled connection may have been closed by the upstream just as we reuse it: if it fails
  // before any response byte, an idempotent request is sent once more on a new connection. A
  // connect failure moves an idempotent request to another member the balancer picks.
  bool fresh = false;
  bool stale_retried = false;
  for (;;) {
    record.upstream = member->text;
    key_ = member->text;
    Attempt attempt(pool, *member, worker_.index);  // balancer: counts and passive checks
    auto failed = co_await connect(*member, fresh, record);
    if (failed) {
      // Cancelled (the client reset its stream, drain): says nothing about the member.
      attempt.end(cancelled_                ? AttemptOutcome::kInconclusive
                  : failed->status == 504 ? AttemptOutcome::kTimeout
                                          : AttemptOutcome::kConnectFailed);
      if (cancelled_) co_return failed;
      tried[tried_count++] = member;
      const Member* next =
          is_idempotent(method) && tried_count < kMaxTried
              ? pick_member(pool, worker_.index, std::span(tried.data(), tried_count))
              : nullptr;
      if (next == nullptr) co_return failed;
      member = next;
      fresh = false;
      stale_retried = false;
      continue;
    }
    bool retryable = false;
    const auto sent_at = BalancerClock::now();
    bool ok = co_await send_and_read_head(request, head_request, websocket, retryable, record);
    if (ok) {
      attempt.end(AttemptOutcome::kOk, std::chrono::duration_cast<std::chrono::microseconds>(
                                           BalancerClock::now() - sent_at));
      co_return std::nullopt;
    }
    release(false);
    const bool stale = retryable && record.upstream_reused;  // says nothing about the member
    attempt.end(cancelled_   ? AttemptOutcome::kInconclusive
                : timed_out_ ? AttemptOutcome::kTimeout
                : stale      ? AttemptOutcome::kInconclusive
                             : AttemptOutcome::kBadResponse);
    if (cancelled_) break;
    if (timed_out_) {
      co_return LocalReply{504, "upstream_timeout", "upstream did not answer in time", "timeout"};
    }
    if (!(stale && is_idempotent(method)) || stale_retried) break;
    stale_retried = true;
    fresh = true;
  }
  co_return LocalReply{502, "upstream_error",
                       record.reason.empty() ? "upstream failed" : record.reason, "upstream"};
}

asio::awaitable<std::optional<LocalReply>> UpstreamExchange::connect(const Member& member,
                                                                     bool fresh,
                                                                     StreamRecord& record) {
  auto pooled = fresh ? std::nullopt : worker_.upstreams.take(key_);
  if (pooled) {
    socket_ = std::move(*pooled);
    open_ = true;
    record.upstream_reused = true;
    server_.count_upstream_connect(worker_.index, "reused");
    co_return std::nullopt;
  }
  record.upstream_reused = false;
  record.phase = "connect";
  socket_ = asio::ip::tcp::socket(executor_);
  asio::ip::tcp::endpoint endpoint(core::runtime::to_asio(member.address), member.port);
  arm(config_.limits.connect_timeout);
  asio::error_code ec;
  co_await socket_.async_connect(endpoint, asio::redirect_error(use_awaitable, ec));
  disarm();
  if (ec || timed_out_) {
    server_.count_upstream_connect(worker_.index, "failed");
    asio::error_code ignored;
    socket_.close(ignored);
    if (timed_out_) {
      co_return LocalReply{504, "upstream_connect_timeout", "upstream connect timed out",
                           "timeout"};
    }
    co_return LocalReply{502, "upstream_unreachable", "upstream unreachable: " + ec.message(),
                         "upstream"};
  }
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  open_ = true;
  server_.count_upstream_connect(worker_.index, "new");
  co_return std::nullopt;
}

// Writes the request and reads the response head (1xx interim responses are dropped: the body
// was already sent whole). On failure: false, with `retryable` when no response byte came.
asio::awaitable<bool> UpstreamExchange::send_and_read_head(const std::string& request,
                                                           bool head_request, bool websocket,
                                                           bool& retryable,
                                                           StreamRecord& record) {
  record.phase = "upstream";
  retryable = true;
  in_.clear();
  auto sent_at = std::chrono::steady_clock::now();
  arm(config_.limits.first_byte_timeout);
  asio::error_code ec;
  co_await asio::async_write(socket_, asio::buffer(request),
                             asio::redirect_error(use_awaitable, ec));
  if (ec) {
    disarm();
    record.reason = "upstream write failed: " + ec.message();
    co_return false;
  }
  http::ResponseHeadLimits limits;
  limits.max_header_bytes = config_.limits.max_response_header_bytes;
  for (;;) {
    http::ResponseHeadParser head(limits);
    http::ParseStatus status = head.feed(in_);
    while (status == http::ParseStatus::kNeedMore) {
      const std::size_t old = in_.size();
      std::size_t n = co_await read_some(ec);
      if (n == 0) {
        disarm();
        record.reason = old == 0 ? "upstream closed without a response"
                                 : "upstream closed during the response head";
        if (old != 0) retryable = false;
        co_return false;
      }
      retryable = false;
      status = head.feed(std::string_view(in_).substr(old));
    }
    if (status == http::ParseStatus::kError) {
      disarm();
      retryable = false;
      record.reason = "invalid response head: " + std::string(head.error().message);
      co_return false;
    }
    in_.erase(0, head.consumed());
    if (head.status_code() >= 100 && head.status_code() < 200) {
      if (head.status_code() == 101) {
        disarm();
        retryable = false;
        auto upgrade = head.find_header("upgrade");
        if (!websocket || !upgrade || !http::iequals_ascii(*upgrade, "websocket")) {
          record.reason = websocket ? "upstream switched to a protocol other than websocket"
                                    : "upstream switched protocols without being asked";
          co_return false;
        }
        // RFC 6455 4.1: the tunnel starts after this head. End-to-end fields (Sec-WebSocket-*)
        // go to the client; the caller adds Connection and Upgrade.
        record.upstream_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now() - sent_at)
                                 .count();
        record.status = 101;
        response_.clear();
        response_.status = 101;
        response_.reason = head.reason();
        for (std::size_t i = 0; i < head.header_count(); ++i) {
          const http::HeaderField f = head.header(i);
          if (is_hop_by_hop(f.name) || named_by_connection(head, f.name)) continue;
          if (http::iequals_ascii(f.name, "strict-transport-security")) continue;
          if (http::iequals_ascii(f.name, "content-length")) continue;
          response_.has_request_id =
              response_.has_request_id || http::iequals_ascii(f.name, "x-request-id");
          response_.add_field(f.name, f.value);
        }
        response_.body = UpstreamResponse::Body::kNone;
        reusable_ = false;  // never back to the pool: it carries another protocol now
        co_return true;
      }
      continue;  // 100 Continue, 103 Early Hints: dropped
    }
    disarm();
    record.upstream_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - sent_at)
                             .count();
    http::ResponseFraming framing = http::classify_response_framing(head, head_request);
    if (framing.kind == http::ResponseFraming::Kind::kError) {
      retryable = false;
      record.reason = "upstream response framing: " + std::string(framing.error.message);
      co_return false;
    }
    record.status = head.status_code();
    const bool passthrough_length = head_request || head.status_code() == 304;
    bool upstream_closes = head.version() == http::HttpVersion::kHttp10;
    response_.clear();
    response_.status = head.status_code();
    response_.reason = head.reason();
    for (std::size_t i = 0; i < head.header_count(); ++i) {
      const http::HeaderField f = head.header(i);
      if (http::iequals_ascii(f.name, "connection") && http::list_contains_token(f.value, "close")) {
        upstream_closes = true;
      }
      if (is_hop_by_hop(f.name) || named_by_connection(head, f.name)) continue;
      if (http::iequals_ascii(f.name, "strict-transport-security")) continue;  // ours wins
      if (http::iequals_ascii(f.name, "content-length") && !passthrough_length) continue;
      response_.has_request_id =
          response_.has_request_id || http::iequals_ascii(f.name, "x-request-id");
      response_.add_field(f.name, f.value);
    }
    reusable_ = !upstream_closes;
    response_.content_length = framing.content_length;
    switch (framing.kind) {
      case http::ResponseFraming::Kind::kContentLength:
        response_.body = UpstreamResponse::Body::kContentLength;
        break;
      case http::ResponseFraming::Kind::kChunked:
        response_.body = UpstreamResponse::Body::kChunked;
        break;
      case http::ResponseFraming::Kind::kUntilClose:
        response_.body = UpstreamResponse::Body::kUntilClose;
        reusable_ = false;
        break;
      default:
        response_.body = UpstreamResponse::Body::kNone;
        break;
    }
    left_ = response_.content_length;
    decoder_ = ChunkedDecoder{};
    co_return true;
  }
}

asio::awaitable<bool> UpstreamExchange::read_body(std::string& piece, bool& done, bool wait,
                                                  StreamRecord& record) {
  using Body = UpstreamResponse::Body;
  done = false;
  auto failed = [&](const char* code, std::string reason) {
    record.termination = timed_out_ ? "timeout" : "upstream";
    record.code = timed_out_ ? "upstream_timeout" : code;
    record.reason = std::move(reason);
    release(false);
    return false;
  };
  switch (response_.body) {
    case Body::kNone:
      if (!in_.empty()) reusable_ = false;  // bytes after a bodiless response
      done = true;
      co_return true;
    case Body::kContentLength: {
      if (in_.empty() && left_ > 0 && wait) {
        arm(config_.limits.idle_timeout);
        asio::error_code ec;
        std::size_t n = co_await read_some(ec);
        disarm();
        if (n == 0) co_return failed("upstream_closed", "upstream closed during the body");
      }
      const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(left_, in_.size()));
      if (in_.size() > take) reusable_ = false;
      hand_over(piece, take);
      left_ -= take;
      done = left_ == 0;
      co_return true;
    }
    case Body::kChunked: {
      for (;;) {
        std::size_t used = 0;
        const std::size_t before = piece.size();
        auto status = decoder_.feed(in_, piece, used);
        if (status == ChunkedDecoder::Status::kError) {
          co_return failed("bad_upstream_chunked",
                           "invalid chunked response: " + std::string(decoder_.error()));
        }
        in_.erase(0, used);
        if (status == ChunkedDecoder::Status::kDone) {
          if (!in_.empty()) reusable_ = false;
          done = true;
          co_return true;
        }
        if (piece.size() > before || !wait) co_return true;
        arm(config_.limits.idle_timeout);
        asio::error_code ec;
        std::size_t n = co_await read_some(ec);
        disarm();
        if (n == 0) co_return failed("upstream_closed", "upstream closed during the body");
      }
    }
    case Body::kUntilClose: {
      if (in_.empty() && wait) {
        arm(config_.limits.idle_timeout);
        asio::error_code ec;
        std::size_t n = co_await read_some(ec);
        disarm();
        if (n == 0) {
          if (timed_out_) co_return failed("upstream_timeout", "upstream idle during the body");
          done = true;
          co_return true;
        }
      }
      hand_over(piece, in_.size());
      co_return true;
    }
  }
  co_return true;
}

void UpstreamExchange::release(bool keep) {
  if (!open_) return;
  open_ = false;
  if (keep && reusable_) {
    worker_.upstreams.give_back(key_, std::move(socket_), config_.limits.max_idle_upstream);
    socket_ = asio::ip::tcp::socket(executor_);
    return;
  }
  asio::error_code ignored;
  socket_.close(ignored);
}

// The first `n` buffered bytes go to `piece` and the rest is dropped; the common case, all of
// them into an empty piece, swaps the buffers instead of copying the bytes.
void UpstreamExchange::hand_over(std::string& piece, std::size_t n) {
  if (piece.empty() && n == in_.size()) {
    piece.swap(in_);
  } else {
    piece.append(in_, 0, n);
  }
  in_.clear();
}

void UpstreamExchange::release_buffers() { worker_.buffers.give(in_); }

void UpstreamExchange::cancel() {
  cancelled_ = true;
  reusable_ = false;
  asio::error_code ignored;
  socket_.cancel(ignored);
  deadline_.disarm();
}

asio::awaitable<std::size_t> UpstreamExchange::read_some(asio::error_code& ec) {
  const std::size_t old = in_.size();
  worker_.buffers.lend(in_, old + kReadChunk);
  in_.resize(old + kReadChunk);
  std::size_t n = co_await socket_.async_read_some(asio::buffer(in_.data() + old, kReadChunk),
                                                   asio::redirect_error(use_awaitable, ec));
  in_.resize(old + n);
  co_return ec ? std::size_t{0} : n;
}

void UpstreamExchange::arm(std::chrono::milliseconds timeout) {
  timed_out_ = false;
  deadline_.arm(timeout);
}

void UpstreamExchange::disarm() { deadline_.disarm(); }

void UpstreamExchange::on_deadline(void* self) {
  auto* exchange = static_cast<UpstreamExchange*>(self);
  exchange->timed_out_ = true;
  asio::error_code ignored;
  exchange->socket_.cancel(ignored);
}

}  // namespace moat::edge

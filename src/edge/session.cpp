// One edge connection, accept to close. Read run_phases() first: it lists the phases in order.
//
// HTTPS listener: TLS handshake (deadline) -> for each request on the connection: read the head
// (strict parser, deadline) -> check it (framing, Host, target; smuggling forms are answered 400
// and the connection closes, nothing is forwarded) -> route by host and path prefix -> read the
// body (Content-Length or chunked, decoded, bounded) -> forward to the upstream over a pooled
// keep-alive connection -> relay the response (re-framed, hop-by-hop headers removed, HSTS added)
// -> one access record. HTTP listener: every request gets a 308 to the same URL on HTTPS.
#include "edge/session.hpp"

#include <sys/socket.h>

#include <algorithm>

#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>
#include <openssl/ssl.h>

#include "core/http/request_head.hpp"
#include "core/http/status.hpp"
#include "core/http/response_head.hpp"
#include "core/policy/host_pattern.hpp"
#include "core/runtime/process.hpp"
#include "edge/chunked.hpp"
#include "edge/h2_session.hpp"
#include "edge/server.hpp"

namespace moat::edge {

namespace cp = core::policy;
namespace http = core::http;
namespace net = core::net;
using asio::use_awaitable;

namespace {

constexpr std::size_t kReadChunk = 16 * 1024;
constexpr std::size_t kIdleReadChunk = 2 * 1024;

using core::runtime::to_asio;

net::IpAddress to_ip(const asio::ip::address& a) { return core::runtime::from_asio(a); }

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

template <typename Head>
bool connection_has(const Head& head, std::string_view token) {
  for (std::size_t i = 0; i < head.header_count(); ++i) {
    const http::HeaderField f = head.header(i);
    if (http::iequals_ascii(f.name, "connection") && http::list_contains_token(f.value, token)) {
      return true;
    }
  }
  return false;
}

std::string bracket(const cp::Destination& d) {
  if (d.kind == cp::Destination::Kind::kAddress && !d.address.is_v4()) return "[" + d.host + "]";
  return d.host;
}

}  // namespace

// ---- UpstreamPool ---------------------------------------------------------------------------

std::optional<asio::ip::tcp::socket> UpstreamPool::take(const std::string& key) {
  auto it = idle_.find(key);
  if (it == idle_.end()) return std::nullopt;
  auto now = std::chrono::steady_clock::now();
  while (!it->second.empty()) {
    Idle idle = std::move(it->second.back());
    it->second.pop_back();
    if (now - idle.since > kMaxIdle) continue;  // closing it is enough
    // Still open and silent? A closed peer reads 0; unexpected bytes mean a desync: drop both.
    char probe = 0;
    ssize_t n = ::recv(idle.socket.native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return std::move(idle.socket);
  }
  return std::nullopt;
}

void UpstreamPool::give_back(const std::string& key, asio::ip::tcp::socket socket,
                             std::size_t max_idle) {
  auto& list = idle_[key];
  if (list.size() >= max_idle) return;
  list.push_back({std::move(socket), std::chrono::steady_clock::now()});
}

void UpstreamPool::clear() { idle_.clear(); }

std::size_t UpstreamPool::idle_count() const {
  std::size_t n = 0;
  for (const auto& [key, list] : idle_) n += list.size();
  return n;
}

// ---- Session --------------------------------------------------------------------------------

Session::Session(Server& server, WorkerState& worker, std::shared_ptr<const EdgeSnapshot> snapshot,
                 asio::ip::tcp::socket socket, const asio::ip::tcp::endpoint& remote, bool tls,
                 core::guard::ClientKey client_key)
    : server_(server),
      worker_(worker),
      snapshot_(std::move(snapshot)),
      config_(*snapshot_->config),
      tls_(tls),
      plain_(socket.get_executor()),
      deadline_(*worker.deadlines, &Session::on_deadline, this),
      client_key_(client_key) {
  who_.tls = tls_;
  client_address_ = to_ip(remote.address());
  if (auto v4 = client_address_.embedded_v4()) client_address_ = *v4;
  who_.client_text = client_address_.to_string();
  who_.client_v4 = client_address_.is_v4();
  who_.client_port = remote.port();
  asio::error_code ec;
  socket.set_option(asio::ip::tcp::no_delay(true), ec);
  if (tls_) {
    stream_.emplace(std::move(socket), snapshot_->tls->default_context().native_handle());
  } else {
    plain_ = std::move(socket);
  }
}

Session::~Session() = default;

asio::ip::tcp::socket& Session::lowest() { return tls_ ? stream_->next_layer() : plain_; }

asio::awaitable<void> Session::run(Entry entry) {
  auto self = shared_from_this();  // keeps the session alive across suspensions
  if (entry == Entry::kStart) {
    server_.on_connection_open(worker_.index, tls_);
    worker_.sessions.insert(this);
  }
  bool parked = false;
  try {
    parked = co_await run_phases(entry);
  } catch (const std::exception& e) {
    // Last resort: no exception is expected on this path; log, count, close.
    server_.on_session_exception(worker_.index, e.what());
  }
  if (parked) {
    park();
    co_return;
  }
  worker_.sessions.erase(this);
  disarm();
  asio::error_code ec;
  lowest().close(ec);
  if (exchange_) {
    exchange_->cancel();
    exchange_->release(false);
  }
  server_.guard_close(client_key_);
  server_.on_connection_close(worker_.index, tls_);
}

// An idle connection waits for its next request as a plain readiness callback that holds only
// the session: no coroutine frame, no buffer. Idle keep-alive connections are the ones there
// are many of. The deadline armed before parking (header or idle timeout) and a drain both end
// the wait by cancelling it.
void Session::park() {
  lowest().async_wait(asio::socket_base::wait_read,
                      [self = shared_from_this()](const asio::error_code& ec) {
                        self->disarm();
                        const Entry next = ec || self->draining_ ? Entry::kEnd : Entry::kResume;
                        asio::co_spawn(self->lowest().get_executor(), self->run(next),
                                       asio::detached);
                      });
}

asio::awaitable<bool> Session::run_phases(Entry entry) {
  // Each co_await result goes into a variable first: gcc 12 miscompiles some co_await
  // expressions inside conditions.
  if (entry == Entry::kStart && tls_) {
    Step step = co_await handshake();
    if (step == Step::kDone) co_return false;
    if (who_.alpn == "h2") {
      // RFC 9113 3.2: h2 was negotiated; the connection speaks HTTP/2 from its first byte.
      h2_ = std::make_shared<H2Session>(server_, worker_, snapshot_, *stream_, info(),
                                        client_key_);
      co_await h2_->run();
      co_await tls_shutdown();
      co_return false;
    }
  }
  // Woken from park(): the socket is readable, so the next request is read, not waited for.
  bool readable = entry == Entry::kResume;
  while (entry != Entry::kEnd) {
    if (!readable && in_.empty() && (!tls_ || !stream_->has_pending())) {
      // Nothing to read yet: give back what the last request grew and park (see park()). The
      // first request has header_timeout to start, later ones idle_timeout.
      idle_ = true;
      release_buffers();
      arm(requests_ == 0 ? config_.limits.header_timeout : config_.limits.idle_timeout);
      co_return true;
    }
    readable = false;
    Next next = co_await serve_stream(requests_ == 0);
    if (record_open_) write_access_record();
    if (next == Next::kClose || draining_) break;
  }
  // After a failed or timed-out write the TLS stream is unusable and the client not reading:
  // a close_notify would only wait.
  if (tls_ && !write_failed_) co_await tls_shutdown();
  co_return false;
}

// Phase 1: the TLS handshake under its deadline. SNI picks the certificate (TlsContexts), ALPN
// settles on http/1.1.
asio::awaitable<Session::Step> Session::handshake() {
  // The client's handshake budget, before any TLS work (SSL_accept is the expensive part).
  if (!server_.guard_handshake(worker_.index, client_key_).allowed()) co_return Step::kDone;
  arm(config_.limits.handshake_timeout);
  asio::error_code ec;
  co_await stream_->handshake(ec);
  disarm();
  if (ec) {
    server_.count_handshake_failure(worker_.index, timed_out_ ? "timeout" : "error");
    co_return Step::kDone;
  }
  SSL* ssl = stream_->native_handle();
  who_.tls_version = SSL_get_version(ssl);
  const unsigned char* alpn = nullptr;
  unsigned int alpn_length = 0;
  SSL_get0_alpn_selected(ssl, &alpn, &alpn_length);
  if (alpn != nullptr) who_.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_length);
  if (const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) {
    who_.sni = std::string(name).substr(0, 255);
  }
  co_return Step::kContinue;
}

void Session::begin_stream() {
  record_.reset();  // its start times are taken when the request's first byte arrives (read_head)
  record_open_ = false;
  body_.clear();
  route_ = nullptr;
  close_after_ = false;
  head_request_ = false;
  client_http10_ = false;
  host_header_.clear();
  forward_target_.clear();
  websocket_ = false;
}

// One request and its response. Returns whether the connection may carry another.
asio::awaitable<Session::Next> Session::serve_stream(bool first) {
  begin_stream();
  http::RequestHeadLimits head_limits;
  head_limits.max_request_line_bytes = config_.limits.max_request_line;
  head_limits.max_header_bytes = config_.limits.max_header_bytes;
  http::RequestHeadParser parser(head_limits);
  Step step = co_await read_head(parser, first);
  if (step == Step::kDone) co_return Next::kClose;
  ++requests_;
  if (requests_ >= config_.limits.max_requests_per_connection) close_after_ = true;
  step = co_await shed_if_overloaded();
  if (step == Step::kDone) co_return Next::kClose;
  step = co_await rate_limit(parser);
  if (step == Step::kDone) co_return close_after_ ? Next::kClose : Next::kKeepAlive;
  if (!tls_) {
    Next next = co_await redirect(parser);
    co_return next;
  }
  if (check_request(parser) == Step::kDone) {
    co_await reply_local(record_.status, record_.code, record_.reason);
    co_return close_after_ ? Next::kClose : Next::kKeepAlive;
  }
  step = co_await route_rate_limit(parser);
  if (step == Step::kDone) co_return close_after_ ? Next::kClose : Next::kKeepAlive;
  step = co_await read_body(parser);
  if (step == Step::kDone) co_return Next::kClose;
  step = co_await forward(parser);
  if (step == Step::kDone) co_return Next::kClose;
  if (exchange_->response().status == 101) {
    co_await tunnel();
    co_return Next::kClose;
  }
  step = co_await relay_response();
  if (step == Step::kDone) co_return Next::kClose;
  co_return close_after_ ? Next::kClose : Next::kKeepAlive;
}

// Phase 2: the request head. Between requests the keep-alive wait is idle_timeout; from the
// first byte, the whole head must arrive within header_timeout (slowloris).
asio::awaitable<Session::Step> Session::read_head(http::RequestHeadParser& parser, bool first) {
  record_.phase = "request";
  const std::size_t cap = config_.limits.max_request_line + config_.limits.max_header_bytes + 4;
  if (in_.empty()) {
    // Readable, but the bytes may be a TLS record's first part only: still under the idle
    // deadline, as run_phases' wait was.
    arm(first ? config_.limits.header_timeout : config_.limits.idle_timeout);
    asio::error_code ec;
    std::size_t n = co_await client_read(cap, ec);
    disarm();
    if (n == 0) co_return Step::kDone;  // closed or idle: not a request, no record
  }
  idle_ = false;
  record_open_ = true;
  record_.start_time = std::chrono::system_clock::now();
  record_.start = std::chrono::steady_clock::now();
  assign_request_id();
  arm(config_.limits.header_timeout);
  for (;;) {
    auto status = parser.feed(in_);
    std::size_t used = parser.consumed_last_feed();
    if (status == http::ParseStatus::kComplete) {
      in_.erase(0, used);
      break;
    }
    if (status == http::ParseStatus::kError) {
      disarm();
      const auto& e = parser.error();
      record_.reason = std::string(e.message);
      close_after_ = true;
      co_await reply_local(e.status, "bad_request", std::string(e.message));
      co_return Step::kDone;
    }
    in_.clear();  // every byte so far belongs to the head (kept inside the parser)
    asio::error_code ec;
    std::size_t n = co_await client_read(cap, ec);
    if (n == 0) {
      disarm();
      if (timed_out_) {
        close_after_ = true;
        co_await reply_local(408, "request_timeout", "request head not received in time",
                             "timeout");
      } else {
        record_.termination = "client";
        record_.code = "client_closed";
        record_.reason = "closed during the request head";
      }
      co_return Step::kDone;
    }
  }
  disarm();
  record_.bytes_in += parser.consumed();
  record_.method = parser.method();
  record_.http_version = parser.version() == http::HttpVersion::kHttp10 ? "HTTP/1.0" : "HTTP/1.1";
  std::string_view target = parser.target();
  record_.path = target.substr(0, std::min(target.find('?'), std::size_t{2048}));
  if (auto host = parser.find_header("host")) record_.host = host->substr(0, 255);
  client_http10_ = parser.version() == http::HttpVersion::kHttp10;
  head_request_ = parser.method() == "HEAD";
  // RFC 9112 9.3: HTTP/1.0 closes unless asked otherwise; "Connection: close" closes.
  if (client_http10_ ? !connection_has(parser, "keep-alive") : connection_has(parser, "close")) {
    close_after_ = true;
  }
  co_return Step::kContinue;
}

// Phase 2b: the client's request budget. Over it: 429 with Retry-After (whole seconds), and the
// connection stays open unless a body follows (not read, so not trusted), a ban began, or it is
// the HTTP listener (one request per connection).
asio::awaitable<Session::Step> Session::rate_limit(const http::RequestHeadParser& parser) {
  auto d = server_.guard_request(worker_.index, client_key_);
  if (d.allowed()) co_return Step::kContinue;
  record_.phase = "limit";
  record_.limit = core::guard::verdict_name(d.verdict);
  const bool banned = d.verdict == core::guard::Verdict::kBanned || d.banned_now;
  if (banned || !tls_ ||
      http::classify_body_framing(parser).kind != http::BodyFraming::Kind::kNone) {
    close_after_ = true;
  }
  const std::int64_t retry = std::max<std::int64_t>(1, d.retry_after.count());
  reply_headers_ = fmt::format("Retry-After: {}\r\n", retry);
  co_await reply_local(429, banned ? "banned" : "rate_limited",
                       banned ? "client temporarily banned" : "request rate over the limit");
  co_return Step::kDone;
}

// Phase 3b: the route's own budget (rate_limit), per client and route, shared by the workers
// (edge/route_limiter.hpp). Same answer as the per-client budget, with limit "route"; it is not
// a ban trip (a route limit is a policy of the site, not evidence of abuse).
asio::awaitable<Session::Step> Session::route_rate_limit(const http::RequestHeadParser& parser) {
  const std::int64_t retry = server_.route_limit(worker_.index, *route_, client_key_);
  if (retry == 0) co_return Step::kContinue;
  record_.phase = "limit";
  record_.limit = "route";
  if (http::classify_body_framing(parser).kind != http::BodyFraming::Kind::kNone) {
    close_after_ = true;  // the body is not read
  }
  reply_headers_ = fmt::format("Retry-After: {}\r\n", retry);
  co_await reply_local(429, "rate_limited", "request rate over the route's limit");
  co_return Step::kDone;
}

// Overload (edge/overload.hpp): refuse new work, finish old. The request already read is new
// work; 503 with Retry-After and a close sends the client to another instance or back later.
asio::awaitable<Session::Step> Session::shed_if_overloaded() {
  if (!server_.overloaded(worker_.index)) co_return Step::kContinue;
  server_.count_overload_rejection(worker_.index);
  record_.phase = "limit";
  record_.limit = "overload";
  close_after_ = true;
  reply_headers_ = "Retry-After: 1\r\n";
  co_await reply_local(503, "overloaded", "the edge is overloaded, try again");
  co_return Step::kDone;
}

// Phase 3 (synchronous): framing, Host, target, method and route. kDone means "answer with
// record_.status" (request smuggling forms close the connection: nothing after them is trusted).
Session::Step Session::check_request(const http::RequestHeadParser& parser) {
  record_.phase = "check";
  auto refuse = [&](int status, const char* code, std::string reason, bool close) {
    record_.status = status;
    record_.code = code;
    record_.reason = std::move(reason);
    if (close) close_after_ = true;
    return Step::kDone;
  };
  http::BodyFraming framing = http::classify_body_framing(parser);
  if (framing.kind == http::BodyFraming::Kind::kError) {
    // CL with TE, differing CLs, a bad CL, TE other than chunked: never forwarded; the bytes
    // after this head cannot be trusted to start a request, so the connection closes.
    return refuse(framing.error.status, "bad_framing", std::string(framing.error.message), true);
  }
  const bool has_body = framing.kind != http::BodyFraming::Kind::kNone;
  auto host_value = parser.find_header("host");
  if (!host_value) {
    // HTTP/1.0 without Host: nothing to route by.
    return refuse(400, "missing_host", "request without a Host header", true);
  }
  auto host = cp::parse_destination(*host_value, 443);
  if (!host) return refuse(400, "bad_host", "Host is not a valid host name", true);
  record_.host = host->host;
  host_header_ = std::string(*host_value);
  std::string_view target = parser.target();
  if (parser.target_form() == http::TargetForm::kAbsolute) {
    // RFC 9112 3.2.2: the target's authority wins over Host; a proxy that forwards both lets
    // the two hops route differently, so a disagreement is refused.
    const auto scheme_end = target.find("://");
    std::string_view scheme = target.substr(0, scheme_end);
    std::string_view rest = target.substr(scheme_end + 3);
    const auto authority_end = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, authority_end);
    if (!http::iequals_ascii(scheme, "https") && !http::iequals_ascii(scheme, "http")) {
      return refuse(400, "bad_target", "absolute-form target with a scheme other than http(s)",
                    true);
    }
    if (authority.find('@') != std::string_view::npos) {
      return refuse(400, "bad_target", "userinfo in the request target", true);
    }
    auto target_host = cp::parse_destination(authority, 443);
    if (!target_host || target_host->host != host->host) {
      return refuse(400, "host_mismatch", "absolute-form target disagrees with Host", true);
    }
    target = authority_end == std::string_view::npos ? std::string_view("/")
                                                     : rest.substr(authority_end);
    if (target.front() != '/') forward_target_ = "/";
  } else if (parser.target_form() != http::TargetForm::kOrigin) {
    return refuse(parser.method() == "CONNECT" ? 405 : 400, "bad_target",
                  "the edge serves origin-form requests only", true);
  }
  forward_target_ += std::string(target);
  std::string_view path = target.substr(0, target.find('?'));
  record_.path = path.substr(0, 2048);
  if (target.find('#') != std::string_view::npos) {
    return refuse(400, "bad_target", "fragment in the request target", true);
  }
  if (has_dot_segment(path)) {
    return refuse(400, "dot_segment", "'.' or '..' segment in the request path", true);
  }
  if (parser.method() == "TRACE") {
    // TRACE would echo cookies and credentials back (cross-site tracing).
    return refuse(405, "method_not_allowed", "TRACE is not allowed", has_body);
  }
  if (auto expect = parser.find_header("expect")) {
    if (!http::iequals_ascii(*expect, "100-continue") || parser.count_headers("expect") != 1) {
      return refuse(417, "bad_expect", "only Expect: 100-continue is supported", true);
    }
  }
  if (framing.kind == http::BodyFraming::Kind::kContentLength &&
      framing.content_length > config_.limits.max_body_bytes) {
    return refuse(413, "body_too_large", "request body exceeds the limit", true);
  }
  route_ = config_.route_for(host->host, path);
  if (route_ == nullptr) {
    // The body (if any) was not read: closing keeps the stream in sync.
    return refuse(404, "no_route", "no route for this host and path", has_body);
  }
  record_.route = route_->label.c_str();
  record_.pool = config_.pools[route_->pool].name.c_str();
  // RFC 6455 4.1: a WebSocket opening handshake is a GET with "Upgrade: websocket" and
  // "Connection: Upgrade", without a body; it alone is forwarded with its Upgrade. Any other
  // Upgrade (h2c, TLS/1.0, ...) is dropped as the hop-by-hop field it is and the request served
  // as a normal one (RFC 9110 7.8: a server may ignore Upgrade).
  if (auto upgrade = parser.find_header("upgrade")) {
    websocket_ = parser.method() == "GET" && !has_body && !client_http10_ &&
                 parser.count_headers("upgrade") == 1 && connection_has(parser, "upgrade") &&
                 http::iequals_ascii(*upgrade, "websocket");
  }
  return Step::kContinue;
}

// Phase 4: the body, read whole (bounded by max_body_bytes) and decoded, so the upstream gets a
// plain Content-Length body: it never has to parse the client's framing (no desync possible).
asio::awaitable<Session::Step> Session::read_body(const http::RequestHeadParser& parser) {
  record_.phase = "body";
  http::BodyFraming framing = http::classify_body_framing(parser);
  if (framing.kind == http::BodyFraming::Kind::kNone) co_return Step::kContinue;
  if (parser.find_header("expect") && !client_http10_ && in_.empty() &&
      !(framing.kind == http::BodyFraming::Kind::kContentLength &&
        framing.content_length == 0)) {
    // RFC 9110 10.1.1: the route exists and the size fits: ask for the body.
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    bool written = co_await client_write(kContinue);
    if (!written) co_return Step::kDone;
  }
  const std::size_t max = config_.limits.max_body_bytes;
  // min_body_rate counts from here (after any 100 Continue): bytes already read count too.
  const auto body_started = std::chrono::steady_clock::now();
  std::uint64_t chunked_received = in_.size();
  if (framing.kind == http::BodyFraming::Kind::kContentLength) {
    const std::size_t want = static_cast<std::size_t>(framing.content_length);
    while (in_.size() < want) {
      arm_body(body_started, in_.size());
      asio::error_code ec;
      std::size_t n = co_await client_read(want - in_.size(), ec);
      disarm();
      if (n == 0) {
        co_await body_incomplete();
        co_return Step::kDone;
      }
    }
    body_.assign(in_, 0, want);
    in_.erase(0, want);
    record_.bytes_in += want;
    co_return Step::kContinue;
  }
  ChunkedDecoder decoder;
  for (;;) {
    std::size_t used = 0;
    auto status = decoder.feed(in_, body_, used);
    in_.erase(0, used);
    record_.bytes_in += used;
    if (status == ChunkedDecoder::Status::kError) {
      close_after_ = true;
      co_await reply_local(400, "bad_chunked", std::string("invalid chunked body: ") +
                                                   std::string(decoder.error()));
      co_return Step::kDone;
    }
    if (body_.size() > max) {
      close_after_ = true;
      co_await reply_local(413, "body_too_large", "request body exceeds the limit");
      co_return Step::kDone;
    }
    if (status == ChunkedDecoder::Status::kDone) break;
    arm_body(body_started, chunked_received);
    asio::error_code ec;
    std::size_t n = co_await client_read(kReadChunk, ec);
    disarm();
    if (n == 0) {
      co_await body_incomplete();
      co_return Step::kDone;
    }
    chunked_received += n;
  }
  co_return Step::kContinue;
}

void Session::arm_body(std::chrono::steady_clock::time_point started, std::uint64_t received) {
  auto when = std::chrono::steady_clock::now() + config_.limits.idle_timeout;
  body_rate_due_ = false;
  if (const std::uint64_t rate = config_.limits.min_body_rate; rate != 0) {
    // The moment `received` bytes stop being enough: received / elapsed < rate.
    const auto enough_until = started + std::max<std::chrono::milliseconds>(
                                            config_.limits.body_rate_grace,
                                            std::chrono::milliseconds(received * 1000 / rate));
    if (enough_until < when) {
      when = enough_until;
      body_rate_due_ = true;
    }
  }
  timed_out_ = false;
  deadline_.arm_at(when);
}

// The body did not arrive: the client closed, went idle (idle_timeout) or is too slow
// (min_body_rate, slow POST). A timeout is answered 408 and the connection closes.
asio::awaitable<void> Session::body_incomplete() {
  record_.reason = "request body incomplete";
  if (!timed_out_) {
    record_.termination = "client";
    record_.code = "client_closed";
    co_return;
  }
  close_after_ = true;
  if (body_rate_due_) {
    server_.count_slow_body(worker_.index);
    co_await reply_local(408, "body_too_slow", "request body slower than min_body_rate",
                         "timeout");
  } else {
    co_await reply_local(408, "body_timeout", "request body not received in time", "timeout");
  }
}

// Phase 5: the upstream request. Hop-by-hop fields are removed (and the ones Connection names);
// X-Forwarded-For/-Proto, Forwarded and X-Request-Id are set by the edge, replacing whatever the
// client sent: the edge is the first hop, so a client's values are claims, not facts.
asio::awaitable<Session::Step> Session::forward(const http::RequestHeadParser& parser) {
  record_.phase = "upstream";
  const Pool& pool = config_.pools[route_->pool];
  request_.clear();
  request_.append(parser.method()).append(" ").append(forward_target_).append(" HTTP/1.1\r\nHost: ");
  request_.append(host_header_).append("\r\n");
  for (std::size_t i = 0; i < parser.header_count(); ++i) {
    const http::HeaderField f = parser.header(i);
    if (is_hop_by_hop(f.name) || named_by_connection(parser, f.name)) continue;
    bool replaced = false;
    for (std::string_view n : {"host", "content-length", "expect", "x-forwarded-for",
                               "x-forwarded-proto", "x-forwarded-host", "forwarded",
                               "x-request-id"}) {
      replaced = replaced || http::iequals_ascii(f.name, n);
    }
    if (replaced) continue;
    request_.append(f.name).append(": ").append(f.value).append("\r\n");
  }
  append_forwarding_headers(request_, who_, host_header_, record_.request_id);
  if (websocket_) request_ += "Connection: Upgrade\r\nUpgrade: websocket\r\n";
  if (http::classify_body_framing(parser).kind != http::BodyFraming::Kind::kNone) {
    fmt::format_to(std::back_inserter(request_), "Content-Length: {}\r\n", body_.size());
  }
  request_ += "\r\n";
  request_ += body_;

  if (!exchange_) {
    exchange_ = std::make_unique<UpstreamExchange>(server_, worker_, config_,
                                                   lowest().get_executor());
  }
  auto failed =
      co_await exchange_->send(pool, record_.method, request_, head_request_, record_, websocket_);
  if (failed) {
    if (failed->retry_after != 0) {
      reply_headers_ = fmt::format("Retry-After: {}\r\n", failed->retry_after);
    }
    co_await reply_local(failed->status, failed->code, std::move(failed->reason),
                         failed->termination);
    co_return Step::kDone;
  }
  // The client's response head, re-framed for HTTP/1.x.
  const UpstreamResponse& response = exchange_->response();
  out_.clear();
  auto out = std::back_inserter(out_);
  fmt::format_to(out, "HTTP/1.1 {} {}\r\n", response.status, response.reason);
  out_ += response.fields;
  if (response.status == 101) {  // only when asked (websocket_): UpstreamExchange checks
    out_ += "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    co_return Step::kContinue;
  }
  out_.append("Strict-Transport-Security: ").append(snapshot_->hsts).append("\r\n");
  if (!response.has_request_id) out_.append("X-Request-Id: ").append(record_.request_id).append("\r\n");
  using Body = UpstreamResponse::Body;
  switch (response.body) {
    case Body::kContentLength:
      fmt::format_to(out, "Content-Length: {}\r\n", response.content_length);
      break;
    case Body::kChunked:
      if (client_http10_) {
        close_after_ = true;  // HTTP/1.0 has no chunked: the close ends the body
      } else {
        out_ += "Transfer-Encoding: chunked\r\n";
      }
      break;
    case Body::kUntilClose:
      close_after_ = true;
      break;
    case Body::kNone:
      break;
  }
  if (draining_) close_after_ = true;
  out_ += close_after_ ? "Connection: close\r\n" : (client_http10_ ? "Connection: keep-alive\r\n" : "");
  out_ += "\r\n";
  co_return Step::kContinue;
}

// Phase 6: the response body, re-framed for the client as it arrives (never buffered whole).
// The head goes out with the body bytes already received.
asio::awaitable<Session::Step> Session::relay_response() {
  record_.phase = "response";
  const bool rechunk =
      exchange_->response().body == UpstreamResponse::Body::kChunked && !client_http10_;
  bool first = true;
  for (;;) {
    std::string& piece = data_;  // swapped with the exchange's read buffer, not copied
    piece.clear();
    bool done = false;
    bool ok = co_await exchange_->read_body(piece, done, !first, record_);
    if (!ok) co_return Step::kDone;
    // The first piece goes out with the head (one write for a small response); later ones as
    // they are, or in a chunk's framing.
    std::string& bytes = first || rechunk ? out_ : piece;
    if (!first && rechunk) out_.clear();
    if (rechunk) {
      append_chunk(bytes, piece);
      if (done) bytes += kLastChunk;
    } else if (first) {
      bytes += piece;
    }
    if (first || !bytes.empty()) {
      bool written = co_await client_write(bytes);
      if (!written) {
        exchange_->release(false);
        co_return Step::kDone;
      }
    }
    first = false;
    if (done) break;
  }
  exchange_->release(!draining_);
  record_.termination = "complete";
  record_.code = "ok";
  co_return close_after_ ? Step::kDone : Step::kContinue;
}

// Phase 6b, after a 101 to a WebSocket handshake: the connection is a byte tunnel between the
// client (TLS) and the upstream (TCP) until either side closes, or neither sends anything for
// idle_timeout (one deadline for both directions, pushed back by any progress). Two pumps: this
// coroutine moves client bytes up, a second one moves upstream bytes down.
asio::awaitable<void> Session::tunnel() {
  record_.phase = "tunnel";
  record_.termination = "complete";
  record_.code = "upgraded";
  exchange_->take_buffered(out_);  // upstream bytes that came with the 101
  bool written = co_await client_write(out_);
  if (!written) co_return;
  tunnelling_ = true;
  auto& upstream = exchange_->socket();
  asio::error_code ec;
  if (!in_.empty()) {  // client bytes read together with the request head
    record_.bytes_in += in_.size();
    co_await asio::async_write(upstream, asio::buffer(in_),
                               asio::redirect_error(use_awaitable, ec));
    in_.clear();
  }
  asio::steady_timer down_done(upstream.get_executor());
  bool down_running = true;
  arm(config_.limits.idle_timeout);
  asio::co_spawn(upstream.get_executor(), tunnel_upstream_to_client(down_done, down_running),
                 asio::detached);
  std::string buffer(kReadChunk, '\0');
  while (!ec) {
    std::size_t n = co_await stream_->read_some(asio::buffer(buffer), ec);
    if (ec || n == 0) break;
    deadline_.arm(config_.limits.idle_timeout);
    record_.bytes_in += n;
    co_await asio::async_write(upstream, asio::buffer(buffer.data(), n),
                               asio::redirect_error(use_awaitable, ec));
    deadline_.arm(config_.limits.idle_timeout);
  }
  // One side is done: end the other direction too.
  const bool timed_out = timed_out_;
  exchange_->cancel();
  asio::error_code ignored;
  lowest().cancel(ignored);
  while (down_running) {
    down_done.expires_at(std::chrono::steady_clock::time_point::max());
    co_await down_done.async_wait(asio::redirect_error(use_awaitable, ignored));
  }
  disarm();
  tunnelling_ = false;
  write_failed_ = true;  // the TLS stream may be mid-record: no close_notify
  if (timed_out || timed_out_) {
    record_.termination = "timeout";
    record_.code = "idle_timeout";
    record_.reason = "tunnel idle";
  }
}

asio::awaitable<void> Session::tunnel_upstream_to_client(asio::steady_timer& done, bool& running) {
  auto self = shared_from_this();
  try {
    auto& upstream = exchange_->socket();
    std::string buffer(kReadChunk, '\0');
    for (;;) {
      asio::error_code ec;
      std::size_t n = co_await upstream.async_read_some(asio::buffer(buffer),
                                                        asio::redirect_error(use_awaitable, ec));
      if (ec || n == 0) break;
      deadline_.arm(config_.limits.idle_timeout);
      co_await stream_->write_all(std::string_view(buffer.data(), n), ec);
      if (ec) break;
      record_.bytes_out += n;
      deadline_.arm(config_.limits.idle_timeout);
    }
  } catch (const std::exception& e) {
    server_.on_session_exception(worker_.index, e.what());
  }
  // The upstream closed (or the client went away): end the client side too.
  asio::error_code ignored;
  lowest().cancel(ignored);
  lowest().shutdown(asio::socket_base::shutdown_both, ignored);
  running = false;
  done.cancel();
}

// HTTP listener: every request is answered 308 to the same URL on HTTPS (RFC 9110 15.4.9 keeps
// the method and body, unlike 301). HSTS is not sent over plain HTTP (RFC 6797 7.2).
asio::awaitable<Session::Next> Session::redirect(const http::RequestHeadParser& parser) {
  record_.phase = "redirect";
  close_after_ = true;  // the body (if any) is not read: nothing after it is trusted
  auto host_value = parser.find_header("host");
  auto host = host_value ? cp::parse_destination(*host_value, 80)
                         : core::Result<cp::Destination>(core::Error::input("no_host", ""));
  std::string_view target = parser.target();
  if (parser.target_form() == http::TargetForm::kAbsolute) {
    auto rest = target.substr(target.find("://") + 3);
    auto slash = rest.find_first_of("/?");
    target = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
  }
  if (!host || (parser.target_form() != http::TargetForm::kOrigin &&
                parser.target_form() != http::TargetForm::kAbsolute)) {
    co_await reply_local(400, "bad_request", "a redirect needs a Host and an origin-form target");
    co_return Next::kClose;
  }
  record_.host = host->host;
  record_.path = target.substr(0, std::min(target.find('?'), std::size_t{2048}));
  if (record_.path.rfind("/.well-known/acme-challenge/", 0) == 0) {
    // ACME HTTP-01 answers come with certificate automation; until then, not found.
    co_await reply_local(404, "acme_not_configured", "ACME challenges are not served yet");
    co_return Next::kClose;
  }
  std::string location = "https://" + bracket(*host);
  if (snapshot_->https_port != 443) location += fmt::format(":{}", snapshot_->https_port);
  location += std::string(target);
  record_.status = 308;
  record_.code = "redirect";
  record_.termination = "complete";
  std::string response = fmt::format(
      "HTTP/1.1 308 Permanent Redirect\r\nLocation: {}\r\nContent-Length: 0\r\n"
      "Connection: close\r\n\r\n",
      location);
  co_await client_write(response);
  co_return Next::kClose;
}

asio::awaitable<void> Session::reply_local(int status, const char* code, std::string reason,
                                           const char* termination) {
  record_open_ = true;
  if (record_.request_id.empty()) assign_request_id();
  record_.status = status;
  record_.code = code;
  record_.reason = std::move(reason);
  record_.termination = termination;
  // 404 and 429 keep the connection (the caller closes when a body was left unread).
  if ((status != 404 && status != 429) || close_after_) close_after_ = true;
  if (draining_) close_after_ = true;
  std::string safe = record_.reason;
  std::replace_if(safe.begin(), safe.end(), [](char c) { return c < 0x20 || c == 0x7f; }, '?');
  std::string body = fmt::format("moat: {}\n", safe);
  std::string response = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n"
      "X-Request-Id: {}\r\n{}{}{}\r\n{}",
      status, http::reason_phrase(status), body.size(), record_.request_id, reply_headers_,
      tls_ ? fmt::format("Strict-Transport-Security: {}\r\n", snapshot_->hsts) : std::string(),
      close_after_ ? "Connection: close\r\n" : "", head_request_ ? std::string() : body);
  reply_headers_.clear();
  co_await client_write(response);
}

void Session::release_buffers() {
  // The read buffer always (the next request allocates it again when it arrives); the others
  // when a large request or response grew them.
  worker_.buffers.give(in_);
  if (exchange_) exchange_->release_buffers();
  for (std::string* buffer : {&body_, &out_, &data_, &request_}) {
    if (buffer->capacity() > kIdleReadChunk) worker_.buffers.give(*buffer);
  }
}

asio::awaitable<std::size_t> Session::client_read(std::size_t limit, asio::error_code& ec) {
  const std::size_t old = in_.size();
  // A connection waiting for its next request holds a small buffer, not a full chunk: idle
  // keep-alive connections are the ones there are many of.
  const std::size_t chunk = old == 0 ? kIdleReadChunk : kReadChunk;
  const std::size_t want = std::max<std::size_t>(1, std::min(limit, chunk));
  if (want > kIdleReadChunk) worker_.buffers.lend(in_, old + want);
  in_.resize(old + want);
  std::size_t n = 0;
  if (tls_) {
    n = co_await stream_->read_some(asio::buffer(in_.data() + old, want), ec);
  } else {
    n = co_await plain_.async_read_some(asio::buffer(in_.data() + old, want),
                                        asio::redirect_error(use_awaitable, ec));
  }
  in_.resize(old + n);
  co_return ec ? std::size_t{0} : n;
}

// send_timeout bounds each write that makes no progress (nginx's send_timeout), not the whole
// response: a client that takes bytes slowly keeps its connection, one that takes none loses it.
asio::awaitable<bool> Session::client_write(std::string_view bytes) {
  asio::error_code ec;
  std::size_t total = 0;
  while (total < bytes.size()) {
    arm(config_.limits.send_timeout);
    std::size_t n = 0;
    if (tls_) {
      n = co_await stream_->write_some(bytes.substr(total), ec);
    } else {
      n = co_await plain_.async_write_some(asio::buffer(bytes.substr(total)),
                                           asio::redirect_error(use_awaitable, ec));
    }
    disarm();
    total += n;
    if (ec) break;
  }
  record_.bytes_out += total;
  if (ec) {
    write_failed_ = true;
    close_after_ = true;
    if (timed_out_) {
      server_.count_send_timeout(worker_.index);
      record_.termination = "timeout";
      record_.code = "send_timeout";
      record_.reason = "the client did not take the response in time";
      co_return false;
    }
    record_.termination = "client";
    if (std::string_view(record_.code).empty() || std::string_view(record_.code) == "ok") {
      record_.code = "client_closed";
    }
    co_return false;
  }
  co_return true;
}

// Our close_notify, so a client can tell a complete close-delimited response from a cut one;
// the peer's reply is waited for briefly, never for long.
asio::awaitable<void> Session::tls_shutdown() {
  arm(std::chrono::milliseconds(1000));
  asio::error_code ec;
  co_await stream_->shutdown(ec);
  disarm();
}

void Session::arm(std::chrono::milliseconds timeout) {
  timed_out_ = false;
  deadline_.arm(timeout);
}

void Session::disarm() { deadline_.disarm(); }

void Session::on_deadline(void* self) {
  auto* session = static_cast<Session*>(self);
  session->timed_out_ = true;
  asio::error_code ignored;
  session->lowest().cancel(ignored);
  if (session->tunnelling_ && session->exchange_) session->exchange_->cancel();
}

void Session::abort(bool in_flight_too) {
  draining_ = true;
  if (h2_) {
    h2_->abort(in_flight_too);
    return;
  }
  if (!idle_ && !in_flight_too) return;  // finishes its response, then closes
  asio::error_code ignored;
  lowest().cancel(ignored);
  if (exchange_) exchange_->cancel();
  lowest().shutdown(asio::socket_base::shutdown_both, ignored);
}

void Session::assign_request_id() {
  record_.request_id.clear();
  fmt::format_to(std::back_inserter(record_.request_id), "{:016x}{:016x}", worker_.random(),
                 worker_.random());
}

void Session::write_access_record() {
  edge::write_access_record(server_, worker_, info(), record_);
  record_open_ = false;
}

}  // namespace moat::edge

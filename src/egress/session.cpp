// One egress connection, accept to close. Read run() first: it lists the phases in order.
//
// CONNECT listener: read the request head (bounded, deadline) -> identify the client's group ->
// decide with the policy -> resolve and refuse private destinations -> connect upstream ->
// answer 200 -> read the ClientHello (checks: TLS, SNI = CONNECT host, version floor) ->
// forward the hello -> splice bytes both ways -> one audit record.
// Transparent listener: the same, but the destination comes from the ClientHello's SNI.
#include "egress/session.hpp"

#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include <asio/connect.hpp>
#include <asio/ssl.hpp>
#include <asio/steady_timer.hpp>
#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "core/base/encoding.hpp"
#include "core/dns/resolver.hpp"
#include "core/http/request_head.hpp"
#include "core/http/status.hpp"
#include "core/runtime/process.hpp"
#include "core/runtime/splice_pump.hpp"
#include "core/tls/certificate.hpp"
#include "core/tls/client_hello.hpp"
#include "core/tls/server_hello.hpp"
#include "egress/server.hpp"

namespace moat::egress {

namespace cp = core::policy;
namespace net = core::net;
using asio::use_awaitable;

namespace {

using core::runtime::to_asio;

net::IpAddress to_ip(const asio::ip::address& a) { return core::runtime::from_asio(a); }

std::string tls_version_name(std::uint16_t v) {
  switch (v) {
    case 0x0300: return "SSLv3";
    case 0x0301: return "TLSv1.0";
    case 0x0302: return "TLSv1.1";
    case 0x0303: return "TLSv1.2";
    case 0x0304: return "TLSv1.3";
    default: return v == 0 ? "none" : fmt::format("0x{:04x}", v);
  }
}

// CONNECT's 200 keeps the phrase every proxy and client uses; the rest are RFC 9110's.
std::string_view status_text(int status) {
  return status == 200 ? "Connection established" : core::http::reason_phrase(status);
}

// RFC 9209 Proxy-Status error types for our refusals, by reason code.
const char* proxy_status_error(std::string_view code) {
  if (code == "private_destination") return "destination_ip_prohibited";
  if (code == "dns_error") return "dns_error";
  if (code == "upstream_unreachable") return "connection_refused";
  if (code == "upstream_timeout") return "connection_timeout";
  if (code == "bad_request") return "http_request_error";
  return "http_request_denied";
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

Session::Session(Server& server, WorkerState& worker, std::shared_ptr<const EgressConfig> config,
                 asio::ip::tcp::socket client, bool transparent)
    : server_(server),
      worker_(worker),
      config_(std::move(config)),
      resolver_(worker.resolver),
      client_(std::move(client)),
      upstream_(client_.get_executor()),
      deadline_(client_.get_executor()),
      transparent_(transparent) {
  record_.start_time = std::chrono::system_clock::now();
  record_.start = std::chrono::steady_clock::now();
  record_.listener = transparent ? "transparent" : "connect";
  record_.method = transparent ? "" : "CONNECT";
  asio::error_code ec;
  auto remote = client_.remote_endpoint(ec);
  if (!ec) {
    client_address_ = to_ip(remote.address());
    if (auto v4 = client_address_.embedded_v4()) client_address_ = *v4;
    record_.client = client_address_.to_string();
    record_.client_port = remote.port();
  }
}

Session::~Session() {
  if (counted_client_) server_.release_client(client_address_);
}

asio::awaitable<void> Session::run() {
  auto self = shared_from_this();  // keeps the session alive across suspensions
  server_.on_connection_open(worker_.index);
  worker_.sessions.insert(this);
  co_await run_phases();
  worker_.sessions.erase(this);
  disarm_deadline();
  asio::error_code ec;
  client_.close(ec);
  upstream_.close(ec);
  write_audit_record();
  server_.on_connection_close(worker_.index);
}

asio::awaitable<void> Session::run_phases() {
  // Each co_await result goes into a variable first: gcc 12 miscompiles some co_await
  // expressions inside conditions.
  Step step = Step::kContinue;
  if (!server_.admit_client(client_address_)) {
    step = co_await refuse(503, "client_limit", "too many connections from this client");
    co_return;
  }
  counted_client_ = true;
  if (transparent_) {
    // The ClientHello comes first: its SNI names the destination.
    step = co_await read_client_hello();
  } else {
    step = co_await read_request();
  }
  if (step == Step::kDone) co_return;
  // Synchronous phases: kDone means "refuse with record_.status and record_.reason".
  if (identify_client() == Step::kDone || decide() == Step::kDone) {
    step = co_await refuse(record_.status, record_.code, record_.reason);
    co_return;
  }
  if (transparent_ && check_client_hello() == Step::kDone) co_return;
  step = co_await resolve();
  if (step == Step::kDone) co_return;
  step = co_await connect_upstream();
  if (step == Step::kDone) co_return;
  if (!transparent_ && !plain_http_) {
    step = co_await reply_established();
    if (step == Step::kDone) co_return;
    if (config_->require_tls) {
      step = co_await read_client_hello();
      if (step == Step::kDone) co_return;
      if (check_client_hello() == Step::kDone) co_return;
    }
  }
  step = co_await forward_hello();
  if (step == Step::kDone) co_return;
  step = co_await check_upstream();
  if (step == Step::kDone) co_return;
  co_await pump();
}

// Phase 1 (CONNECT listener): the request head, strictly parsed, under the header deadline.
asio::awaitable<Session::Step> Session::read_request() {
  record_.phase = "request";
  const Limits& limits = config_->limits;
  core::http::RequestHeadLimits head_limits;
  head_limits.max_request_line_bytes = limits.max_request_line;
  head_limits.max_header_bytes = limits.max_header_bytes;
  head_limits.require_host = false;  // CONNECT's target is the authority; Host is optional
  core::http::RequestHeadParser parser(head_limits);
  arm_deadline(limits.header_timeout, "request");
  std::size_t fed = 0;
  const std::size_t cap = limits.max_request_line + limits.max_header_bytes + 4;
  for (;;) {
    if (fed < buffer_.size()) {
      auto status = parser.feed(std::string_view(buffer_).substr(fed));
      fed = buffer_.size();
      if (status == core::http::ParseStatus::kComplete) break;
      if (status == core::http::ParseStatus::kError) {
        const auto& e = parser.error();
        co_return co_await refuse(e.status, "bad_request", std::string(e.message));
      }
    }
    bool more = co_await read_more(cap);  // not inside the condition: gcc 12 coroutine bug
    if (!more) {
      if (timed_out_) {
        record_.termination = "timeout";
        record_.code = "request_timeout";
        record_.decision = "none";
        record_.reason = "request head not received in time";
        co_return Step::kDone;
      }
      record_.termination = "client";
      record_.code = "client_closed";
      record_.decision = "none";
      record_.reason = buffer_.empty() ? "closed before a request" : "closed during the request";
      co_return Step::kDone;
    }
  }
  disarm_deadline();
  // Bytes after the head (a client that pipelines its ClientHello) stay in buffer_ and go
  // through the ClientHello checks like any other tunnel byte: nothing reaches upstream first.
  tunnel_start_ = parser.consumed();
  record_.method = std::string(parser.method());

  if (parser.method() != "CONNECT") {
    // Absolute-form requests are plain HTTP: allowed only to services that list the port
    // (usually 80); decide() refuses the rest with "destination requires HTTPS".
    if (parser.target_form() != core::http::TargetForm::kAbsolute) {
      co_return co_await refuse(405, "bad_request", "only CONNECT and absolute-form requests are proxied");
    }
    co_return co_await prepare_plain_http(parser);
  }
  auto target = core::http::parse_connect_target(parser.target());
  if (!target) {
    record_.host = std::string(parser.target().substr(0, 200));
    co_return co_await refuse(400, "bad_request", "invalid CONNECT target: " + target.error().message);
  }
  auto destination = cp::normalize_host(target->host);
  if (!destination) {
    record_.host = std::string(target->host.substr(0, 200));
    co_return co_await refuse(400, "bad_request", "invalid CONNECT host: " + destination.error().message);
  }
  destination_ = std::move(*destination);
  destination_.port = target->port;
  record_.host = destination_.host;
  record_.port = destination_.port;

  // Proxy credentials name the group when users are configured.
  if (auto auth = parser.find_header("Proxy-Authorization"); auth && !config_->users.empty()) {
    std::string_view v = *auth;
    if (v.size() > 6 && (v.substr(0, 6) == "Basic " || v.substr(0, 6) == "basic ")) {
      auto decoded = core::base64_decode(v.substr(6));
      std::string creds = decoded ? std::string(decoded->begin(), decoded->end()) : "";
      auto colon = creds.find(':');
      if (colon != std::string::npos) {
        std::string name = creds.substr(0, colon);
        std::string password = creds.substr(colon + 1);
        unsigned char digest[SHA256_DIGEST_LENGTH];
        SHA256(reinterpret_cast<const unsigned char*>(password.data()), password.size(), digest);
        std::string hex = core::to_hex(digest);
        for (const auto& u : config_->users) {
          if (u.name == name && constant_time_equal(u.password_sha256, hex)) {
            record_.user = u.name;
            group_ = config_->group_named(u.group);
          }
        }
      }
    }
    if (record_.user.empty()) co_return co_await refuse(407, "auth", "proxy credentials not accepted");
  }
  co_return Step::kContinue;
}

// Plain HTTP (absolute form): the destination comes from the URL; the head is rewritten to
// origin form with the URL's Host and "Connection: close", so one connection is one request.
asio::awaitable<Session::Step> Session::prepare_plain_http(
    const core::http::RequestHeadParser& parser) {
  plain_http_ = true;
  std::string_view target = parser.target();
  record_.host = std::string(target.substr(0, 200));
  auto lower_prefix = [&](std::string_view prefix) {
    if (target.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(target[i])) != prefix[i]) return false;
    }
    return true;
  };
  if (!lower_prefix("http://")) {
    co_return co_await refuse(400, "bad_request", "only http:// URLs are proxied without CONNECT");
  }
  std::string_view rest = target.substr(7);
  std::size_t end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, end);
  std::string_view path = end == std::string_view::npos ? std::string_view("/") : rest.substr(end);
  if (authority.find('@') != std::string_view::npos) {
    co_return co_await refuse(400, "bad_request", "credentials in the URL are not allowed");
  }
  auto destination = cp::parse_destination(authority, 80);
  if (!destination) {
    co_return co_await refuse(400, "bad_request", "invalid URL host: " + destination.error().message);
  }
  destination_ = std::move(*destination);
  record_.host = destination_.host;
  record_.port = destination_.port;

  std::string head = fmt::format("{} {}{} HTTP/1.1\r\nHost: {}\r\n", parser.method(),
                                 path.empty() || path.front() != '/' ? "/" : "", path, authority);
  for (const auto& h : parser.headers()) {
    // Hop-by-hop and proxy headers stay here (RFC 9110 7.6.1); Host is the URL's.
    static constexpr std::string_view kDropped[] = {"host", "connection", "proxy-connection",
                                                    "keep-alive", "proxy-authorization", "te",
                                                    "upgrade", "trailer"};
    bool drop = false;
    for (std::string_view d : kDropped) {
      drop = drop || (h.name.size() == d.size() &&
                      std::equal(d.begin(), d.end(), h.name.begin(), [](char a, char b) {
                        return a == std::tolower(static_cast<unsigned char>(b));
                      }));
    }
    if (!drop) head += fmt::format("{}: {}\r\n", h.name, h.value);
  }
  head += "Connection: close\r\n\r\n";
  buffer_ = head + buffer_.substr(tunnel_start_);
  tunnel_start_ = 0;
  co_return Step::kContinue;
}

// Phase 2: which group's policies apply to this client.
Session::Step Session::identify_client() {
  record_.phase = "identify";
  if (group_ == nullptr) group_ = config_->group_for(client_address_);
  if (group_ == nullptr) {
    record_.code = config_->users.empty() ? "no_group" : "auth";
    record_.reason = config_->users.empty() ? "client not in any group"
                                            : "proxy authentication required";
    record_.status = config_->users.empty() ? 403 : 407;
    return Step::kDone;
  }
  record_.group = group_->name;
  return Step::kContinue;
}

// Phase 3: the policy decision for this group. Report mode lets a denial through, logged.
Session::Step Session::decide() {
  record_.phase = "decide";
  match_ = group_->policy_set->matcher.match(destination_);
  if (match_.service != nullptr) {
    record_.policy = match_.policy->metadata.name;
    record_.service = match_.service->id;
    record_.purpose = match_.service->purpose;
  }
  if (match_.verdict == cp::Verdict::kAllowed) {
    record_.decision = "allow";
    record_.code = "allowed";
    record_.reason = "allowed";
    return Step::kContinue;
  }
  record_.code = cp::to_string(match_.verdict);
  std::string reason = record_.code;
  std::replace(reason.begin(), reason.end(), '_', ' ');
  if (plain_http_ && match_.verdict == cp::Verdict::kPortNotAllowed) {
    record_.code = "https_required";
    reason = "destination requires HTTPS: use https:// (CONNECT)";
  }
  Mode mode = match_.service != nullptr
                  ? config_->mode_for(record_.policy, record_.service)
                  : config_->mode;
  if (mode == Mode::kReport) {
    record_.decision = "allow";
    record_.report_only = true;
    record_.reason = reason;
    return Step::kContinue;
  }
  record_.reason = reason;
  record_.status = 403;
  return Step::kDone;
}

// Phase 4: addresses for the destination; private, loopback, link-local, metadata and other
// non-public addresses are refused after resolution unless `allow_private` lists them.
asio::awaitable<Session::Step> Session::resolve() {
  record_.phase = "resolve";
  std::vector<net::IpAddress> candidates;
  if (destination_.kind == cp::Destination::Kind::kAddress) {
    candidates.push_back(destination_.address);
  } else {
    auto resolved = co_await resolver_->resolve(destination_.host);
    if (!resolved) {
      const auto& e = resolved.error();
      int status = e.code == "dns_timeout" ? 504 : 502;
      co_return co_await refuse(status, "dns_error", "cannot resolve " + destination_.host + ": " + e.message,
                                "upstream");
    }
    server_.observe_dns(worker_.index, resolved->latency);
    candidates = std::move(resolved->addresses);
  }
  std::string refused;
  for (const auto& a : candidates) {
    net::IpAddress checked = a.embedded_v4().value_or(a);
    auto cls = net::classify(checked);
    bool excepted = std::any_of(config_->allow_private.begin(), config_->allow_private.end(),
                                [&](const net::IpNetwork& n) { return n.contains(checked); });
    if (cls == net::AddressClass::kPublic || excepted) {
      addresses_.push_back(a);
    } else if (refused.empty()) {
      refused = fmt::format("{} is {}", a.to_string(), net::to_string(cls));
    }
  }
  if (addresses_.empty()) {
    co_return co_await refuse(403, "private_destination", "private destination (" + refused + ")");
  }
  co_return Step::kContinue;
}

// Phase 5: a TCP connection to the first address that answers, each under the connect deadline.
asio::awaitable<Session::Step> Session::connect_upstream() {
  record_.phase = "connect";
  asio::error_code ec;
  bool any_timeout = false;
  for (const auto& a : addresses_) {
    asio::ip::tcp::endpoint endpoint(to_asio(a), destination_.port);
    record_.upstream = endpoint.address().is_v6()
                           ? fmt::format("[{}]:{}", a.to_string(), destination_.port)
                           : fmt::format("{}:{}", a.to_string(), destination_.port);
    upstream_ = asio::ip::tcp::socket(client_.get_executor());
    timed_out_ = false;
    arm_deadline(config_->limits.connect_timeout, "connect");
    co_await upstream_.async_connect(endpoint, asio::redirect_error(use_awaitable, ec));
    disarm_deadline();
    if (!ec && !timed_out_) {
      upstream_.set_option(asio::ip::tcp::no_delay(true), ec);
      co_return Step::kContinue;
    }
    any_timeout = any_timeout || timed_out_;
  }
  if (any_timeout) co_return co_await refuse(504, "upstream_timeout", "upstream connect timed out", "timeout");
  if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
      ec == asio::error::no_memory) {
    // Our own limit, not the upstream's fault.
    co_return co_await refuse(503, "proxy_resources", "proxy out of resources: " + ec.message());
  }
  co_return co_await refuse(502, "upstream_unreachable", "upstream unreachable: " + ec.message(), "upstream");
}

// Phase 6 (CONNECT listener): the tunnel is open.
asio::awaitable<Session::Step> Session::reply_established() {
  record_.phase = "reply";
  static constexpr std::string_view kEstablished = "HTTP/1.1 200 Connection established\r\n\r\n";
  asio::error_code ec;
  co_await asio::async_write(client_, asio::buffer(kEstablished),
                             asio::redirect_error(use_awaitable, ec));
  record_.status = 200;
  if (ec) {
    record_.termination = "client";
    co_return Step::kDone;
  }
  co_return Step::kContinue;
}

// Phase 7a: read the client's first bytes as a TLS ClientHello (bounded, deadline), before
// anything is sent upstream. Returns kDone only when the client went away or timed out, or
// (transparent listener) when there is no usable SNI to route by.
asio::awaitable<Session::Step> Session::read_client_hello() {
  record_.phase = "client_hello";
  core::tls::ClientHelloLimits hello_limits;
  core::tls::ClientHelloReader reader(hello_limits);
  arm_deadline(config_->limits.hello_timeout, "client_hello");
  std::size_t fed = tunnel_start_;
  const std::size_t cap = tunnel_start_ + config_->limits.max_client_hello + 16 * 1024;
  core::tls::ParseStatus status = core::tls::ParseStatus::kNeedMore;
  for (;;) {
    if (fed < buffer_.size()) {
      status = reader.feed(std::string_view(buffer_).substr(fed));
      fed = buffer_.size();
      if (status != core::tls::ParseStatus::kNeedMore) break;
    }
    bool more = co_await read_more(cap);  // not inside the condition: gcc 12 coroutine bug
    if (!more) {
      disarm_deadline();
      record_.termination = timed_out_ ? "timeout" : "client";
      record_.code = timed_out_ ? "hello_timeout" : "client_closed";
      record_.reason = timed_out_ ? "no ClientHello in time" : "closed before a ClientHello";
      server_.count_hello_failure(worker_.index, record_.code);
      co_return Step::kDone;
    }
  }
  disarm_deadline();
  if (status == core::tls::ParseStatus::kError) {
    hello_.valid = false;
    hello_.not_tls = reader.error().code == "not_tls";
    hello_.error = std::string(reader.error().message);
  } else {
    const auto& hello = reader.hello();
    hello_.valid = true;
    record_.offered_tls = hello.max_offered_version();
    if (hello.server_name) {
      record_.has_sni = true;
      record_.sni = std::string(hello.server_name->substr(0, 255));
    }
  }
  if (!transparent_) co_return Step::kContinue;

  // Transparent: the SNI is the destination; without one there is nothing to decide on, in
  // either mode.
  const char* code = nullptr;
  std::string reason;
  if (!hello_.valid) {
    code = hello_.not_tls ? "not_tls" : "bad_client_hello";
    reason = hello_.not_tls ? "connection does not carry TLS" : "invalid ClientHello: " + hello_.error;
  } else if (!record_.has_sni) {
    code = "no_sni";
    reason = "transparent connection without SNI";
  } else {
    auto d = cp::normalize_host(record_.sni);
    if (!d || d->kind != cp::Destination::Kind::kName) {
      code = "bad_sni";
      reason = "SNI is not a host name";
    } else {
      destination_ = std::move(*d);
      destination_.port = server_.original_port(client_, config_->transparent_port);
      record_.host = destination_.host;
      record_.port = destination_.port;
    }
  }
  if (code != nullptr) {
    server_.count_hello_failure(worker_.index, code);
    record_.code = code;
    record_.reason = std::move(reason);
    record_.decision = "deny";
    record_.termination = "proxy";
    co_return Step::kDone;
  }
  co_return Step::kContinue;
}

// Phase 7b: the hello must be TLS, name the host that was asked for, and offer at least the
// floor. Runs after decide(), so the matched service's mode (enforce or report) applies.
Session::Step Session::check_client_hello() {
  record_.phase = "client_hello";
  if (!hello_.valid) {
    bool ok = fail_check(hello_.not_tls ? "not_tls" : "bad_client_hello",
                         hello_.not_tls ? "tunnel does not carry TLS"
                                        : "invalid ClientHello: " + hello_.error);
    return ok ? Step::kContinue : Step::kDone;
  }
  if (!transparent_ && config_->sni != SniCheck::kOff) {
    if (!record_.has_sni) {
      if (!fail_check("no_sni", "ClientHello has no SNI")) return Step::kDone;
    } else if (config_->sni == SniCheck::kMatch) {
      auto sni = cp::normalize_host(record_.sni);
      if (!sni || sni->host != destination_.host) {
        if (!fail_check("sni_mismatch",
                        fmt::format("SNI '{}' differs from the CONNECT host", record_.sni))) {
          return Step::kDone;
        }
      }
    }
  }
  if (record_.offered_tls < config_->min_tls_version) {
    if (!fail_check("tls_version", fmt::format("client offers at most {}, the floor is {}",
                                               tls_version_name(record_.offered_tls),
                                               tls_version_name(config_->min_tls_version)))) {
      return Step::kDone;
    }
  }
  return Step::kContinue;
}

// Phase 8: what the client sent so far (the hello, and anything behind it) goes upstream.
asio::awaitable<Session::Step> Session::forward_hello() {
  record_.phase = "forward";
  if (tunnel_start_ < buffer_.size()) {
    asio::error_code ec;
    std::size_t n = co_await asio::async_write(
        upstream_, asio::buffer(buffer_.data() + tunnel_start_, buffer_.size() - tunnel_start_),
        asio::redirect_error(use_awaitable, ec));
    record_.bytes_up += n;
    if (ec) {
      record_.termination = "upstream";
      record_.code = "upstream_closed";
      record_.reason = "upstream closed: " + ec.message();
      co_return Step::kDone;
    }
  }
  std::string().swap(buffer_);  // a long-lived tunnel keeps no user-space buffer
  co_return Step::kContinue;
}

// Phase 8b (checks.upstream): read the server's first flight before the client sees it. The
// negotiated version must meet the floor; for services with pins, a certificate of the chain
// must match one: read from the Certificate message for TLS <= 1.2, and for TLS 1.3 (where it is
// encrypted) from a verification handshake of moat's own to the same address, cached.
asio::awaitable<Session::Step> Session::check_upstream() {
  if (config_->upstream == UpstreamCheck::kOff || plain_http_ || !hello_.valid) {
    co_return Step::kContinue;
  }
  record_.phase = "server_hello";
  core::tls::ServerFlightReader reader;
  std::string server_bytes;
  arm_deadline(config_->limits.hello_timeout, "server_hello");
  core::tls::ParseStatus status = core::tls::ParseStatus::kNeedMore;
  asio::error_code ec;
  while (status == core::tls::ParseStatus::kNeedMore && server_bytes.size() < 256 * 1024) {
    std::size_t old = server_bytes.size();
    server_bytes.resize(old + 16 * 1024);
    std::size_t n = co_await upstream_.async_read_some(
        asio::buffer(server_bytes.data() + old, 16 * 1024), asio::redirect_error(use_awaitable, ec));
    server_bytes.resize(old + n);
    if (ec || n == 0) break;
    status = reader.feed(std::string_view(server_bytes).substr(old));
  }
  disarm_deadline();
  auto forward = [&]() -> asio::awaitable<Step> {
    asio::error_code wec;
    std::size_t n = co_await asio::async_write(client_, asio::buffer(server_bytes),
                                               asio::redirect_error(use_awaitable, wec));
    record_.bytes_down += n;
    co_return wec ? Step::kDone : Step::kContinue;
  };
  if (status == core::tls::ParseStatus::kNeedMore) {
    // The server closed or timed out before its flight was complete: nothing to check.
    record_.termination = timed_out_ ? "timeout" : "upstream";
    record_.code = timed_out_ ? "upstream_timeout" : "upstream_closed";
    record_.reason = timed_out_ ? "no ServerHello in time" : "upstream closed before its ServerHello";
    co_await forward();
    co_return Step::kDone;
  }
  if (status == core::tls::ParseStatus::kError) {
    if (!fail_check("bad_server_hello",
                    "invalid ServerHello: " + std::string(reader.error().message))) {
      co_return Step::kDone;
    }
    co_return co_await forward();
  }
  const auto& flight = reader.flight();
  if (!flight.hello) co_return co_await forward();  // an alert: the client will see it
  record_.negotiated_tls = flight.hello->negotiated_version();
  if (record_.negotiated_tls < config_->min_tls_version) {
    if (!fail_check("upstream_tls_version",
                    fmt::format("upstream negotiated {}, the floor is {}",
                                tls_version_name(record_.negotiated_tls),
                                tls_version_name(config_->min_tls_version)))) {
      co_return Step::kDone;
    }
  }
  const cp::Service* service = match_.service;
  if (config_->upstream == UpstreamCheck::kPins && service != nullptr && !service->pins.empty() &&
      match_.verdict == cp::Verdict::kAllowed) {
    std::vector<std::string> pins;
    if (flight.certificate_visible()) {
      record_.pin_source = "certificate";
      for (const auto& der : flight.certificates) {
        auto certs = core::tls::parse_certificates(
            std::string_view(reinterpret_cast<const char*>(der.data()), der.size()));
        if (certs && !certs->empty()) pins.push_back(core::tls::spki_pin(certs->front().get()));
      }
    } else {
      record_.pin_source = "verification";
      auto fetched = co_await fetch_chain_pins();
      if (!fetched) {
        if (!fail_check("pin_unverified", "cannot verify the upstream's pins: " +
                                              fetched.error().message)) {
          co_return Step::kDone;
        }
        co_return co_await forward();
      }
      pins = std::move(*fetched);
    }
    auto listed = [&](const std::string& pin) {
      return std::any_of(service->pins.begin(), service->pins.end(),
                         [&](const cp::Pin& p) { return p.base64 == pin; });
    };
    auto hit = std::find_if(pins.begin(), pins.end(), listed);
    if (hit != pins.end()) {
      record_.upstream_pin = *hit;
    } else {
      record_.upstream_pin = pins.empty() ? "" : pins.front();
      std::string expected;
      for (const auto& p : service->pins) expected += (expected.empty() ? "" : ", ") + p.base64;
      if (!fail_check("pin_mismatch",
                      fmt::format("upstream certificate pin {} is not one of the service's pins "
                                  "({})",
                                  pins.empty() ? "(none)" : pins.front(), expected))) {
        co_return Step::kDone;
      }
    }
  }
  co_return co_await forward();
}

asio::awaitable<core::Result<std::vector<std::string>>> Session::fetch_chain_pins() {
  std::string key = destination_.host + "|" + record_.upstream;
  auto now = std::chrono::steady_clock::now();
  if (auto it = worker_.pin_cache.find(key); it != worker_.pin_cache.end()) {
    if (it->second.expires > now) co_return it->second.pins;
    worker_.pin_cache.erase(it);
  }
  if (!worker_.verify_tls_context) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    // Reporting, not trusting: the pins are the check.
    ctx->set_verify_mode(asio::ssl::verify_none);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    worker_.verify_tls_context = ctx;
  }
  auto& ctx = *std::static_pointer_cast<asio::ssl::context>(worker_.verify_tls_context);
  // Shared with the deadline's handler, which may already be queued when the handshake ends.
  auto stream =
      std::make_shared<asio::ssl::stream<asio::ip::tcp::socket>>(client_.get_executor(), ctx);
  SSL_set_tlsext_host_name(stream->native_handle(), destination_.host.c_str());
  asio::error_code ec;
  auto endpoint = upstream_.remote_endpoint(ec);
  if (ec) co_return core::Error::upstream("pin_verify", "no upstream address");
  asio::steady_timer timer(client_.get_executor());
  timer.expires_after(config_->limits.connect_timeout + config_->limits.hello_timeout);
  timer.async_wait([stream](const asio::error_code& e) {
    if (!e) {
      asio::error_code ignored;
      stream->next_layer().close(ignored);
    }
  });
  co_await stream->next_layer().async_connect(endpoint, asio::redirect_error(use_awaitable, ec));
  if (!ec) {
    co_await stream->async_handshake(asio::ssl::stream_base::client,
                                     asio::redirect_error(use_awaitable, ec));
  }
  timer.cancel();
  if (ec) {
    co_return core::Error::upstream("pin_verify", "verification handshake failed: " + ec.message());
  }
  std::vector<std::string> pins;
  if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(stream->native_handle())) {
    for (int i = 0; i < sk_X509_num(chain); ++i) {
      pins.push_back(core::tls::spki_pin(sk_X509_value(chain, i)));
    }
  }
  asio::error_code ignored;
  stream->next_layer().close(ignored);
  if (worker_.pin_cache.size() >= 10000) worker_.pin_cache.clear();  // bounded; rare
  worker_.pin_cache[key] = {pins, now + config_->pin_cache_ttl};
  co_return pins;
}

// Phase 9: bytes both ways with splice(2) until both sides close or the tunnel idles.
asio::awaitable<void> Session::pump() {
  record_.phase = "tunnel";
  auto r = co_await core::runtime::splice_pump(client_, upstream_, *worker_.pipes,
                                               config_->limits.idle_timeout);
  record_.bytes_up += r.bytes_up;
  record_.bytes_down += r.bytes_down;
  server_.count_bytes(worker_.index, r.bytes_up, r.bytes_down);
  if (r.idle_timeout) {
    record_.termination = "timeout";
    if (record_.reason == "allowed") record_.reason = "idle timeout";
  } else if (std::string_view(record_.termination) == "shutdown") {
    // abort() ended the tunnel.
  } else if (r.error != 0) {
    record_.termination = "error";
    record_.code = "tunnel_error";
    record_.reason = std::string("tunnel error: ") + std::strerror(r.error);
  } else {
    record_.termination = "closed";
  }
  record_.phase = "done";
}

asio::awaitable<Session::Step> Session::refuse(int status, const char* code, std::string reason,
                                               const char* termination) {
  record_.status = status;
  record_.code = code;
  record_.reason = std::move(reason);
  record_.termination = termination;
  // 502/504: the policy allowed it but the upstream failed; everything else is a refusal.
  record_.decision = (status == 502 || status == 504) ? "error" : "deny";
  record_.report_only = false;
  if (transparent_) co_return Step::kDone;  // no HTTP to answer with: just close
  // Reason phrases and header values must not carry CR/LF from attacker-chosen names.
  std::string safe = record_.reason;
  std::replace_if(safe.begin(), safe.end(), [](char c) { return c < 0x20 || c == 0x7f; }, '?');
  std::string body = fmt::format("moat: {}\n", safe);
  std::string extra;
  if (status == 407) {
    extra = fmt::format("Proxy-Authenticate: Basic realm=\"{}\"\r\n", config_->auth_realm);
  }
  std::string response = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n"
      "X-Moat-Reason: {}\r\nProxy-Status: moat; error={}; details=\"{}\"\r\n{}"
      "Connection: close\r\n\r\n{}",
      status, status_text(status), body.size(), safe, proxy_status_error(record_.code), safe, extra,
      body);
  arm_deadline(std::chrono::seconds(5), record_.phase);
  asio::error_code ec;
  co_await asio::async_write(client_, asio::buffer(response), asio::redirect_error(use_awaitable, ec));
  disarm_deadline();
  co_return Step::kDone;
}

bool Session::fail_check(const char* code, std::string reason) {
  if (std::string_view(record_.phase) == "client_hello") server_.count_hello_failure(worker_.index, code);
  record_.code = code;
  Mode mode = match_.service != nullptr ? config_->mode_for(record_.policy, record_.service)
                                        : config_->mode;
  if (mode == Mode::kReport) {
    record_.report_only = true;
    record_.reason = std::move(reason);
    return true;
  }
  record_.decision = "deny";
  record_.reason = std::move(reason);
  record_.termination = "proxy";
  return false;
}

asio::awaitable<bool> Session::read_more(std::size_t limit) {
  if (buffer_.size() >= limit) co_return false;
  std::size_t old = buffer_.size();
  std::size_t want = std::min<std::size_t>(limit - old, 16 * 1024);
  buffer_.resize(old + want);
  asio::error_code ec;
  std::size_t n = co_await client_.async_read_some(asio::buffer(buffer_.data() + old, want),
                                                   asio::redirect_error(use_awaitable, ec));
  buffer_.resize(old + n);
  co_return !ec && n > 0;
}

void Session::arm_deadline(std::chrono::milliseconds timeout, const char* phase) {
  timed_out_ = false;
  deadline_.expires_after(timeout);
  deadline_.async_wait([weak = weak_from_this(), phase](const asio::error_code& ec) {
    if (ec) return;
    auto self = weak.lock();
    if (!self) return;
    self->timed_out_ = true;
    self->record_.phase = phase;
    asio::error_code ignored;
    self->client_.cancel(ignored);
    self->upstream_.cancel(ignored);
  });
}

void Session::disarm_deadline() { deadline_.cancel(); }

void Session::abort(bool tunnels_too) {
  bool tunnel = std::string_view(record_.phase) == "tunnel";
  if (tunnel && !tunnels_too) return;
  if (!tunnel) {
    record_.termination = "shutdown";
    if (record_.reason.empty()) record_.reason = "gateway shutting down";
  } else {
    record_.termination = "shutdown";
  }
  asio::error_code ignored;
  client_.cancel(ignored);
  upstream_.cancel(ignored);
  client_.shutdown(asio::socket_base::shutdown_both, ignored);
  upstream_.shutdown(asio::socket_base::shutdown_both, ignored);
}

void Session::write_audit_record() {
  const SessionRecord& r = record_;
  auto& j = worker_.audit_line;
  j.clear();
  j.add_timestamp("time", r.start_time);
  j.add("client", r.client);
  j.add("client_port", r.client_port);
  j.add("listener", r.listener);
  j.add("group", r.group);
  if (!r.user.empty()) j.add("user", r.user); else j.add_null("user");
  j.add("method", r.method);
  j.add("host", r.host);
  j.add("port", r.port);
  if (r.has_sni) j.add("sni", r.sni); else j.add_null("sni");
  j.add("decision", r.decision);
  j.add("report_only", r.report_only);
  j.add("reason", r.reason);
  j.add("reason_code", r.code);
  j.add("policy", r.policy);
  j.add("service", r.service);
  j.add("purpose", r.purpose);
  j.add("upstream", r.upstream);
  if (r.offered_tls != 0) j.add("tls_offered", tls_version_name(r.offered_tls));
  else j.add_null("tls_offered");
  if (r.negotiated_tls != 0) j.add("tls_negotiated", tls_version_name(r.negotiated_tls));
  else j.add_null("tls_negotiated");
  if (!r.upstream_pin.empty()) {
    j.add("upstream_pin", r.upstream_pin);
    j.add("pin_source", r.pin_source);
  }
  j.add("status", r.status);
  j.add("bytes_up", r.bytes_up);
  j.add("bytes_down", r.bytes_down);
  j.add("duration_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - r.start).count());
  j.add("phase", r.phase);
  j.add("termination", r.termination);
  server_.write_audit(j.view());
  server_.count_decision(worker_.index, r);
}

}  // namespace moat::egress

// The scan engine (docs/scan.md, "How it probes"): one io_context on the calling thread runs one
// coroutine (scan_phases) that spawns the probes; every probe holds a slot of the adaptive
// per-target limiter (at most --connections, halved on resets), every connection has a deadline
// and the whole scan has one.
//   A. one probe per version with every suite of that version, an SSL 2.0 CLIENT-HELLO; the
//      chain + HSTS over OpenSSL alongside everything else
//   B. per supported version: suite enumeration (offer, remove the accepted one, repeat; in
//      parallel chunks) then the server's order; groups one at a time, compression,
//      TLS_FALLBACK_SCSV, a reference client, Heartbleed, CCS injection, all in parallel
#include <algorithm>
#include <array>
#include <deque>
#include <map>
#include <memory>
#include <set>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/redirect_error.hpp>
#include <asio/ssl.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "core/tls/client_hello_builder.hpp"
#include "core/tls/server_hello.hpp"
#include "core/tls/sslv2.hpp"
#include "scan/scan.hpp"

namespace moat::scan {
namespace {

using asio::use_awaitable;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using core::Error;
using core::Result;
namespace tls = core::tls;

constexpr std::uint8_t kAlertInappropriateFallback = 86;  // RFC 7507
constexpr std::uint8_t kAlertUnexpectedMessage = 10;
constexpr std::uint8_t kAlertHandshakeFailure = 40;
constexpr std::uint8_t kContentTypeHeartbeat = 24;  // RFC 6520 3
// How long to wait for an answer that a patched server never sends (Heartbleed, CCS injection).
constexpr Clock::duration kQuietWait = std::chrono::seconds(1);
constexpr std::size_t kChunkSize = 24;  // suites per enumeration chain (chains run in parallel)
constexpr std::size_t kMaxHttpHead = 32 * 1024;

const std::vector<std::uint16_t> kVersions = {tls::kSsl30, tls::kTls10, tls::kTls11, tls::kTls12,
                                              tls::kTls13};
const std::vector<std::uint16_t> kEcGroups = {tls::kGroupX25519, tls::kGroupSecp256r1,
                                              tls::kGroupSecp384r1, tls::kGroupSecp521r1,
                                              tls::kGroupX448};
const std::vector<std::uint16_t> kTls13Groups = {
    tls::kGroupX25519,     tls::kGroupSecp256r1,  tls::kGroupSecp384r1,
    tls::kGroupSecp521r1,  tls::kGroupX448,       tls::kGroupFfdhe2048,
    tls::kGroupFfdhe3072,  tls::kGroupFfdhe4096,  tls::kGroupFfdhe6144,
    tls::kGroupFfdhe8192};

// What one probe learned.
struct Probe {
  enum class Outcome { kHello, kHelloRetry, kAlert, kClosed, kReset, kTimeout, kConnectFailed,
                       kNotTls, kError };
  Outcome outcome = Outcome::kError;
  std::uint16_t version = 0;
  std::uint16_t suite = 0;
  std::uint8_t compression = 0;
  bool renegotiation_info = false;
  bool heartbeat = false;  // the ServerHello echoed the heartbeat extension
  bool complete = false;   // the flight was read as far as asked
  std::optional<std::uint16_t> curve;
  std::optional<std::uint16_t> key_share_group;
  std::optional<std::size_t> dh_bits;
  std::optional<tls::ServerAlert> alert;
  std::string detail;

  bool answered() const { return outcome == Outcome::kHello || outcome == Outcome::kHelloRetry; }
};

std::string describe(const Probe& p) {
  switch (p.outcome) {
    case Probe::Outcome::kHello:
    case Probe::Outcome::kHelloRetry:
      return fmt::format("server chose {}", version_name(p.version));
    case Probe::Outcome::kAlert:
      return "alert " + (p.alert ? p.alert->describe() : std::string("?"));
    default:
      return p.detail;
  }
}

// Connections per target, adaptive (AIMD, like TCP's congestion window): at most `limit_` open
// at once; a reset or a failed connect halves it (a careful server or a firewall is pushing back),
// each `limit_` clean connections in a row add one back, never above --connections. For
// coroutines on one thread.
class Limiter {
 public:
  explicit Limiter(std::size_t max) : max_(max == 0 ? 1 : max), limit_(max_) {}

  // `urgent`: a step of a chain (suite enumeration, the server's order) that later steps wait
  // for; it goes ahead of the one-shot probes queued, which keeps the scan's critical path short.
  asio::awaitable<void> acquire(bool urgent = false) {
    if (in_use_ < limit_ && waiters_.empty()) {
      take();
      co_return;
    }
    auto executor = co_await asio::this_coro::executor;
    auto timer = std::make_shared<asio::steady_timer>(executor, Clock::time_point::max());
    if (urgent) {
      waiters_.push_front(timer);
    } else {
      waiters_.push_back(timer);
    }
    asio::error_code ec;
    co_await timer->async_wait(asio::redirect_error(use_awaitable, ec));
    // Woken by release(), which took the slot for us.
  }

  // `pushed_back`: the connection was reset or could not be made.
  void release(bool pushed_back) {
    --in_use_;
    if (pushed_back) {
      if (limit_ > 1) {
        limit_ = std::max<std::size_t>(1, limit_ / 2);
        ++backoffs_;
      }
      clean_ = 0;
    } else if (++clean_ >= limit_ && limit_ < max_) {
      ++limit_;
      clean_ = 0;
    }
    while (!waiters_.empty() && in_use_ < limit_) {
      auto next = waiters_.front();
      waiters_.pop_front();
      take();
      next->cancel();
    }
  }

  std::size_t limit() const { return limit_; }
  std::size_t peak() const { return peak_; }
  std::size_t backoffs() const { return backoffs_; }

 private:
  void take() {
    ++in_use_;
    peak_ = std::max(peak_, in_use_);
  }

  std::size_t max_;
  std::size_t limit_;
  std::size_t in_use_ = 0;
  std::size_t clean_ = 0;
  std::size_t peak_ = 0;
  std::size_t backoffs_ = 0;
  std::deque<std::shared_ptr<asio::steady_timer>> waiters_;
};

// Tasks spawned on the scan's io_context that a coroutine can wait for all at once.
class TaskGroup {
 public:
  explicit TaskGroup(asio::io_context& io) : io_(io), done_(io, Clock::time_point::max()) {}
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  void spawn(asio::awaitable<void> task) {
    ++pending_;
    asio::co_spawn(io_, std::move(task), [this](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
      if (--pending_ == 0) done_.cancel();
    });
  }
  asio::awaitable<void> wait() {
    if (pending_ == 0) co_return;
    asio::error_code ec;
    co_await done_.async_wait(asio::redirect_error(use_awaitable, ec));
  }

 private:
  asio::io_context& io_;
  asio::steady_timer done_;
  std::size_t pending_ = 0;
};

struct Target {
  std::string host;
  std::uint16_t port = 443;
  bool host_is_ip = false;
};

std::optional<Target> parse_target(const std::string& text) {
  Target t;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos) return std::nullopt;
    t.host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') return std::nullopt;
      port = text.substr(close + 2);
    }
  } else {
    auto colon = text.find(':');
    if (colon != std::string::npos && text.find(':', colon + 1) != std::string::npos) {
      t.host = text;  // a bare IPv6 literal
    } else {
      t.host = text.substr(0, colon);
      if (colon != std::string::npos) port = text.substr(colon + 1);
    }
  }
  if (t.host.empty()) return std::nullopt;
  if (!port.empty() || (text.find(':') != std::string::npos && text.front() != '[' &&
                        t.host != text)) {
    if (port.empty() || port.size() > 5) return std::nullopt;
    unsigned value = 0;
    for (char c : port) {
      if (c < '0' || c > '9') return std::nullopt;
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value == 0 || value > 65535) return std::nullopt;
    t.port = static_cast<std::uint16_t>(value);
  }
  asio::error_code ec;
  (void)asio::ip::make_address(t.host, ec);
  t.host_is_ip = !ec;
  if (!t.host_is_ip) {
    for (char& c : t.host) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '-' || c == '_';
      if (!ok) return std::nullopt;
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return t;
}

std::vector<std::uint16_t> suites_for(std::uint16_t version) {
  std::vector<std::uint16_t> out;
  for (const auto& s : all_cipher_suites()) {
    bool fits = version == tls::kTls13 ? s.tls13
                                       : !s.tls13 && (version >= tls::kTls12 || !s.tls12_only);
    if (fits) out.push_back(s.id);
  }
  return out;
}

// A modern client's offer (TLS 1.3 first, then AEAD with forward secrecy, then the legacy tail):
// stands in for SSL Labs' reference browsers when judging what is actually negotiated.
std::vector<std::uint16_t> reference_suites() {
  return {0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8,
          0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035, 0x000a};
}

std::string iso_now() {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto day_point = floor<days>(now);
  year_month_day ymd{day_point};
  hh_mm_ss hms{floor<seconds>(now - day_point)};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     hms.hours().count(), hms.minutes().count(), hms.seconds().count());
}

// RFC 6797 6.1: Strict-Transport-Security = directive *( ";" directive ); max-age required.
void parse_hsts(const std::string& value, HttpResult& http) {
  http.hsts = value;
  std::size_t at = 0;
  while (at <= value.size()) {
    std::size_t end = value.find(';', at);
    if (end == std::string::npos) end = value.size();
    std::string d = value.substr(at, end - at);
    auto trim = [](std::string s) {
      while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.erase(0, 1);
      while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
      return s;
    };
    d = trim(d);
    std::string name = d.substr(0, d.find('='));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    name = trim(name);
    if (name == "max-age" && d.find('=') != std::string::npos) {
      std::string v = trim(d.substr(d.find('=') + 1));
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      if (!v.empty() && v.size() <= 18 &&
          std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        http.max_age = std::stoll(v);
      }
    } else if (name == "includesubdomains") {
      http.include_subdomains = true;
    } else if (name == "preload") {
      http.preload = true;
    }
    at = end + 1;
  }
}

void parse_http_head(const std::string& head, HttpResult& http) {
  std::size_t line_end = head.find("\r\n");
  std::string status_line = head.substr(0, line_end);
  if (status_line.starts_with("HTTP/") && status_line.size() >= 12) {
    http.status = std::atoi(status_line.c_str() + 9);
  }
  std::size_t at = line_end == std::string::npos ? head.size() : line_end + 2;
  while (at < head.size()) {
    std::size_t end = head.find("\r\n", at);
    if (end == std::string::npos) end = head.size();
    std::string line = head.substr(at, end - at);
    at = end + 2;
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    // RFC 6797 8.1: only the first header counts.
    if (name == "strict-transport-security" && !http.hsts) {
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      parse_hsts(value, http);
    }
  }
}

// One TCP connection of the scan: holds a limiter slot for its lifetime and a timer that closes
// the socket when its deadline passes (every network wait has one).
class Connection {
 public:
  Connection(asio::io_context& io, Limiter& limiter)
      : socket_(std::make_shared<tcp::socket>(io)), timer_(io), limiter_(limiter) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    timer_.cancel();
    asio::error_code ignored;
    socket_->close(ignored);
    limiter_.release(pushed_back_);
  }

  // (Re)arms the deadline; a pending one is replaced. When it passes, the socket is closed, or
  // with `keep_open` only its pending operations are cancelled (a quiet wait, after which the
  // probe goes on talking).
  void deadline(Clock::time_point at, bool keep_open = false) {
    *fired_ = false;
    timer_.expires_at(at);
    timer_.async_wait([socket = socket_, fired = fired_, keep_open](const asio::error_code& e) {
      if (!e) {
        *fired = true;
        asio::error_code ignored;
        if (keep_open) {
          socket->cancel(ignored);
        } else {
          socket->close(ignored);
        }
      }
    });
  }
  tcp::socket& socket() { return *socket_; }
  bool timed_out() const { return *fired_; }
  void pushed_back() { pushed_back_ = true; }

 private:
  std::shared_ptr<tcp::socket> socket_;
  std::shared_ptr<bool> fired_ = std::make_shared<bool>(false);
  asio::steady_timer timer_;
  Limiter& limiter_;
  bool pushed_back_ = false;
};

// What a connection's end says, for a probe's detail.
std::string ending(const Connection& c, const asio::error_code& ec, std::size_t received) {
  if (c.timed_out()) return received == 0 ? "no answer before the deadline" : "answer incomplete at the deadline";
  if (ec == asio::error::eof) {
    return received == 0 ? "connection closed without an answer" : "connection closed mid-handshake";
  }
  if (ec == asio::error::connection_reset) {
    return received == 0 ? "connection reset" : "connection reset mid-handshake";
  }
  return ec ? ec.message() : "no answer";
}

// Bytes a server sent after a probe's record, up to a quiet period.
struct Reply {
  std::vector<std::uint8_t> bytes;
  bool closed = false;  // EOF or reset: nothing more can come
  bool timed_out = false;
  std::optional<tls::ServerAlert> alert() const {
    if (bytes.size() >= 7 && bytes[0] == tls::kContentTypeAlert && bytes[1] == 3) {
      return tls::ServerAlert{bytes[5], bytes[6]};
    }
    return std::nullopt;
  }
};

class Scanner {
 public:
  Scanner(asio::io_context& io, tcp::endpoint endpoint, const ScanOptions& options,
          std::string sni, std::string host_header)
      : io_(io),
        endpoint_(endpoint),
        sni_(std::move(sni)),
        host_header_(std::move(host_header)),
        limiter_(options.max_connections),
        timeout_(std::chrono::milliseconds(
            static_cast<std::int64_t>(options.timeout_seconds * 1000))),
        deadline_(Clock::now() + std::chrono::milliseconds(
                                     static_cast<std::int64_t>(options.deadline_seconds * 1000))) {
    for (auto group : {tls::kGroupX25519, tls::kGroupSecp256r1}) {
      auto share = tls::make_key_share(group);
      if (share) shares_.push_back(std::move(share.value()));
    }
  }

  std::size_t connections() const { return connections_; }
  const Limiter& limiter() const { return limiter_; }
  asio::io_context& io() { return io_; }

  tls::ClientHelloSpec spec_for(std::uint16_t version, std::vector<std::uint16_t> suites) const {
    tls::ClientHelloSpec s;
    s.version = version;
    s.min_version = tls::kTls13;
    s.cipher_suites = std::move(suites);
    s.server_name = sni_;
    if (version == tls::kTls13) {
      s.supported_groups = kTls13Groups;
      s.key_shares = shares_;
    } else {
      s.supported_groups = kEcGroups;
    }
    if (version == tls::kSsl30) {
      // SSL 3.0 has no extensions (RFC 6101); the SCSV stands in for renegotiation_info.
      s.extensions = false;
      s.renegotiation_scsv = true;
    }
    return s;
  }

  // Connects `c` under the per-connection timeout. A refused or timed-out connect pushes the
  // limiter back.
  asio::awaitable<asio::error_code> open(Connection& c) {
    c.deadline(std::min(Clock::now() + timeout_, deadline_));
    ++connections_;
    asio::error_code ec;
    co_await c.socket().async_connect(endpoint_, asio::redirect_error(use_awaitable, ec));
    if (ec) c.pushed_back();
    co_return ec;
  }

  // Sends the hello on an open connection and reads the server's first flight up to `stop`.
  asio::awaitable<Probe> exchange_hello(Connection& c, const tls::ClientHelloSpec& spec,
                                        tls::ServerFlightReader::Stop stop) {
    Probe p;
    auto hello = tls::build_client_hello(spec);
    if (!hello) {
      p.detail = hello.error().message;
      co_return p;
    }
    asio::error_code ec;
    co_await asio::async_write(c.socket(), asio::buffer(hello.value()),
                               asio::redirect_error(use_awaitable, ec));
    tls::ServerFlightReader reader(stop);
    std::size_t received = 0;
    std::array<std::uint8_t, 16 * 1024> buffer{};
    auto status = tls::ParseStatus::kNeedMore;
    while (!ec) {
      std::size_t n = co_await c.socket().async_read_some(asio::buffer(buffer),
                                                          asio::redirect_error(use_awaitable, ec));
      received += n;
      if (n > 0) status = reader.feed(std::span<const std::uint8_t>(buffer.data(), n));
      if (status != tls::ParseStatus::kNeedMore) break;
    }
    p.complete = status == tls::ParseStatus::kComplete;
    const auto& flight = reader.flight();
    if (status == tls::ParseStatus::kError) {
      p.outcome = Probe::Outcome::kNotTls;
      p.detail = fmt::format("not a TLS answer ({}: {})", reader.error().code,
                             reader.error().message);
      co_return p;
    }
    if (flight.alert) {
      p.outcome = Probe::Outcome::kAlert;
      p.alert = flight.alert;
      co_return p;
    }
    if (flight.hello) {
      const auto& h = *flight.hello;
      p.outcome = h.is_hello_retry_request ? Probe::Outcome::kHelloRetry : Probe::Outcome::kHello;
      p.version = h.negotiated_version();
      p.suite = h.cipher_suite;
      p.compression = h.compression;
      p.renegotiation_info = h.renegotiation_info;
      p.heartbeat = h.has_extension(tls::kExtHeartbeat);
      p.key_share_group = h.key_share_group;
      p.curve = flight.ecdhe_curve;
      p.dh_bits = flight.dhe_prime_bits;
      if (status == tls::ParseStatus::kNeedMore) p.detail = "flight ended early";
      co_return p;
    }
    p.detail = ending(c, ec, received);
    if (c.timed_out()) {
      p.outcome = Probe::Outcome::kTimeout;
    } else if (ec == asio::error::eof) {
      p.outcome = Probe::Outcome::kClosed;
    } else if (ec == asio::error::connection_reset) {
      p.outcome = Probe::Outcome::kReset;
      if (received == 0) c.pushed_back();
    } else {
      p.outcome = Probe::Outcome::kError;
    }
    co_return p;
  }

  asio::awaitable<Probe> probe(tls::ClientHelloSpec spec, bool urgent = false) {
    const auto stop = tls::ServerFlightReader::Stop::kAfterServerHelloDone;
    if (Clock::now() >= deadline_) {
      Probe p;
      p.outcome = Probe::Outcome::kTimeout;
      p.detail = "scan deadline passed";
      co_return p;
    }
    co_await limiter_.acquire(urgent);
    Connection c(io_, limiter_);
    auto ec = co_await open(c);
    if (ec) {
      Probe p;
      p.outcome = c.timed_out() ? Probe::Outcome::kTimeout : Probe::Outcome::kConnectFailed;
      p.detail = c.timed_out() ? "connect timed out" : "connect failed: " + ec.message();
      co_return p;
    }
    Probe p = co_await exchange_hello(c, spec, stop);
    co_return p;
  }

  asio::awaitable<void> run_probe(tls::ClientHelloSpec spec, Probe* out, bool urgent = false) {
    *out = co_await probe(std::move(spec), urgent);
    note(*out);
  }

  // Reads what the server sends within the quiet wait (bounded by the scan deadline), until it
  // closes or `enough` bytes are in.
  asio::awaitable<Reply> read_quietly(Connection& c, std::size_t enough) {
    Reply reply;
    c.deadline(std::min(Clock::now() + std::min(timeout_, kQuietWait), deadline_), true);
    std::array<std::uint8_t, 4096> buffer{};
    asio::error_code ec;
    while (!ec && reply.bytes.size() < enough) {
      std::size_t n = co_await c.socket().async_read_some(asio::buffer(buffer),
                                                          asio::redirect_error(use_awaitable, ec));
      reply.bytes.insert(reply.bytes.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(n));
    }
    reply.timed_out = c.timed_out();
    reply.closed = ec && !reply.timed_out;
    c.deadline(std::min(Clock::now() + timeout_, deadline_));
    co_return reply;
  }

  // SSL 2.0: a CLIENT-HELLO with the seven CIPHER-KINDs; a SERVER-HELLO back means supported.
  asio::awaitable<void> probe_sslv2(ProtocolResult* out) {
    out->version = tls::kSsl20;
    co_await limiter_.acquire();
    Connection c(io_, limiter_);
    auto ec = co_await open(c);
    if (ec) {
      out->detail = c.timed_out() ? "connect timed out" : "connect failed: " + ec.message();
      co_return;
    }
    auto hello = tls::build_sslv2_client_hello();
    co_await asio::async_write(c.socket(), asio::buffer(hello), asio::redirect_error(use_awaitable, ec));
    tls::Sslv2ServerHelloReader reader;
    std::vector<std::uint8_t> first;  // the first bytes, to name a TLS alert
    std::array<std::uint8_t, 4096> buffer{};
    auto status = tls::ParseStatus::kNeedMore;
    std::size_t received = 0;
    while (!ec && status == tls::ParseStatus::kNeedMore) {
      std::size_t n = co_await c.socket().async_read_some(asio::buffer(buffer),
                                                          asio::redirect_error(use_awaitable, ec));
      received += n;
      for (std::size_t i = 0; i < n && first.size() < 7; ++i) first.push_back(buffer[i]);
      if (n > 0) status = reader.feed(std::span<const std::uint8_t>(buffer.data(), n));
    }
    if (status == tls::ParseStatus::kComplete) {
      out->supported = true;
      out->sslv2_ciphers = reader.hello().cipher_kinds;
      if (out->sslv2_ciphers.empty()) out->detail = "SERVER-HELLO without a common cipher";
      co_return;
    }
    if (status == tls::ParseStatus::kError) {
      auto code = reader.error().code;
      if (code == "tls_alert" && first.size() >= 7) {
        out->detail = "alert " + tls::ServerAlert{first[5], first[6]}.describe();
      } else if (code == "tls_alert" || code == "tls_record") {
        out->detail = "answered with TLS";
      } else {
        out->detail = fmt::format("not an SSL 2.0 answer ({})", code);
      }
      co_return;
    }
    out->detail = ending(c, ec, received);
  }

  // Heartbleed (CVE-2014-0160), the way testssl.sh tests it: a hello offering the heartbeat
  // extension; if the server echoes it, a heartbeat_request whose payload_length (16384) exceeds
  // the payload sent (none), before the handshake is finished (RFC 6520 4: must be discarded).
  // A heartbeat_response with more than the 16 bytes of padding a 0-byte payload allows means the
  // server copied memory it should not have. Alert, close or silence: not vulnerable.
  asio::awaitable<void> heartbleed(std::uint16_t version, ScanResult* r) {
    auto spec = spec_for(version, suites_for(version));
    spec.heartbeat = true;
    co_await limiter_.acquire();
    Connection c(io_, limiter_);
    auto ec = co_await open(c);
    if (ec) {
      r->heartbleed.detail = "connect failed";
      co_return;
    }
    Probe p = co_await exchange_hello(c, spec, tls::ServerFlightReader::Stop::kAfterServerHelloDone);
    if (p.outcome != Probe::Outcome::kHello || !p.complete) {
      r->heartbleed.detail = "no ServerHello flight: " + describe(p);
      co_return;
    }
    r->heartbeat = p.heartbeat;
    if (!p.heartbeat) {
      r->heartbleed.vulnerable = false;
      r->heartbleed.detail = "no heartbeat extension";
      co_return;
    }
    const std::array<std::uint8_t, 8> request = {
        kContentTypeHeartbeat, static_cast<std::uint8_t>(p.version >> 8),
        static_cast<std::uint8_t>(p.version), 0, 3, 1, 0x40, 0x00};
    co_await asio::async_write(c.socket(), asio::buffer(request), asio::redirect_error(use_awaitable, ec));
    Reply reply = co_await read_quietly(c, tls::kRecordHeaderBytes);
    const auto& b = reply.bytes;
    r->heartbleed.vulnerable = false;
    if (b.size() >= 5 && b[0] == kContentTypeHeartbeat) {
      std::size_t length = (std::size_t{b[3]} << 8) | b[4];
      // type(1) + payload_length(2) + 0 bytes of payload + 16 bytes of padding (RFC 6520 4).
      r->heartbleed.vulnerable = length > 3 + 16;
      r->heartbleed.detail = fmt::format("heartbeat_response of {} bytes to a request carrying none{}",
                                         length, length > 19 ? ": memory disclosed" : "");
    } else if (auto alert = reply.alert()) {
      r->heartbleed.detail = "alert " + alert->describe();
    } else if (reply.timed_out) {
      r->heartbleed.detail = "no heartbeat response (timed out)";
    } else if (reply.closed) {
      r->heartbleed.detail = "connection closed";
    } else {
      r->heartbleed.detail = "no heartbeat response";
    }
  }

  // CCS injection (CVE-2014-0224), testssl.sh's run_ccs_injection: after the server's hello
  // flight, a ChangeCipherSpec before any key exchange, then a second one. A vulnerable server
  // takes the first (keys from an empty master secret) and fails to decrypt the second:
  // decryption_failed(21) or bad_record_mac(20) or another alert. A patched one refuses the first:
  // unexpected_message(10) / handshake_failure(40), close or silence.
  asio::awaitable<void> ccs_injection(std::uint16_t version, VulnerabilityResult* out) {
    co_await limiter_.acquire();
    Connection c(io_, limiter_);
    auto ec = co_await open(c);
    if (ec) {
      out->detail = "connect failed";
      co_return;
    }
    Probe p = co_await exchange_hello(c, spec_for(version, suites_for(version)),
                                      tls::ServerFlightReader::Stop::kAfterServerHelloDone);
    if (p.outcome != Probe::Outcome::kHello || !p.complete) {
      out->detail = "no ServerHello flight: " + describe(p);
      co_return;
    }
    const std::array<std::uint8_t, 6> ccs = {tls::kContentTypeChangeCipherSpec,
                                             static_cast<std::uint8_t>(p.version >> 8),
                                             static_cast<std::uint8_t>(p.version), 0, 1, 1};
    out->vulnerable = false;
    co_await asio::async_write(c.socket(), asio::buffer(ccs), asio::redirect_error(use_awaitable, ec));
    if (ec) {
      out->detail = "connection closed before the early ChangeCipherSpec";
      co_return;
    }
    Reply first = co_await read_quietly(c, 64 * 1024);
    if (first.closed) {
      auto alert = first.alert();
      out->detail = "early ChangeCipherSpec refused (" +
                    (alert ? "alert " + alert->describe() : std::string("connection closed")) + ")";
      co_return;
    }
    co_await asio::async_write(c.socket(), asio::buffer(ccs), asio::redirect_error(use_awaitable, ec));
    if (ec) {
      out->detail = "connection closed after the early ChangeCipherSpec";
      co_return;
    }
    Reply second = co_await read_quietly(c, 7);
    if (second.bytes.empty()) {
      out->detail = second.timed_out ? "no answer to the early ChangeCipherSpec (timed out)"
                                     : "connection closed after the early ChangeCipherSpec";
    } else if (auto alert = second.alert()) {
      std::uint8_t d = alert->description;
      out->vulnerable = d != kAlertUnexpectedMessage && d != kAlertHandshakeFailure;
      out->detail = "alert " + alert->describe() + " after the second ChangeCipherSpec";
    } else {
      out->vulnerable.reset();
      out->detail = "unexpected answer to the early ChangeCipherSpec";
    }
  }

  // Offer `suites`, remove what the server picks, repeat until it refuses (how sslscan and
  // testssl.sh enumerate: O(accepted) handshakes).
  asio::awaitable<void> enumerate(std::uint16_t version, std::vector<std::uint16_t> suites,
                                  std::vector<std::uint16_t>* accepted) {
    while (!suites.empty()) {
      Probe p = co_await probe(spec_for(version, suites), true);
      note(p);
      if (!p.answered() || p.version != version) co_return;
      auto it = std::find(suites.begin(), suites.end(), p.suite);
      if (it == suites.end()) co_return;  // a suite we did not offer: stop rather than loop
      accepted->push_back(p.suite);
      suites.erase(it);
    }
  }

  // One version's suites (parallel enumeration chains), then the server's order: the accepted
  // suites offered in both orders; the same pick both times means the server chooses, and then
  // the full order is read the way testssl.sh does (offer all, remove its pick, repeat).
  asio::awaitable<void> suites_and_order(ProtocolResult* pr) {
    const std::uint16_t v = pr->version;
    auto all = suites_for(v);
    std::size_t count = (all.size() + kChunkSize - 1) / kChunkSize;
    std::vector<std::vector<std::uint16_t>> accepted(count);
    {
      TaskGroup chains(io_);
      for (std::size_t c = 0; c < count; ++c) {
        std::vector<std::uint16_t> chunk(
            all.begin() + static_cast<std::ptrdiff_t>(c * kChunkSize),
            all.begin() + static_cast<std::ptrdiff_t>(std::min(all.size(), (c + 1) * kChunkSize)));
        chains.spawn(enumerate(v, std::move(chunk), &accepted[c]));
      }
      co_await chains.wait();
    }
    for (const auto& chunk : accepted) pr->suites.insert(pr->suites.end(), chunk.begin(), chunk.end());
    if (pr->suites.size() < 2) co_return;

    Probe forward, backward;
    {
      TaskGroup both(io_);
      both.spawn(run_probe(spec_for(v, pr->suites), &forward, true));
      both.spawn(run_probe(spec_for(v, std::vector<std::uint16_t>(pr->suites.rbegin(), pr->suites.rend())),
                           &backward, true));
      co_await both.wait();
    }
    if (!forward.answered() || !backward.answered()) co_return;
    pr->server_order = forward.suite == backward.suite;
    if (!*pr->server_order) co_return;
    pr->preferred = forward.suite;
    std::vector<std::uint16_t> ordered = {forward.suite};
    std::vector<std::uint16_t> rest = pr->suites;
    rest.erase(std::remove(rest.begin(), rest.end(), forward.suite), rest.end());
    while (rest.size() > 1) {
      Probe p = co_await probe(spec_for(v, rest), true);
      note(p);
      auto it = p.answered() && p.version == v ? std::find(rest.begin(), rest.end(), p.suite) : rest.end();
      if (it == rest.end()) break;  // no pick: the rest stays in enumeration order
      ordered.push_back(*it);
      rest.erase(it);
    }
    ordered.insert(ordered.end(), rest.begin(), rest.end());
    pr->suites = std::move(ordered);
  }

  // The chain (and trust inputs) and the HTTP response head, over one OpenSSL connection.
  asio::awaitable<void> fetch_tls(CertificateResult* cert, HttpResult* http,
                                  std::vector<tls::X509Ptr>* chain) {
    co_await limiter_.acquire();
    Connection c(io_, limiter_);  // its socket is not used: the stream below has its own
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    // Reporting, not trusting: trust is checked afterwards against the chosen store. Anything
    // OpenSSL can still speak is allowed, so the chain is read from weak servers too.
    ctx.set_verify_mode(asio::ssl::verify_none);
    SSL_CTX_set_security_level(ctx.native_handle(), 0);
    SSL_CTX_set_cipher_list(ctx.native_handle(), "ALL:COMPLEMENTOFALL:@SECLEVEL=0");
    SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_VERSION);
    auto stream = std::make_shared<asio::ssl::stream<tcp::socket>>(io_, ctx);
    if (!sni_.empty()) SSL_set_tlsext_host_name(stream->native_handle(), sni_.c_str());
    asio::steady_timer timer(io_, std::min(Clock::now() + timeout_, deadline_));
    timer.async_wait([stream](const asio::error_code& e) {
      if (!e) {
        asio::error_code ignored;
        stream->next_layer().close(ignored);
      }
    });
    ++connections_;
    asio::error_code ec;
    co_await stream->next_layer().async_connect(endpoint_, asio::redirect_error(use_awaitable, ec));
    if (ec) c.pushed_back();
    if (!ec) {
      co_await stream->async_handshake(asio::ssl::stream_base::client,
                                       asio::redirect_error(use_awaitable, ec));
    }
    if (ec) {
      timer.cancel();
      cert->error = "TLS handshake failed: " + ec.message();
      http->error = cert->error;
      co_return;
    }
    cert->read = true;
    cert->protocol = SSL_get_version(stream->native_handle());
    if (const char* name = SSL_get_cipher_name(stream->native_handle())) cert->cipher = name;
    if (STACK_OF(X509)* sent = SSL_get_peer_cert_chain(stream->native_handle())) {
      for (int i = 0; i < sk_X509_num(sent); ++i) {
        X509* x = sk_X509_value(sent, i);
        X509_up_ref(x);
        chain->emplace_back(x);
      }
    }
    std::string request = fmt::format(
        "GET / HTTP/1.1\r\nHost: {}\r\nUser-Agent: moat-scan\r\nAccept: */*\r\n"
        "Connection: close\r\n\r\n",
        host_header_);
    co_await asio::async_write(*stream, asio::buffer(request),
                               asio::redirect_error(use_awaitable, ec));
    std::string head;
    std::array<char, 4096> buffer{};
    while (!ec && head.size() < kMaxHttpHead && head.find("\r\n\r\n") == std::string::npos) {
      std::size_t n = co_await stream->async_read_some(asio::buffer(buffer),
                                                       asio::redirect_error(use_awaitable, ec));
      head.append(buffer.data(), n);
    }
    timer.cancel();
    asio::error_code ignored;
    stream->next_layer().close(ignored);
    auto end = head.find("\r\n\r\n");
    if (!head.starts_with("HTTP/")) {
      http->error = head.empty() ? "no HTTP response (" + ec.message() + ")" : "not an HTTP response";
      co_return;
    }
    http->read = true;
    parse_http_head(head.substr(0, end == std::string::npos ? head.size() : end + 2), *http);
  }

  // Facts every answered probe contributes, whichever phase sent it.
  void note(const Probe& p) {
    if (p.outcome != Probe::Outcome::kHello) return;
    if (p.dh_bits) {
      int bits = static_cast<int>(*p.dh_bits);
      dh_bits_ = dh_bits_ ? std::min(*dh_bits_, bits) : bits;
    }
    if (p.curve) curves_.insert({*p.curve, p.version});
  }

  std::optional<int> dh_bits_;
  std::set<std::pair<std::uint16_t, std::uint16_t>> curves_;  // (group, version)

 private:
  asio::io_context& io_;
  tcp::endpoint endpoint_;
  std::string sni_;
  std::string host_header_;
  Limiter limiter_;
  Clock::duration timeout_;
  Clock::time_point deadline_;
  std::vector<tls::KeyShare> shares_;
  std::size_t connections_ = 0;
};

// X509_verify_cert against the system store or --ca; the name is checked separately (RFC 6125).
void check_trust(const std::vector<tls::X509Ptr>& chain, const ScanOptions& options,
                 CertificateResult& cert) {
  cert.trust_store = options.ca_file.empty() ? "system" : options.ca_file;
  if (chain.empty()) {
    cert.trust_error = "no certificate";
    return;
  }
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), X509_STORE_free);
  bool loaded = options.ca_file.empty()
                    ? X509_STORE_set_default_paths(store.get()) == 1
                    : X509_STORE_load_file(store.get(), options.ca_file.c_str()) == 1;
  if (!loaded) {
    cert.trust_error = "cannot load trust store " + cert.trust_store + ": " +
                       tls::drain_openssl_errors();
    return;
  }
  struct StackDeleter {
    void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }
  };
  std::unique_ptr<STACK_OF(X509), StackDeleter> untrusted(sk_X509_new_null());
  for (std::size_t i = 1; i < chain.size(); ++i) sk_X509_push(untrusted.get(), chain[i].get());
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(),
                                                                       X509_STORE_CTX_free);
  if (X509_STORE_CTX_init(ctx.get(), store.get(), chain[0].get(), untrusted.get()) != 1) {
    cert.trust_error = "verification setup failed: " + tls::drain_openssl_errors();
    return;
  }
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_SERVER);
  cert.trusted = X509_verify_cert(ctx.get()) == 1;
  if (!cert.trusted) {
    cert.trust_error = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
  }
  (void)tls::drain_openssl_errors();
}

// The scan's phases, one coroutine. The chain + HSTS fetch runs alongside everything; each
// version's suites and order run as soon as phase A has said which versions answer, in parallel
// with the groups, compression, fallback, reference-client, Heartbleed and CCS probes.
asio::awaitable<void> scan_phases(Scanner& scanner, ScanResult& result,
                                  std::vector<tls::X509Ptr>& chain) {
  TaskGroup fetch(scanner.io());
  fetch.spawn(scanner.fetch_tls(&result.certificate, &result.http, &chain));

  // Phase A: one probe per version, SSL 2.0 included. TLS 1.0 .. 1.2 hellos offer the heartbeat
  // extension, so that Heartbleed needs a connection of its own only when a server echoes it.
  std::vector<Probe> version_probes(kVersions.size());
  ProtocolResult sslv2;
  {
    TaskGroup a(scanner.io());
    for (std::size_t i = 0; i < kVersions.size(); ++i) {
      auto spec = scanner.spec_for(kVersions[i], suites_for(kVersions[i]));
      spec.heartbeat = kVersions[i] >= tls::kTls10 && kVersions[i] <= tls::kTls12;
      a.spawn(scanner.run_probe(std::move(spec), &version_probes[i]));
    }
    a.spawn(scanner.probe_sslv2(&sslv2));
    co_await a.wait();
  }

  result.protocols.push_back(sslv2);
  std::vector<std::uint16_t> supported;  // SSL 3.0 .. TLS 1.3
  bool any_tls = false, any_connect = false;
  std::string failure;
  for (std::size_t i = 0; i < kVersions.size(); ++i) {
    const Probe& p = version_probes[i];
    ProtocolResult pr;
    pr.version = kVersions[i];
    pr.supported = p.answered() && p.version == kVersions[i];
    pr.detail = pr.supported ? "" : describe(p);
    if (pr.supported) supported.push_back(pr.version);
    any_tls = any_tls || p.answered() || p.outcome == Probe::Outcome::kAlert;
    any_connect = any_connect || p.outcome != Probe::Outcome::kConnectFailed;
    if (failure.empty() && !p.answered()) failure = describe(p);
    result.protocols.push_back(pr);
  }
  result.reachable = any_connect;
  result.speaks_tls = any_tls || sslv2.supported;
  if (!any_connect) {
    result.error = "cannot connect to " + result.address + ": " + failure;
  } else if (supported.empty() && !sslv2.supported) {
    result.error = any_tls ? "the server refused every protocol version (" + failure + ")"
                           : "no TLS answer: " + failure;
  }
  if (!result.error.empty()) {
    co_await fetch.wait();
    co_return;
  }

  std::uint16_t best_legacy = 0;  // highest supported version below TLS 1.3
  for (auto v : supported) {
    if (v < tls::kTls13) best_legacy = std::max(best_legacy, v);
  }
  const Probe* best_legacy_probe = nullptr;
  for (std::size_t i = 0; i < kVersions.size(); ++i) {
    if (kVersions[i] == best_legacy) best_legacy_probe = &version_probes[i];
  }
  if (best_legacy_probe) result.secure_renegotiation = best_legacy_probe->renegotiation_info;

  // Phase B.
  TaskGroup b(scanner.io());
  for (auto& pr : result.protocols) {
    if (pr.supported && pr.version != tls::kSsl20) b.spawn(scanner.suites_and_order(&pr));
  }
  std::vector<std::pair<std::uint16_t, std::uint16_t>> group_asked;  // (group, version)
  bool tls13 = std::find(supported.begin(), supported.end(), tls::kTls13) != supported.end();
  if (tls13) {
    for (auto g : kTls13Groups) group_asked.push_back({g, tls::kTls13});
  }
  if (best_legacy >= tls::kTls10) {
    for (auto g : kEcGroups) group_asked.push_back({g, best_legacy});
  }
  std::vector<Probe> group_probes(group_asked.size());
  for (std::size_t i = 0; i < group_asked.size(); ++i) {
    auto [g, v] = group_asked[i];
    auto spec = scanner.spec_for(v, {});
    if (v == tls::kTls13) {
      // One group, no key share: a server that supports it asks for it with a
      // HelloRetryRequest (RFC 8446 4.1.4); one that does not, refuses.
      spec.cipher_suites = suites_for(tls::kTls13);
      spec.key_shares.clear();
    } else {
      for (const auto& s : all_cipher_suites()) {
        if (s.kx == KeyExchange::kEcdhe && (v >= tls::kTls12 || !s.tls12_only)) {
          spec.cipher_suites.push_back(s.id);
        }
      }
    }
    spec.supported_groups = {g};
    b.spawn(scanner.run_probe(std::move(spec), &group_probes[i]));
  }
  Probe compression_probe, fallback_probe, reference_probe;
  if (best_legacy != 0) {
    auto spec = scanner.spec_for(best_legacy, suites_for(best_legacy));
    spec.deflate = true;
    b.spawn(scanner.run_probe(std::move(spec), &compression_probe));
    b.spawn(scanner.ccs_injection(best_legacy, &result.ccs_injection));
    if (best_legacy == tls::kSsl30) {
      result.heartbleed = {false, "SSL 3.0 has no extensions"};
    } else if (best_legacy_probe->heartbeat) {
      b.spawn(scanner.heartbleed(best_legacy, &result));
    } else {
      result.heartbeat = false;
      result.heartbleed = {false, "no heartbeat extension"};
    }
  } else {
    result.heartbleed.detail = "not applicable: no TLS 1.2 or older";
    result.ccs_injection.detail = "not applicable: no TLS 1.2 or older";
  }
  std::uint16_t fallback_version = 0;
  for (auto v : supported) {
    if (v < supported.back()) fallback_version = std::max(fallback_version, v);
  }
  if (fallback_version != 0) {
    auto spec = scanner.spec_for(fallback_version, suites_for(fallback_version));
    spec.fallback_scsv = true;
    b.spawn(scanner.run_probe(std::move(spec), &fallback_probe));
  }
  if (!supported.empty()) {
    auto spec = scanner.spec_for(tls::kTls13, reference_suites());
    spec.min_version = tls::kTls10;
    spec.supported_groups = {tls::kGroupX25519, tls::kGroupSecp256r1, tls::kGroupSecp384r1};
    b.spawn(scanner.run_probe(std::move(spec), &reference_probe));
  }
  co_await b.wait();

  for (std::size_t i = 0; i < group_asked.size(); ++i) {
    const Probe& p = group_probes[i];
    auto [g, v] = group_asked[i];
    bool yes = v == tls::kTls13 ? (p.answered() && p.version == v && p.key_share_group == g)
                                : (p.outcome == Probe::Outcome::kHello && p.curve == g);
    if (yes) result.groups.push_back({g, group_name(g), v});
  }
  for (auto [curve, version] : scanner.curves_) {
    // clang 14 cannot capture a structured binding in a lambda: copy it first.
    auto g = curve;
    bool known = std::any_of(result.groups.begin(), result.groups.end(),
                             [g](const GroupResult& r) { return r.id == g; });
    if (!known) result.groups.push_back({g, group_name(g), version});
  }
  if (best_legacy != 0 && compression_probe.answered()) {
    result.compression = compression_probe.compression == tls::kCompressionDeflate;
  }
  if (fallback_version != 0) {
    if (fallback_probe.outcome == Probe::Outcome::kAlert && fallback_probe.alert &&
        fallback_probe.alert->description == kAlertInappropriateFallback) {
      result.fallback_scsv = true;
    } else if (fallback_probe.answered()) {
      result.fallback_scsv = false;
    }
  }
  if (reference_probe.answered()) {
    result.reference_version = reference_probe.version;
    result.reference_suite = reference_probe.suite;
  }
  result.dh_bits = scanner.dh_bits_;
  co_await fetch.wait();
}

}  // namespace

std::string version_name(std::uint16_t version) {
  switch (version) {
    case tls::kSsl20:
      return "SSL 2.0";
    case tls::kSsl30:
      return "SSL 3.0";
    case tls::kTls10:
      return "TLS 1.0";
    case tls::kTls11:
      return "TLS 1.1";
    case tls::kTls12:
      return "TLS 1.2";
    case tls::kTls13:
      return "TLS 1.3";
    default:
      return fmt::format("0x{:04x}", version);
  }
}

std::string group_name(std::uint16_t group) {
  switch (group) {
    case tls::kGroupSecp256r1:
      return "secp256r1";
    case tls::kGroupSecp384r1:
      return "secp384r1";
    case tls::kGroupSecp521r1:
      return "secp521r1";
    case tls::kGroupX25519:
      return "x25519";
    case tls::kGroupX448:
      return "x448";
    case tls::kGroupFfdhe2048:
      return "ffdhe2048";
    case tls::kGroupFfdhe3072:
      return "ffdhe3072";
    case tls::kGroupFfdhe4096:
      return "ffdhe4096";
    case tls::kGroupFfdhe6144:
      return "ffdhe6144";
    case tls::kGroupFfdhe8192:
      return "ffdhe8192";
    default:
      return fmt::format("0x{:04x}", group);
  }
}

Result<ScanResult> scan(const ScanOptions& options) {
  auto target = parse_target(options.target);
  if (!target) {
    return Error::input("target_invalid", options.target + ": not HOST[:PORT]")
        .with_hint("for example example.com, example.com:8443, 192.0.2.1:443 or [::1]:8443");
  }
  if (!(options.timeout_seconds > 0) || options.timeout_seconds > 3600 ||
      !(options.deadline_seconds > 0) || options.deadline_seconds > 86400) {
    return Error::input("timeout_invalid", "--timeout and --deadline must be positive");
  }
  if (!options.sni.empty()) {
    tls::ClientHelloSpec check;
    check.cipher_suites = {0x002f};
    check.server_name = options.sni;
    auto checked = tls::build_client_hello(check);
    if (!checked) return Error::input("sni_invalid", "--sni " + options.sni + ": not a host name");
  }
  auto started = Clock::now();
  ScanResult result;
  result.host = target->host;
  result.port = target->port;
  result.sni = !options.sni.empty() ? options.sni : (target->host_is_ip ? "" : target->host);
  result.started_at = iso_now();

  asio::io_context io(1);
  tcp::endpoint endpoint;
  asio::error_code ec;
  if (!options.connect.empty()) {
    auto address = asio::ip::make_address(options.connect, ec);
    if (ec) return Error::input("connect_invalid", "--connect " + options.connect + ": not an IP");
    endpoint = tcp::endpoint(address, target->port);
  } else if (target->host_is_ip) {
    endpoint = tcp::endpoint(asio::ip::make_address(target->host), target->port);
  } else {
    tcp::resolver resolver(io);
    auto results = resolver.resolve(target->host, std::to_string(target->port), ec);
    if (ec || results.empty()) {
      return Error::upstream("resolve_failed",
                             "cannot resolve " + target->host + ": " + ec.message());
    }
    endpoint = results.begin()->endpoint();
  }
  result.address = endpoint.address().is_v6()
                       ? fmt::format("[{}]:{}", endpoint.address().to_string(), endpoint.port())
                       : fmt::format("{}:{}", endpoint.address().to_string(), endpoint.port());
  std::string host_header = target->host_is_ip && endpoint.address().is_v6()
                                ? "[" + target->host + "]"
                                : (result.sni.empty() ? target->host : result.sni);
  if (target->port != 443) host_header += ":" + std::to_string(target->port);

  Scanner scanner(io, endpoint, options, result.sni, host_header);

  std::vector<tls::X509Ptr> chain;
  asio::co_spawn(io, scan_phases(scanner, result, chain), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();

  // Certificate: trust against the store, the name, the cert report's fields.
  if (result.certificate.read) {
    auto now = std::chrono::system_clock::now();
    for (const auto& x : chain) result.certificate.chain.push_back(tls::inspect(x.get(), now));
    check_trust(chain, options, result.certificate);
    result.certificate.name = result.sni.empty() ? result.host : result.sni;
    if (!result.certificate.chain.empty()) {
      result.certificate.name_matches =
          tls::match_host(result.certificate.chain.front(), result.certificate.name).matched;
    }
  }
  result.connections = scanner.connections();
  result.concurrency = {options.max_connections, scanner.limiter().limit(),
                        scanner.limiter().peak(), scanner.limiter().backoffs()};
  result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  if (result.error.empty()) {
    result.findings = findings(result);
    result.grade = grade(grade_input(result));
  }
  return result;
}

}  // namespace moat::scan

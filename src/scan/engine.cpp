// The scan engine: probes in phases, each phase's probes concurrent (at most
// `max_connections` in flight), every connection under a deadline and the whole scan under one.
//   A. one probe per version with every suite of that version; the chain + HSTS over OpenSSL
//   B. per supported version: suite enumeration (offer, remove the accepted one, repeat; in
//      parallel chunks), groups one at a time, compression, TLS_FALLBACK_SCSV, a reference client
//   C. server order: the accepted suites in both orders
// One io_context on the calling thread; a phase ends when its probes have all finished.
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

// Counting semaphore for coroutines on one thread: at most `slots` holders.
class Limiter {
 public:
  explicit Limiter(std::size_t slots) : free_(slots == 0 ? 1 : slots) {}
  asio::awaitable<void> acquire() {
    if (free_ > 0) {
      --free_;
      co_return;
    }
    auto executor = co_await asio::this_coro::executor;
    auto timer = std::make_shared<asio::steady_timer>(executor, Clock::time_point::max());
    waiters_.push_back(timer);
    asio::error_code ec;
    co_await timer->async_wait(asio::redirect_error(use_awaitable, ec));
    // Woken by release(), which handed its slot over.
  }
  void release() {
    if (waiters_.empty()) {
      ++free_;
      return;
    }
    auto next = waiters_.front();
    waiters_.pop_front();
    next->cancel();
  }

 private:
  std::size_t free_;
  std::deque<std::shared_ptr<asio::steady_timer>> waiters_;
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

  // Phase runner: spawns each task, runs the loop until all have finished.
  void run_phase() {
    io_.run();
    io_.restart();
  }
  template <typename F>
  void spawn(F&& make_awaitable) {
    asio::co_spawn(io_, std::forward<F>(make_awaitable)(), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
  }

  asio::awaitable<Probe> probe(tls::ClientHelloSpec spec,
                               tls::ServerFlightReader::Stop stop =
                                   tls::ServerFlightReader::Stop::kAfterServerHelloDone) {
    Probe p;
    if (Clock::now() >= deadline_) {
      p.outcome = Probe::Outcome::kTimeout;
      p.detail = "scan deadline passed";
      co_return p;
    }
    auto hello = tls::build_client_hello(spec);
    if (!hello) {
      p.detail = hello.error().message;
      co_return p;
    }
    co_await limiter_.acquire();
    struct Release {
      Limiter& limiter;
      ~Release() { limiter.release(); }
    } release{limiter_};

    auto socket = std::make_shared<tcp::socket>(io_);
    auto timed_out = std::make_shared<bool>(false);
    asio::steady_timer timer(io_, std::min(Clock::now() + timeout_, deadline_));
    timer.async_wait([socket, timed_out](const asio::error_code& e) {
      if (!e) {
        *timed_out = true;
        asio::error_code ignored;
        socket->close(ignored);
      }
    });
    ++connections_;
    asio::error_code ec;
    co_await socket->async_connect(endpoint_, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      timer.cancel();
      p.outcome = *timed_out ? Probe::Outcome::kTimeout : Probe::Outcome::kConnectFailed;
      p.detail = *timed_out ? "connect timed out" : "connect failed: " + ec.message();
      co_return p;
    }
    co_await asio::async_write(*socket, asio::buffer(hello.value()),
                               asio::redirect_error(use_awaitable, ec));
    tls::ServerFlightReader reader(stop);
    std::size_t received = 0;
    std::array<std::uint8_t, 16 * 1024> buffer{};
    auto status = tls::ParseStatus::kNeedMore;
    while (!ec) {
      std::size_t n = co_await socket->async_read_some(asio::buffer(buffer),
                                                       asio::redirect_error(use_awaitable, ec));
      received += n;
      if (n > 0) status = reader.feed(std::span<const std::uint8_t>(buffer.data(), n));
      if (status != tls::ParseStatus::kNeedMore) break;
    }
    timer.cancel();
    asio::error_code ignored;
    socket->close(ignored);

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
      p.key_share_group = h.key_share_group;
      p.curve = flight.ecdhe_curve;
      p.dh_bits = flight.dhe_prime_bits;
      if (status == tls::ParseStatus::kNeedMore) p.detail = "flight ended early";
      co_return p;
    }
    if (*timed_out) {
      p.outcome = Probe::Outcome::kTimeout;
      p.detail = received == 0 ? "no answer before the deadline"
                               : "answer incomplete at the deadline";
    } else if (ec == asio::error::eof) {
      p.outcome = Probe::Outcome::kClosed;
      p.detail = received == 0 ? "connection closed without an answer"
                               : "connection closed mid-handshake";
    } else if (ec == asio::error::connection_reset) {
      p.outcome = Probe::Outcome::kReset;
      p.detail = received == 0 ? "connection reset" : "connection reset mid-handshake";
    } else {
      p.outcome = Probe::Outcome::kError;
      p.detail = ec ? ec.message() : "no answer";
    }
    co_return p;
  }

  // Offer `suites`, remove what the server picks, repeat until it refuses (how sslscan and
  // testssl.sh enumerate: O(accepted) handshakes).
  asio::awaitable<void> enumerate(std::uint16_t version, std::vector<std::uint16_t> suites,
                                  std::vector<std::uint16_t>* accepted) {
    while (!suites.empty()) {
      Probe p = co_await probe(spec_for(version, suites));
      note(p);
      if (!p.answered() || p.version != version) co_return;
      auto it = std::find(suites.begin(), suites.end(), p.suite);
      if (it == suites.end()) co_return;  // a suite we did not offer: stop rather than loop
      accepted->push_back(p.suite);
      suites.erase(it);
    }
  }

  asio::awaitable<void> run_probe(tls::ClientHelloSpec spec, Probe* out) {
    *out = co_await probe(std::move(spec));
    note(*out);
  }

  // The chain (and trust inputs) and the HTTP response head, over one OpenSSL connection.
  asio::awaitable<void> fetch_tls(CertificateResult* cert, HttpResult* http,
                                  std::vector<tls::X509Ptr>* chain) {
    co_await limiter_.acquire();
    struct Release {
      Limiter& limiter;
      ~Release() { limiter.release(); }
    } release{limiter_};
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

}  // namespace

std::string version_name(std::uint16_t version) {
  switch (version) {
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

  // Phase A: one probe per version; the chain and HSTS.
  std::vector<Probe> version_probes(kVersions.size());
  for (std::size_t i = 0; i < kVersions.size(); ++i) {
    scanner.spawn([&, i] {
      return scanner.run_probe(scanner.spec_for(kVersions[i], suites_for(kVersions[i])),
                               &version_probes[i]);
    });
  }
  std::vector<tls::X509Ptr> chain;
  scanner.spawn([&] { return scanner.fetch_tls(&result.certificate, &result.http, &chain); });
  scanner.run_phase();

  std::vector<std::uint16_t> supported;
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
  result.speaks_tls = any_tls;
  if (!any_connect) {
    result.error = "cannot connect to " + result.address + ": " + failure;
  } else if (supported.empty()) {
    result.error = any_tls ? "the server refused every protocol version (" + failure + ")"
                           : "no TLS answer: " + failure;
  }
  if (result.error.empty()) {
    std::uint16_t best_legacy = 0;  // highest supported version below TLS 1.3
    for (auto v : supported) {
      if (v < tls::kTls13) best_legacy = std::max(best_legacy, v);
    }
    if (best_legacy != 0) {
      result.secure_renegotiation =
          version_probes[static_cast<std::size_t>(
                             std::find(kVersions.begin(), kVersions.end(), best_legacy) -
                             kVersions.begin())]
              .renegotiation_info;
    }

    // Phase B.
    std::map<std::uint16_t, std::vector<std::vector<std::uint16_t>>> chunks_accepted;
    for (auto v : supported) {
      auto all = suites_for(v);
      std::size_t count = (all.size() + kChunkSize - 1) / kChunkSize;
      auto& slots = chunks_accepted[v];
      slots.resize(count);
      for (std::size_t c = 0; c < count; ++c) {
        std::vector<std::uint16_t> chunk(
            all.begin() + static_cast<std::ptrdiff_t>(c * kChunkSize),
            all.begin() + static_cast<std::ptrdiff_t>(std::min(all.size(), (c + 1) * kChunkSize)));
        scanner.spawn([&, v, c, chunk] { return scanner.enumerate(v, chunk, &slots[c]); });
      }
    }
    std::vector<Probe> group_probes;
    std::vector<std::pair<std::uint16_t, std::uint16_t>> group_asked;  // (group, version)
    bool tls13 = std::find(supported.begin(), supported.end(), tls::kTls13) != supported.end();
    if (tls13) {
      for (auto g : kTls13Groups) group_asked.push_back({g, tls::kTls13});
    }
    if (best_legacy >= tls::kTls10) {
      for (auto g : kEcGroups) group_asked.push_back({g, best_legacy});
    }
    group_probes.resize(group_asked.size());
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
      scanner.spawn([&, i, spec] { return scanner.run_probe(spec, &group_probes[i]); });
    }
    Probe compression_probe, fallback_probe, reference_probe;
    if (best_legacy != 0) {
      auto spec = scanner.spec_for(best_legacy, suites_for(best_legacy));
      spec.deflate = true;
      scanner.spawn([&, spec] { return scanner.run_probe(spec, &compression_probe); });
    }
    std::uint16_t fallback_version = 0;
    for (auto v : supported) {
      if (v < supported.back()) fallback_version = std::max(fallback_version, v);
    }
    if (fallback_version != 0) {
      auto spec = scanner.spec_for(fallback_version, suites_for(fallback_version));
      spec.fallback_scsv = true;
      scanner.spawn([&, spec] { return scanner.run_probe(spec, &fallback_probe); });
    }
    {
      auto spec = scanner.spec_for(tls::kTls13, reference_suites());
      spec.min_version = tls::kTls10;
      spec.supported_groups = {tls::kGroupX25519, tls::kGroupSecp256r1, tls::kGroupSecp384r1};
      scanner.spawn([&, spec] { return scanner.run_probe(spec, &reference_probe); });
    }
    scanner.run_phase();

    for (auto& pr : result.protocols) {
      auto it = chunks_accepted.find(pr.version);
      if (it == chunks_accepted.end()) continue;
      for (const auto& chunk : it->second) pr.suites.insert(pr.suites.end(), chunk.begin(), chunk.end());
    }
    for (std::size_t i = 0; i < group_asked.size(); ++i) {
      const Probe& p = group_probes[i];
      auto [g, v] = group_asked[i];
      bool yes = v == tls::kTls13
                     ? (p.answered() && p.version == v && p.key_share_group == g)
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

    // Phase C: the server's order. Offering the accepted suites in both orders: the same pick
    // both times means the server chooses.
    std::vector<std::pair<Probe, Probe>> order_probes(result.protocols.size());
    for (std::size_t i = 0; i < result.protocols.size(); ++i) {
      const auto& pr = result.protocols[i];
      if (pr.suites.size() < 2) continue;
      auto forward = pr.suites;
      auto backward = std::vector<std::uint16_t>(forward.rbegin(), forward.rend());
      auto v = pr.version;
      scanner.spawn([&, i, v, forward] {
        return scanner.run_probe(scanner.spec_for(v, forward), &order_probes[i].first);
      });
      scanner.spawn([&, i, v, backward] {
        return scanner.run_probe(scanner.spec_for(v, backward), &order_probes[i].second);
      });
    }
    scanner.run_phase();
    for (std::size_t i = 0; i < result.protocols.size(); ++i) {
      auto& pr = result.protocols[i];
      const auto& [a, b] = order_probes[i];
      if (pr.suites.size() < 2 || !a.answered() || !b.answered()) continue;
      pr.server_order = a.suite == b.suite;
      if (*pr.server_order) {
        pr.preferred = a.suite;
        auto it = std::find(pr.suites.begin(), pr.suites.end(), a.suite);
        if (it != pr.suites.end()) std::rotate(pr.suites.begin(), it, it + 1);
      }
    }
    result.dh_bits = scanner.dh_bits_;
  }

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
  result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  if (result.error.empty()) {
    result.findings = findings(result);
    result.grade = grade(grade_input(result));
  }
  return result;
}

}  // namespace moat::scan

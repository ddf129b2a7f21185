#include "core/tls/fetch.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace moat::core::tls {
namespace {

using Clock = std::chrono::steady_clock;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// 1 ready, 0 deadline passed, -1 poll error.
int wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    int ms = remaining_ms(deadline);
    if (ms == 0) return 0;
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, ms);
    if (n > 0) return 1;
    if (n == 0) return 0;
    if (errno != EINTR) return -1;
  }
}

std::string address_text(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    return fmt::format("{}:{}", buf, ntohs(in->sin_port));
  }
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
  inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
  return fmt::format("[{}]:{}", buf, ntohs(in6->sin6_port));
}

struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
};

bool parse_ip(const std::string& text, std::uint16_t port, Endpoint& out) {
  std::string bare = text;
  if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']')
    bare = bare.substr(1, bare.size() - 2);
  auto* in = reinterpret_cast<sockaddr_in*>(&out.addr);
  if (inet_pton(AF_INET, bare.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    out.len = sizeof(sockaddr_in);
    return true;
  }
  out.addr = {};
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.addr);
  if (inet_pton(AF_INET6, bare.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    out.len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

// getaddrinfo() has no deadline, so it runs on a helper thread that is abandoned (detached)
// if the deadline passes first; the shared state keeps what it writes alive.
Result<std::vector<Endpoint>> resolve(const std::string& host, std::uint16_t port,
                                      Clock::time_point deadline) {
  struct State {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    int rc = 0;
    std::vector<Endpoint> endpoints;
  };
  auto state = std::make_shared<State>();
  std::thread([state, host, port] {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
    std::vector<Endpoint> found;
    for (addrinfo* ai = res; rc == 0 && ai != nullptr; ai = ai->ai_next) {
      if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
      Endpoint e;
      std::memcpy(&e.addr, ai->ai_addr, ai->ai_addrlen);
      e.len = ai->ai_addrlen;
      found.push_back(e);
    }
    if (res != nullptr) ::freeaddrinfo(res);
    std::lock_guard lock(state->mutex);
    state->rc = rc;
    state->endpoints = std::move(found);
    state->done = true;
    state->done_cv.notify_all();
  }).detach();

  std::unique_lock lock(state->mutex);
  if (!state->done_cv.wait_until(lock, deadline, [&] { return state->done; })) {
    return Error::upstream("resolve_timeout",
                           fmt::format("resolving {}: no answer before the deadline", host), true);
  }
  if (state->rc != 0) {
    return Error::upstream("resolve_failed",
                           fmt::format("cannot resolve {}: {}", host, ::gai_strerror(state->rc)));
  }
  if (state->endpoints.empty()) {
    return Error::upstream("resolve_failed", fmt::format("cannot resolve {}: no address", host));
  }
  return std::move(state->endpoints);
}

Result<int> connect_one(const Endpoint& endpoint, Clock::time_point deadline) {
  const auto* sa = reinterpret_cast<const sockaddr*>(&endpoint.addr);
  std::string where = address_text(sa);
  int fd = ::socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return Error::upstream("connect_failed", fmt::format("socket: {}", std::strerror(errno)));
  }
  Fd owner(fd);
  int rc = ::connect(fd, sa, endpoint.len);
  if (rc != 0 && errno != EINPROGRESS && errno != EINTR) {
    int err = errno;
    return Error::upstream(err == ECONNREFUSED ? "connect_refused" : "connect_failed",
                           fmt::format("connect to {}: {}", where, std::strerror(err)), true);
  }
  if (rc != 0) {
    int ready = wait_for(fd, POLLOUT, deadline);
    if (ready == 0) {
      return Error::upstream("connect_timeout",
                             fmt::format("connect to {}: no answer before the deadline", where),
                             true);
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (ready < 0 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) {
      return Error::upstream(err == ECONNREFUSED ? "connect_refused" : "connect_failed",
                             fmt::format("connect to {}: {}", where, std::strerror(err)), true);
    }
  }
  return owner.release();  // the caller owns the descriptor now
}

Error handshake_error(SSL* ssl, int rc, const std::string& peer) {
  int err = SSL_get_error(ssl, rc);
  std::string why = drain_openssl_errors();
  // OpenSSL 3 reports an EOF mid-handshake as an SSL error ("unexpected eof while reading").
  bool eof = why.find("unexpected eof") != std::string::npos;
  if (err == SSL_ERROR_ZERO_RETURN || eof || (err == SSL_ERROR_SYSCALL && why.empty())) {
    int saved = errno;
    std::string detail =
        (err == SSL_ERROR_SYSCALL && saved != 0) ? std::strerror(saved) : "connection closed";
    return Error::upstream(
               "handshake_closed",
               fmt::format("TLS handshake with {}: the peer ended it ({})", peer, detail))
        .with_hint("is it a TLS server, and does it accept TLS 1.2 or later?");
  }
  Error e = Error::upstream(
      "handshake_failed",
      fmt::format("TLS handshake with {} failed: {}", peer, why.empty() ? "unknown error" : why));
  if (why.find("wrong version number") != std::string::npos ||
      why.find("packet length too long") != std::string::npos ||
      why.find("record layer failure") != std::string::npos) {
    return std::move(e).with_hint("the peer does not speak TLS on this port");
  }
  if (why.find("protocol version") != std::string::npos ||
      why.find("unsupported protocol") != std::string::npos) {
    return std::move(e).with_hint("the peer offers no TLS 1.2 or later");
  }
  return e;
}

}  // namespace

Result<FetchedChain> fetch_chain(const FetchOptions& options) {
  auto deadline = Clock::now() + options.timeout;
  ERR_clear_error();

  std::vector<Endpoint> endpoints;
  Endpoint literal;
  const std::string& target =
      options.connect_address.empty() ? options.host : options.connect_address;
  if (parse_ip(target, options.port, literal)) {
    endpoints.push_back(literal);
  } else if (!options.connect_address.empty()) {
    return Error::input("connect_address", fmt::format("connect address {} is not an IP address",
                                                       options.connect_address));
  } else {
    auto resolved = resolve(options.host, options.port, deadline);
    if (!resolved) return resolved.error();
    endpoints = std::move(resolved.value());
  }

  // Try each address in turn, all under the same deadline; report the last failure.
  Result<int> connected = Error::upstream("connect_failed", "no address to connect to");
  std::string peer;
  for (const auto& endpoint : endpoints) {
    peer = address_text(reinterpret_cast<const sockaddr*>(&endpoint.addr));
    connected = connect_one(endpoint, deadline);
    if (connected || connected.error().code == "connect_timeout") break;
  }
  if (!connected) return connected.error();
  Fd fd(connected.value());

  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return Error::internal("tls_context", "SSL_CTX_new: " + drain_openssl_errors());
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);  // we report; trust is decided elsewhere
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SslPtr ssl(SSL_new(ctx.get()));
  if (!ssl || SSL_set_fd(ssl.get(), fd.get()) != 1) {
    return Error::internal("tls_session", "SSL_new: " + drain_openssl_errors());
  }
  std::string sni = options.sni;
  Endpoint ignored;
  if (parse_ip(sni, 0, ignored)) sni.clear();  // RFC 6066 3: no IP literals in server_name
  if (!sni.empty() && SSL_set_tlsext_host_name(ssl.get(), sni.c_str()) != 1) {
    return Error::input("sni_invalid",
                        fmt::format("cannot send SNI '{}': {}", sni, drain_openssl_errors()));
  }

  for (;;) {
    ERR_clear_error();
    errno = 0;
    int rc = SSL_connect(ssl.get());
    if (rc == 1) break;
    int err = SSL_get_error(ssl.get(), rc);
    short events = 0;
    if (err == SSL_ERROR_WANT_READ) events = POLLIN;
    if (err == SSL_ERROR_WANT_WRITE) events = POLLOUT;
    if (events == 0) return handshake_error(ssl.get(), rc, peer);
    int ready = wait_for(fd.get(), events, deadline);
    if (ready == 0) {
      return Error::upstream(
                 "handshake_timeout",
                 fmt::format("TLS handshake with {}: no answer before the deadline", peer), true)
          .with_hint("is it a TLS server? (--timeout sets the deadline)");
    }
    if (ready < 0) {
      return Error::upstream("handshake_failed",
                             fmt::format("TLS handshake with {}: {}", peer, std::strerror(errno)));
    }
  }

  FetchedChain out;
  out.peer = peer;
  out.sni = sni;
  out.protocol = SSL_get_version(ssl.get());
  const char* cipher = SSL_get_cipher_name(ssl.get());
  out.cipher = cipher != nullptr ? cipher : "";
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl.get());
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
    X509* cert = sk_X509_value(chain, i);
    X509_up_ref(cert);
    out.chain.emplace_back(cert);
  }
  // Best effort close_notify; never wait for the peer's.
  SSL_shutdown(ssl.get());
  ERR_clear_error();
  if (out.chain.empty()) {
    return Error::upstream("no_certificate", fmt::format("{} sent no certificate", peer));
  }
  return out;
}

}  // namespace moat::core::tls

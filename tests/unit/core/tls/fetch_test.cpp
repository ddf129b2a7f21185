// fetch_chain's failure paths against in-process sockets on 127.0.0.1 (the TLS success path is
// covered by tests/integration/test_cert_show.py against openssl s_server and nginx).
#include "core/tls/fetch.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>

namespace moat::core::tls {
namespace {

// A TCP socket bound to 127.0.0.1 on a free port, optionally listening (never accepting).
class LoopbackSocket {
 public:
  explicit LoopbackSocket(bool listening) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    if (listening) ::listen(fd_, 4);
  }
  ~LoopbackSocket() { ::close(fd_); }
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

TEST(FetchChain, ConnectionRefused) {
  LoopbackSocket bound(false);  // bound but not listening: the kernel refuses
  FetchOptions options;
  options.host = "127.0.0.1";
  options.port = bound.port();
  auto r = fetch_chain(options);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "connect_refused");
  EXPECT_NE(r.error().message.find("127.0.0.1:" + std::to_string(bound.port())), std::string::npos);
}

TEST(FetchChain, SilentServerHitsTheDeadline) {
  LoopbackSocket silent(true);  // the kernel completes TCP, nobody ever speaks TLS
  FetchOptions options;
  options.host = "localhost";
  options.connect_address = "127.0.0.1";
  options.sni = "localhost";
  options.port = silent.port();
  options.timeout = std::chrono::milliseconds(300);
  auto start = std::chrono::steady_clock::now();
  auto r = fetch_chain(options);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "handshake_timeout");
  EXPECT_GE(elapsed, std::chrono::milliseconds(250));
  EXPECT_LT(elapsed, std::chrono::milliseconds(2000));
}

TEST(FetchChain, ConnectAddressMustBeAnIp) {
  FetchOptions options;
  options.host = "localhost";
  options.connect_address = "not-an-ip";
  auto r = fetch_chain(options);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "connect_address");
}

}  // namespace
}  // namespace moat::core::tls

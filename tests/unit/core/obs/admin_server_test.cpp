#include "core/obs/admin_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/obs/metrics.hpp"

namespace moat::core::obs {
namespace {

using namespace std::chrono_literals;

// A plain blocking client on 127.0.0.1, with a receive timeout so that a server bug fails the
// test instead of hanging it.
class Client {
 public:
  explicit Client(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    if (fd_ < 0) throw std::runtime_error("socket");
    timeval timeout{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      throw std::runtime_error("connect");
    }
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return;  // the server may close early (431); the response tells
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  // Everything until the server closes (every admin response ends the connection).
  std::string receive_all() {
    std::string out;
    char buffer[4096];
    for (;;) {
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      out.append(buffer, static_cast<std::size_t>(n));
    }
    return out;
  }

 private:
  int fd_;
};

struct Response {
  int status = 0;
  std::string head;
  std::string body;
  bool has_header(std::string_view line) const {
    return head.find("\r\n" + std::string(line) + "\r\n") != std::string::npos;
  }
};

Response parse(const std::string& raw) {
  Response r;
  const auto end = raw.find("\r\n\r\n");
  if (raw.size() < 12 || end == std::string::npos) return r;
  r.status = std::stoi(raw.substr(9, 3));
  r.head = raw.substr(0, end + 2);
  r.body = raw.substr(end + 4);
  return r;
}

Response exchange(std::uint16_t port, std::string_view request) {
  Client client(port);
  client.send(request);
  return parse(client.receive_all());
}

class AdminServerTest : public testing::Test {
 protected:
  void SetUp() override {
    registry_.counter_family("moat_egress_proxy_requests_total", "Requests.", {"decision"})
        .labels({"allow"})
        .add(0, 7);
  }
  AdminServer& start(AdminRoutes routes = {}, AdminOptions options = {}) {
    server_ = std::make_unique<AdminServer>("127.0.0.1:0", registry_, std::move(routes), options);
    auto started = server_->start();
    EXPECT_TRUE(started.ok()) << started.error().message;
    EXPECT_NE(server_->local_port(), 0);
    return *server_;
  }
  std::uint16_t port() const { return server_->local_port(); }

  MetricsRegistry registry_{1};
  std::unique_ptr<AdminServer> server_;
};

TEST_F(AdminServerTest, ServesMetrics) {
  start();
  const auto r = exchange(port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.has_header("Content-Type: text/plain; version=0.0.4; charset=utf-8")) << r.head;
  EXPECT_TRUE(r.has_header("Connection: close"));
  EXPECT_TRUE(r.has_header("Content-Length: " + std::to_string(r.body.size())));
  EXPECT_EQ(r.body, registry_.render_prometheus());
  EXPECT_NE(r.body.find("moat_egress_proxy_requests_total{decision=\"allow\"} 7\n"),
            std::string::npos);
  // Query strings do not change the route; HTTP/1.0 is fine too.
  EXPECT_EQ(exchange(port(), "GET /metrics?name[]=x HTTP/1.0\r\n\r\n").status, 200);
}

TEST_F(AdminServerTest, HeadHasNoBody) {
  start();
  const auto r = exchange(port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body.empty());
  EXPECT_TRUE(r.has_header("Content-Length: " +
                           std::to_string(registry_.render_prometheus().size())));
}

TEST_F(AdminServerTest, HealthzFollowsSetHealthy) {
  auto& server = start();
  auto r = exchange(port(), "GET /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
  server.set_healthy(false);
  r = exchange(port(), "GET /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "draining\n");
  server.set_healthy(true);
  EXPECT_EQ(exchange(port(), "GET /healthz HTTP/1.1\r\n\r\n").status, 200);
}

TEST_F(AdminServerTest, UnknownPathIs404AndOtherMethodsAre405) {
  start();
  EXPECT_EQ(exchange(port(), "GET /nope HTTP/1.1\r\n\r\n").status, 404);
  EXPECT_EQ(exchange(port(), "GET /metrics/ HTTP/1.1\r\n\r\n").status, 404);
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS", "CONNECT", "get"}) {
    const auto r = exchange(port(), std::string(method) + " /metrics HTTP/1.1\r\n\r\n");
    EXPECT_EQ(r.status, 405) << method;
    EXPECT_TRUE(r.has_header("Allow: GET, HEAD")) << method;
  }
}

TEST_F(AdminServerTest, CustomRoutesAndFailingHandlers) {
  AdminRoutes routes;
  routes["/policy"] = [] { return AdminResponse{200, "application/json", R"({"revision":3})"}; };
  routes["/boom"] = []() -> AdminResponse { throw std::runtime_error("bug"); };
  start(std::move(routes));
  const auto r = exchange(port(), "GET /policy HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.has_header("Content-Type: application/json"));
  EXPECT_EQ(r.body, R"({"revision":3})");
  EXPECT_EQ(exchange(port(), "GET /boom HTTP/1.1\r\n\r\n").status, 500);
  EXPECT_EQ(exchange(port(), "GET /metrics HTTP/1.1\r\n\r\n").status, 200);  // still serving
}

TEST_F(AdminServerTest, GarbageIsRefusedWithoutWaitingForTheDeadline) {
  AdminOptions options;
  options.read_timeout = 60s;  // a 400 must come from the parser, not from the deadline
  start({}, options);
  const char* garbage[] = {
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  // a TLS ClientHello
      "GET /metrics HTTP/1.1\n\n",                     // bare LF
      "GET  /metrics HTTP/1.1\r\n\r\n",                // two spaces
      "GET metrics HTTP/1.1\r\n\r\n",                  // not origin-form
      "GET /metrics FOO\r\n\r\n",
      "GET /met\x01rics HTTP/1.1\r\n\r\n",
      "\r\n\r\n",
      "GET /metrics HTTP/1.1\r\nno colon\r\n\r\n",
      "GET /metrics HTTP/1.1\r\n folded: x\r\n\r\n",
      "GET /metrics HTTP/1.1\r\nbad name: x\r\n\r\n",
      "GET /metrics HTTP/1.1\rX\r\n\r\n",
  };
  for (const char* request : garbage) {
    const auto started = std::chrono::steady_clock::now();
    const auto r = exchange(port(), request);
    EXPECT_EQ(r.status, 400) << testing::PrintToString(std::string(request));
    EXPECT_LT(std::chrono::steady_clock::now() - started, 30s);
  }
  EXPECT_EQ(exchange(port(), "GET /metrics HTTP/2.0\r\n\r\n").status, 505);
}

TEST_F(AdminServerTest, OversizedHeadIs431) {
  start();
  std::string request = "GET /metrics HTTP/1.1\r\nX-Filler: " + std::string(9000, 'a') + "\r\n\r\n";
  EXPECT_EQ(exchange(port(), request).status, 431);
}

TEST_F(AdminServerTest, UnfinishedRequestHitsTheDeadline) {
  AdminOptions options;
  options.read_timeout = 200ms;
  start({}, options);
  Client client(port());
  client.send("GET /metrics HTTP/1.1\r\nHost: x\r\n");  // never the blank line
  const auto started = std::chrono::steady_clock::now();
  const auto r = parse(client.receive_all());  // returns when the server closes
  EXPECT_EQ(r.status, 408);
  EXPECT_TRUE(r.has_header("Connection: close"));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);

  Client silent(port());  // connects and sends nothing at all
  EXPECT_EQ(parse(silent.receive_all()).status, 408);
  EXPECT_EQ(exchange(port(), "GET /healthz HTTP/1.1\r\n\r\n").status, 200);
}

TEST_F(AdminServerTest, StopClosesIdleConnectionsAndRestarts) {
  AdminOptions options;
  options.read_timeout = 60s;
  auto& server = start({}, options);
  Client idle(port());
  idle.send("GET /metr");
  server.stop();  // must not wait 60 s for the idle client
  EXPECT_EQ(idle.receive_all(), "");
  EXPECT_EQ(server.local_port(), 0);
  server.stop();  // idempotent
  ASSERT_TRUE(server.start().ok());
  EXPECT_EQ(exchange(port(), "GET /healthz HTTP/1.1\r\n\r\n").status, 200);
}

TEST_F(AdminServerTest, StartErrorsAreValues) {
  auto& server = start();
  EXPECT_FALSE(server.start().ok());  // already running
  AdminServer other("127.0.0.1:" + std::to_string(port()), registry_);
  auto busy = other.start();
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.error().code, "admin_listen_failed");
  AdminServer bad("not-an-address:1", registry_);
  EXPECT_FALSE(bad.start().ok());
}

TEST_F(AdminServerTest, ConnectionsBeyondTheCapAreClosed) {
  AdminOptions options;
  options.max_connections = 1;
  options.read_timeout = 60s;
  start({}, options);
  Client first(port());
  first.send("GET /hea");  // holds the only slot
  Client second(port());   // accepted by the kernel, closed by the server
  second.send("GET /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(second.receive_all(), "");
  first.send("lthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(parse(first.receive_all()).status, 200);
}

TEST(AdminRespond, ParsesOnlyWhatItNeeds) {
  MetricsRegistry registry(1);
  AdminServer server("127.0.0.1:0", registry);
  EXPECT_EQ(parse(server.respond("GET /healthz HTTP/1.1\r\nA: b\r\nC:\r\n\r\n")).status, 200);
  EXPECT_EQ(parse(server.respond("GET /healthz HTTP/1.1\r\n")).status, 200);
  EXPECT_EQ(parse(server.respond("GET /healthz HTTP/1.1")).status, 400);
  EXPECT_EQ(parse(server.respond("GET /healthz HTTP/1.1\r\nA: b")).status, 400);
  EXPECT_EQ(parse(server.respond("GET / HTTP/1.1\r\n\r\n")).status, 404);
  const auto head404 = parse(server.respond("HEAD / HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(head404.status, 404);
  EXPECT_TRUE(head404.body.empty());
}

}  // namespace
}  // namespace moat::core::obs

// core/obs: AdminServer, the small HTTP/1.1 listener for /metrics, /healthz and a few read-only
// routes. It runs on its own thread with its own io_context, so a slow scraper never delays a
// worker. It is meant for a trusted network, yet parses strictly and with bounds: one request per
// connection (always answered with Connection: close), a request head of at most 8 KiB, a read
// deadline, a cap on concurrent connections. Asio stays out of this header.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "core/base/result.hpp"

namespace moat::core::obs {

class MetricsRegistry;

struct AdminResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// Runs on the admin thread; must not block for long. An exception becomes a 500.
using AdminHandler = std::function<AdminResponse()>;
// Exact path (no query string) to handler. Overrides the built-in routes of the same path.
using AdminRoutes = std::map<std::string, AdminHandler, std::less<>>;

struct AdminOptions {
  std::size_t max_request_head = 8 * 1024;       // request line + headers + blank line
  std::chrono::milliseconds read_timeout{5000};  // to receive the whole head
  std::chrono::milliseconds write_timeout{5000};
  std::size_t max_connections = 64;              // beyond it, new connections are closed at once
};

class AdminServer {
 public:
  // `listen_address`: "127.0.0.1:9090", "[::1]:9090", ":9090" (see runtime::parse_listen_address);
  // port 0 picks a free port (local_port()). `metrics` must outlive the server.
  AdminServer(std::string listen_address, const MetricsRegistry& metrics, AdminRoutes routes = {},
              AdminOptions options = {});
  ~AdminServer();  // stop()
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds and listens (errors are returned, e.g. address in use), then serves on a new thread.
  // Once it returns ok, connections are accepted: no need to wait for readiness.
  Result<void> start();
  // Closes the listener and every open connection, joins the thread. Idempotent.
  void stop();

  // The bound port (after start()), 0 before.
  std::uint16_t local_port() const;

  // /healthz answers 200 "ok\n" while healthy, 503 "draining\n" otherwise (e.g. during drain).
  void set_healthy(bool healthy) { healthy_.store(healthy, std::memory_order_relaxed); }
  bool healthy() const { return healthy_.load(std::memory_order_relaxed); }

  // Exposed for tests and reuse: the response for one request head (method and target taken
  // from its request line), exactly as the server would send it, Connection: close included.
  std::string respond(std::string_view request_head) const;

 private:
  struct Impl;
  std::string listen_address_;
  const MetricsRegistry& metrics_;
  AdminRoutes routes_;
  AdminOptions options_;
  std::atomic<bool> healthy_{true};
  std::unique_ptr<Impl> impl_;
};

}  // namespace moat::core::obs

// edge: the running front door: workers with their HTTPS and HTTP listeners, the config and TLS
// snapshot and its reload, metrics, the access log and the admin listener.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

#include "core/base/result.hpp"
#include "core/guard/address_limiter.hpp"
#include "core/obs/admin_server.hpp"
#include "core/obs/audit_log.hpp"
#include "core/obs/metrics.hpp"
#include "core/runtime/snapshot.hpp"
#include "core/runtime/worker_pool.hpp"
#include "edge/config.hpp"
#include "edge/h2/h2_connection.hpp"
#include "edge/health.hpp"
#include "edge/route_limiter.hpp"
#include "edge/session.hpp"

namespace moat::edge {

struct ServerOptions {
  std::string config_path;
  std::size_t workers = 0;  // overrides the config's when non-zero
};

// Builds what connections start with: the config, its TLS contexts and derived values.
core::Result<std::shared_ptr<const EdgeSnapshot>> make_snapshot(
    std::shared_ptr<const EdgeConfig> config);

class Server {
 public:
  Server(ServerOptions options, std::shared_ptr<const EdgeSnapshot> snapshot);
  ~Server();

  // Listens, serves until SIGTERM or SIGINT, then drains. SIGHUP reloads the config and the
  // certificates (an invalid one is rejected, logged, and the old one stays); SIGUSR1 reopens
  // the access log. Returns the process exit code.
  int run();
  // Reloads from the config file now (what SIGHUP does). True if the new config took effect.
  bool reload();

  // Called by sessions, on their worker's thread.
  void on_connection_open(std::size_t worker, bool tls);
  void on_connection_close(std::size_t worker, bool tls);
  void on_session_exception(std::size_t worker, const char* what);
  void count_handshake_failure(std::size_t worker, std::string_view reason);
  void count_upstream_connect(std::size_t worker, std::string_view result);
  void count_request(std::size_t worker, const StreamRecord& record, double seconds);
  // HTTP/2 (moat_edge_h2_*): connections, streams, streams reset by the client, and
  // connections ended by a defence (GOAWAY ENHANCE_YOUR_CALM or PROTOCOL_ERROR).
  void count_h2_connection(std::size_t worker);
  void count_h2_stream(std::size_t worker);
  void count_h2_client_reset(std::size_t worker);
  void count_h2_defence(std::size_t worker, H2Defence defence);
  // The DDoS defences (core/guard), shared by every worker. Refusals are counted here.
  core::guard::Decision guard_handshake(std::size_t worker, const core::guard::ClientKey& key);
  core::guard::Decision guard_request(std::size_t worker, const core::guard::ClientKey& key);
  void guard_close(const core::guard::ClientKey& key);
  void count_rejection(std::size_t worker, core::guard::Verdict verdict);
  // A route's rate_limit for this client: 0 allowed, else the Retry-After in seconds (counted
  // as moat_edge_guard_rejections_total{limit="route"}).
  std::int64_t route_limit(std::size_t worker, const Route& route,
                           const core::guard::ClientKey& key);
  // Overload shedding (edge/overload.hpp): true while `worker` lags or memory is over the
  // threshold. New work is refused then; count_overload_rejection counts each refusal.
  bool overloaded(std::size_t worker) const;
  void count_overload_rejection(std::size_t worker);
  // Slow clients: a request body under min_body_rate (408), a client not reading within
  // send_timeout (closed). Counted in moat_edge_guard_rejections_total{limit=body_rate or
  // send_timeout}.
  void count_slow_body(std::size_t worker);
  void count_send_timeout(std::size_t worker);
  // HTTP/2 streams refused because their connection held h2_max_buffered_body of request bodies
  // (moat_edge_guard_rejections_total{limit="h2_body_buffer"}).
  void count_h2_body_buffer(std::size_t worker, std::uint64_t streams);

  static core::guard::LimiterSettings guard_settings(const Limits& limits);

 private:
  asio::awaitable<void> accept_loop(WorkerState& worker,
                                    std::shared_ptr<asio::ip::tcp::acceptor> acceptor, bool tls);
  // SIGTERM: stop accepting, close idle keep-alive connections, let requests in flight finish
  // within limits.drain_timeout, then end the rest.
  void drain();
  void flush_access_logs();
  // Every kOverloadTick on each worker: its event-loop lag, and (worker 0) the process's memory.
  asio::awaitable<void> overload_watch(WorkerState& worker);

  static constexpr std::size_t kAccessBatchBytes = 64 * 1024;

  // Connections admitted under max_connections and the per-client caps (or refused); false when
  // the socket was closed at accept.
  bool admit(WorkerState& worker, const Limits& limits, asio::ip::tcp::socket& socket,
             const asio::ip::tcp::endpoint& remote, core::guard::ClientKey& key);

  ServerOptions options_;
  core::runtime::Snapshot<EdgeSnapshot> snapshot_;
  // Before pool_: sessions finishing while the workers stop still release their entries.
  core::guard::AddressLimiter guard_;
  core::runtime::WorkerPool pool_;
  std::vector<std::unique_ptr<WorkerState>> workers_;
  std::unique_ptr<core::obs::AuditLog> access_;
  core::obs::MetricsRegistry metrics_;
  std::unique_ptr<core::obs::AdminServer> admin_;
  // Active health checks of the pools (edge/health.hpp), on worker 0; restarted on reload.
  std::unique_ptr<HealthChecker> health_;
  core::obs::CounterFamily* ejections_ = nullptr;  // moat_edge_upstream_ejections_total
  std::atomic<std::size_t> active_{0};

  core::obs::CounterHandle connections_https_;
  core::obs::CounterHandle connections_http_;
  core::obs::GaugeHandle connections_active_;
  core::obs::HistogramHandle request_seconds_;
  core::obs::CounterFamily* requests_ = nullptr;
  core::obs::CounterFamily* handshake_failures_ = nullptr;
  core::obs::CounterFamily* upstream_connects_ = nullptr;
  core::obs::CounterFamily* reloads_ = nullptr;
  core::obs::CounterHandle exceptions_;
  core::obs::CounterHandle h2_connections_;
  core::obs::CounterHandle h2_streams_;
  core::obs::CounterHandle h2_client_resets_;
  core::obs::CounterHandle h2_defences_[8];  // by H2Defence
  // moat_edge_guard_rejections_total, by core::guard::Verdict (index 0, kAllowed: "connections",
  // the global cap, which is not a per-client verdict).
  core::obs::CounterHandle rejections_[5];
  core::obs::CounterHandle rejections_route_;     // {limit="route"}
  core::obs::CounterHandle rejections_overload_;  // {limit="overload"}
  core::obs::CounterHandle rejections_body_rate_;
  core::obs::CounterHandle rejections_h2_body_buffer_;
  core::obs::CounterHandle rejections_send_timeout_;
  core::obs::GaugeHandle overloaded_gauge_;       // moat_edge_overloaded: workers shedding
  RouteLimiter route_limits_;
  std::atomic<bool> memory_over_{false};
};

}  // namespace moat::edge

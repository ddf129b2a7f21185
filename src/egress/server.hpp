// egress: the running gateway: workers with their listeners, the config snapshot and reloads,
// per-client admission, metrics, the audit log and the admin listener.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

#include "core/obs/admin_server.hpp"
#include "core/obs/audit_log.hpp"
#include "core/obs/metrics.hpp"
#include "core/runtime/snapshot.hpp"
#include "core/runtime/worker_pool.hpp"
#include "egress/config.hpp"
#include "egress/session.hpp"

namespace moat::egress {

// Connections per client address across all workers. Sharded so that workers rarely meet on
// the same lock; touched once at accept and once at close, never on the byte path.
class ClientTable {
 public:
  bool acquire(const core::net::IpAddress& client, std::size_t limit);
  void release(const core::net::IpAddress& client);

 private:
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::size_t> counts;
  };
  static constexpr std::size_t kShards = 64;
  Shard& shard_for(const std::string& key);
  std::array<Shard, kShards> shards_;
};

struct ServerOptions {
  std::string config_path;
  std::size_t workers = 0;  // overrides the config's when non-zero
};

class Server {
 public:
  Server(ServerOptions options, std::shared_ptr<const EgressConfig> config);
  ~Server();

  // Listens, serves until SIGTERM or SIGINT, then drains. SIGHUP reloads the config file (an
  // invalid one is rejected, logged, and the old one stays); SIGUSR1 reopens the audit log.
  // Returns the process exit code.
  int run();

  // Called by sessions.
  bool admit_client(const core::net::IpAddress& client);
  void release_client(const core::net::IpAddress& client);
  void on_connection_open(std::size_t worker);
  void on_connection_close(std::size_t worker);
  void observe_dns(std::size_t worker, std::chrono::microseconds latency);
  void count_hello_failure(std::size_t worker, std::string_view reason);
  void count_bytes(std::size_t worker, std::uint64_t up, std::uint64_t down);
  void count_decision(std::size_t worker, const SessionRecord& record);
  void write_audit(std::string_view line);
  // The destination port of a transparently redirected connection (SO_ORIGINAL_DST), or
  // `fallback` when the connection was not redirected.
  std::uint16_t original_port(asio::ip::tcp::socket& socket, std::uint16_t fallback) const;

  // Reloads from the config file now (what SIGHUP does). True if the new config took effect.
  bool reload();

 private:
  asio::awaitable<void> accept_loop(WorkerState& worker,
                                    std::shared_ptr<asio::ip::tcp::acceptor> acceptor,
                                    bool transparent);
  // SIGTERM: stop accepting, let tunnels finish within limits.drain_timeout, end the rest.
  void drain();
  void refresh_resolver(WorkerState& worker, const std::shared_ptr<const EgressConfig>& config);

  ServerOptions options_;
  core::runtime::Snapshot<EgressConfig> config_;
  core::runtime::WorkerPool pool_;
  std::vector<std::unique_ptr<WorkerState>> workers_;
  std::unique_ptr<core::obs::AuditLog> audit_;
  core::obs::MetricsRegistry metrics_;
  std::unique_ptr<core::obs::AdminServer> admin_;
  ClientTable clients_;
  std::atomic<std::size_t> active_{0};

  core::obs::CounterHandle connections_total_;
  core::obs::GaugeHandle connections_active_;
  core::obs::CounterHandle bytes_up_;
  core::obs::CounterHandle bytes_down_;
  core::obs::HistogramHandle dns_seconds_;
  core::obs::CounterFamily* decisions_ = nullptr;
  core::obs::CounterFamily* hello_failures_ = nullptr;
  core::obs::CounterFamily* reloads_ = nullptr;
};

}  // namespace moat::egress

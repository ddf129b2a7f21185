// edge: active health checks of upstream members. One coroutine per member of every pool with a
// `health_check`, all on one worker's event loop: every `interval`, a TCP connect and
// `GET path HTTP/1.1` (Host, Connection: close) within `timeout`; the status must be in
// `expect_status`. `fall` consecutive failures mark the member down, `rise` consecutive successes
// up again (MemberState::set_up, read by every worker's balancer). Transitions are logged as one
// JSON line on stderr; metrics: moat_edge_upstream_up{pool,member},
// moat_edge_health_checks_total{pool,member,result}.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/obs/metrics.hpp"
#include "edge/config.hpp"

namespace asio {
class io_context;
}

namespace moat::edge {

class HealthChecker {
 public:
  // Checks run on `context` and write metric shard `shard` (the thread that runs `context`).
  HealthChecker(asio::io_context& context, core::obs::MetricsRegistry& metrics, std::size_t shard);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Checks the pools of `config` (their state attached, edge/balancer.hpp) from now on, and ends
  // the checks of the previous config. Callable from any thread: the work is posted to `context`.
  void start(std::shared_ptr<const EdgeConfig> config);
  // Ends every check at its next wake-up.
  void stop();

  struct Loop;  // one member's check loop (health.cpp)

 private:
  asio::io_context& context_;
  core::obs::MetricsRegistry& metrics_;
  std::size_t shard_;
  std::uint64_t generation_ = 0;  // only touched on context_'s thread
  core::obs::GaugeFamily* up_;
  core::obs::CounterFamily* checks_;
};

}  // namespace moat::edge

// edge: choosing an upstream member for a request, like a traffic manager: priority (failover in
// order), weighted (smooth weighted round-robin), performance (lowest moving-average first-byte
// time), round-robin and least-connections, among the members that are up (active health checks,
// edge/health.hpp) and not ejected (passive checks: consecutive failed attempts).
//
// State and threads: `up` is shared by every worker (written by the health checker, read by the
// workers: one relaxed atomic per member). Everything else (ejection, failure streak, active
// requests, latency average, round-robin position) is per worker, written only by that worker's
// thread: no lock and no allocation on the request path. So least-connections and performance
// balance each worker's own requests, and passive ejection is decided by each worker on its own
// failures (nginx does the same per worker process).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/obs/metrics.hpp"
#include "edge/config.hpp"

namespace moat::edge {

using BalancerClock = std::chrono::steady_clock;

// One worker's view of one member. Written only by that worker.
struct alignas(64) MemberWorkerState {
  BalancerClock::time_point ejected_until{};  // passive ejection: left out until then
  std::uint32_t failures = 0;                 // consecutive failed attempts
  std::uint32_t active = 0;                   // attempts in progress (least-connections)
  double latency_ms = -1;                     // EWMA of the first-byte time; < 0: never measured
  std::int64_t current_weight = 0;            // smooth weighted round-robin
  std::uint32_t recoveries_seen = 0;          // MemberState::recoveries() when last looked at
};

// One member's state. Lives as long as a config names the member: a reload that keeps a member
// (same pool name, same member text) keeps this object, so health, ejections and counts carry
// over.
class MemberState {
 public:
  MemberState(std::string pool, std::string member, std::size_t workers);

  const std::string& pool_name() const { return pool_; }
  const std::string& member_text() const { return member_; }

  bool up() const { return up_.load(std::memory_order_relaxed); }
  // Written by the health checker only. Each time the member comes back up, every worker forgets
  // its passive ejection, failure streak and latency average for it at its next pick: the
  // active check's newer verdict wins, and a recovered member is measured afresh.
  void set_up(bool up) {
    if (up && !up_.exchange(true, std::memory_order_relaxed)) {
      recoveries_.fetch_add(1, std::memory_order_relaxed);
    } else if (!up) {
      up_.store(false, std::memory_order_relaxed);
    }
  }
  std::uint32_t recoveries() const { return recoveries_.load(std::memory_order_relaxed); }
  MemberWorkerState& worker(std::size_t i) { return workers_[i]; }
  std::size_t worker_count() const { return worker_count_; }

  // Metric handles, obtained once when the state is made (default handles ignore updates).
  core::obs::CounterHandle ejections;

 private:
  std::string pool_;
  std::string member_;
  // Starts up: a member is used from the start, before its first check (as HAProxy does); the
  // retry on connect failure and passive ejection cover a member that is in fact down.
  std::atomic<bool> up_{true};
  std::atomic<std::uint32_t> recoveries_{0};
  std::size_t worker_count_;
  std::unique_ptr<MemberWorkerState[]> workers_;
};

// One worker's round-robin position in a pool.
struct alignas(64) PoolWorkerState {
  std::size_t next = 0;
  std::uint32_t picks = 0;  // performance: counts picks to explore now and then
};

// A pool's runtime state: one MemberState per member (parallel to Pool::members) and per-worker
// positions.
struct PoolState {
  PoolState(std::vector<std::shared_ptr<MemberState>> members, std::size_t workers);

  std::vector<std::shared_ptr<MemberState>> members;
  std::unique_ptr<PoolWorkerState[]> workers;
  std::size_t worker_count;
};

// Attaches a PoolState to every pool of `config`, reusing the MemberState of `previous` (may be
// null) for members that both name. `ejections` (may be null) provides the per-member counter.
void attach_pool_state(const EdgeConfig& config, const EdgeConfig* previous, std::size_t workers,
                       core::obs::CounterFamily* ejections);

// How one attempt on a member ended.
enum class AttemptOutcome : std::uint8_t {
  kOk,             // a response head arrived (any status: the upstream answered)
  kConnectFailed,  // refused, reset or unreachable before the request was sent
  kTimeout,        // connect or first-byte deadline
  kBadResponse,    // an invalid response head or framing, or closed without a response
  kInconclusive,   // says nothing about the member: a stale pooled connection, the client left
};

// The member for the next attempt on `pool` by `worker`, skipping members that are down, ejected
// until after `now`, or in `exclude` (members already tried for this request). nullptr: none is
// usable (the caller answers 503 with Retry-After). Never allocates. A pool without state (a
// config that was only checked) gives its first member not excluded.
const Member* pick(const Pool& pool, std::size_t worker, BalancerClock::time_point now,
                   std::span<const Member* const> exclude = {});

// An attempt begins (counts towards least-connections) and ends. on_attempt_end feeds the
// latency average (kOk) and the passive checks; it returns true when this failure ejected the
// member (counted in `MemberState::ejections`).
void on_attempt_start(const Pool& pool, const Member& member, std::size_t worker);
bool on_attempt_end(const Pool& pool, const Member& member, std::size_t worker,
                    AttemptOutcome outcome, std::chrono::microseconds first_byte_time,
                    BalancerClock::time_point now);

// One attempt of a stream on a member: on_attempt_start at construction, on_attempt_end at end();
// if end() is never called (the stream was dropped mid-way), kInconclusive at destruction, so
// the active count never leaks.
class Attempt {
 public:
  Attempt(const Pool& pool, const Member& member, std::size_t worker)
      : pool_(pool), member_(member), worker_(worker) {
    on_attempt_start(pool, member, worker);
  }
  ~Attempt() {
    if (!ended_) end(AttemptOutcome::kInconclusive);
  }
  Attempt(const Attempt&) = delete;
  Attempt& operator=(const Attempt&) = delete;

  void end(AttemptOutcome outcome, std::chrono::microseconds first_byte_time = {}) {
    if (ended_) return;
    ended_ = true;
    on_attempt_end(pool_, member_, worker_, outcome, first_byte_time, BalancerClock::now());
  }

 private:
  const Pool& pool_;
  const Member& member_;
  std::size_t worker_;
  bool ended_ = false;
};

// One JSON line on stderr for a member's state change: `event` "upstream_up", "upstream_down" or
// "upstream_ejected", with the pool, the member and why. Rare events: takes no lock of ours.
void log_member_event(std::string_view event, const std::string& pool, const std::string& member,
                      std::string_view reason);

// The weight of a new sample in the latency average.
inline constexpr double kLatencyEwmaWeight = 0.3;

}  // namespace moat::edge

#include "edge/balancer.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>

#include <fmt/format.h>

#include "core/obs/json_line.hpp"

namespace moat::edge {

namespace {

// performance: one pick in this many goes round-robin, so that a member whose average is stale
// (slow once, fast again) is measured again. The rest go to the fastest.
constexpr std::uint32_t kExploreEvery = 50;

struct Picker {
  const Pool& pool;
  PoolState* state;
  std::size_t worker;
  BalancerClock::time_point now;
  std::span<const Member* const> exclude;

  std::size_t size() const { return pool.members.size(); }

  bool usable(std::size_t i) const {
    const Member* m = &pool.members[i];
    for (const Member* e : exclude) {
      if (e == m) return false;
    }
    if (state == nullptr) return true;
    MemberState& s = *state->members[i];
    if (!s.up()) return false;
    MemberWorkerState& ws = s.worker(worker);
    if (ws.recoveries_seen != s.recoveries()) {
      ws.recoveries_seen = s.recoveries();
      ws.ejected_until = {};
      ws.failures = 0;
      ws.latency_ms = -1;
    }
    return ws.ejected_until <= now;
  }

  MemberWorkerState& w(std::size_t i) const { return state->members[i]->worker(worker); }
  std::size_t& next() const { return state->workers[worker].next; }

  const Member* at(std::size_t i) const { return i < size() ? &pool.members[i] : nullptr; }

  // Each usable member in turn, from the worker's position.
  std::size_t round_robin() const {
    const std::size_t n = size();
    for (std::size_t k = 0; k < n; ++k) {
      std::size_t i = (next() + k) % n;
      if (usable(i)) {
        next() = i + 1;
        return i;
      }
    }
    return n;
  }

  // nginx's smooth weighted round-robin (ngx_http_upstream_get_peer): every candidate gains its
  // weight, the richest is chosen and pays the total. Weights 5:1:1 give a a b a c a a, not
  // a a a a a b c. Only the usable members (priority: of the best level) take part.
  template <typename Eligible>
  std::size_t smooth_weighted(Eligible eligible) const {
    std::int64_t total = 0;
    std::size_t best = size();
    for (std::size_t i = 0; i < size(); ++i) {
      if (!eligible(i)) continue;
      MemberWorkerState& s = w(i);
      s.current_weight += pool.members[i].weight;
      total += pool.members[i].weight;
      if (best == size() || s.current_weight > w(best).current_weight) best = i;
    }
    if (best != size()) w(best).current_weight -= total;
    return best;
  }

  std::size_t priority() const {
    std::uint32_t level = std::numeric_limits<std::uint32_t>::max();
    for (std::size_t i = 0; i < size(); ++i) {
      if (usable(i)) level = std::min(level, pool.members[i].priority);
    }
    return smooth_weighted(
        [&](std::size_t i) { return pool.members[i].priority == level && usable(i); });
  }

  // The fewest active attempts per unit of weight (a/wa < b/wb as a*wb < b*wa); ties go in turn.
  std::size_t least_connections() const {
    const std::size_t n = size();
    std::size_t best = n;
    for (std::size_t k = 0; k < n; ++k) {
      std::size_t i = (next() + k) % n;
      if (!usable(i)) continue;
      if (best == n || std::uint64_t{w(i).active} * pool.members[best].weight <
                           std::uint64_t{w(best).active} * pool.members[i].weight) {
        best = i;
      }
    }
    if (best != n) next() = best + 1;
    return best;
  }

  // Never measured first (in turn); then the lowest latency average, scaled by the requests in
  // progress so that a burst does not all land on one member (as nginx's least_time).
  std::size_t performance() const {
    const std::size_t n = size();
    if (++state->workers[worker].picks % kExploreEvery == 0) return round_robin();
    std::size_t best = n;
    double best_score = 0;
    for (std::size_t k = 0; k < n; ++k) {
      std::size_t i = (next() + k) % n;
      if (!usable(i)) continue;
      const MemberWorkerState& s = w(i);
      if (s.latency_ms < 0) {
        next() = i + 1;
        return i;
      }
      double score = s.latency_ms * (1.0 + s.active);
      if (best == n || score < best_score) {
        best = i;
        best_score = score;
      }
    }
    return best;
  }
};

}  // namespace

void log_member_event(std::string_view event, const std::string& pool, const std::string& member,
                      std::string_view reason) {
  core::obs::JsonLine line(256);
  line.add_timestamp("time", std::chrono::system_clock::now())
      .add("event", event)
      .add("pool", pool)
      .add("member", member)
      .add("reason", reason);
  std::string out(line.view());
  out += '\n';
  std::fwrite(out.data(), 1, out.size(), stderr);  // one write: lines never interleave
}

MemberState::MemberState(std::string pool, std::string member, std::size_t workers)
    : pool_(std::move(pool)),
      member_(std::move(member)),
      worker_count_(workers),
      workers_(std::make_unique<MemberWorkerState[]>(workers)) {}

PoolState::PoolState(std::vector<std::shared_ptr<MemberState>> m, std::size_t count)
    : members(std::move(m)),
      workers(std::make_unique<PoolWorkerState[]>(count)),
      worker_count(count) {}

void attach_pool_state(const EdgeConfig& config, const EdgeConfig* previous, std::size_t workers,
                       core::obs::CounterFamily* ejections) {
  for (const Pool& pool : config.pools) {
    const Pool* old = nullptr;
    if (previous != nullptr) {
      for (const Pool& p : previous->pools) {
        if (p.name == pool.name && p.state && p.state->worker_count == workers) old = &p;
      }
    }
    std::vector<std::shared_ptr<MemberState>> members;
    members.reserve(pool.members.size());
    for (const Member& m : pool.members) {
      std::shared_ptr<MemberState> state;
      if (old != nullptr) {
        for (std::size_t i = 0; i < old->members.size(); ++i) {
          if (old->members[i].text == m.text) state = old->state->members[i];
        }
      }
      if (!state) {
        state = std::make_shared<MemberState>(pool.name, m.text, workers);
        if (ejections != nullptr) state->ejections = ejections->labels({pool.name, m.text});
      }
      members.push_back(std::move(state));
    }
    pool.state = std::make_shared<PoolState>(std::move(members), workers);
  }
}

const Member* pick(const Pool& pool, std::size_t worker, BalancerClock::time_point now,
                   std::span<const Member* const> exclude) {
  PoolState* state = pool.state.get();
  if (state != nullptr && worker >= state->worker_count) state = nullptr;
  Picker p{pool, state, worker, now, exclude};
  if (state == nullptr) {
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (p.usable(i)) return &pool.members[i];
    }
    return nullptr;
  }
  switch (pool.method) {
    case BalanceMethod::kRoundRobin:
      return p.at(p.round_robin());
    case BalanceMethod::kPriority:
      return p.at(p.priority());
    case BalanceMethod::kWeighted:
      return p.at(p.smooth_weighted([&](std::size_t i) { return p.usable(i); }));
    case BalanceMethod::kPerformance:
      return p.at(p.performance());
    case BalanceMethod::kLeastConnections:
      return p.at(p.least_connections());
  }
  return nullptr;
}

namespace {
MemberState* state_of(const Pool& pool, const Member& member, std::size_t worker) {
  if (!pool.state || worker >= pool.state->worker_count) return nullptr;
  const std::size_t i = static_cast<std::size_t>(&member - pool.members.data());
  if (i >= pool.members.size()) return nullptr;
  return pool.state->members[i].get();
}
}  // namespace

void on_attempt_start(const Pool& pool, const Member& member, std::size_t worker) {
  if (MemberState* s = state_of(pool, member, worker)) ++s->worker(worker).active;
}

bool on_attempt_end(const Pool& pool, const Member& member, std::size_t worker,
                    AttemptOutcome outcome, std::chrono::microseconds first_byte_time,
                    BalancerClock::time_point now) {
  MemberState* s = state_of(pool, member, worker);
  if (s == nullptr) return false;
  MemberWorkerState& w = s->worker(worker);
  if (w.active > 0) --w.active;
  switch (outcome) {
    case AttemptOutcome::kOk: {
      w.failures = 0;
      const double sample = static_cast<double>(first_byte_time.count()) / 1000.0;
      w.latency_ms =
          w.latency_ms < 0 ? sample : w.latency_ms + kLatencyEwmaWeight * (sample - w.latency_ms);
      return false;
    }
    case AttemptOutcome::kInconclusive:
      return false;
    case AttemptOutcome::kConnectFailed:
    case AttemptOutcome::kTimeout:
    case AttemptOutcome::kBadResponse:
      break;
  }
  // A lone member is never ejected (as nginx): there is nowhere else to send the request, and a
  // 503 for fail_timeout would outlast a brief restart of the member.
  if (pool.passive.max_fails == 0 || pool.members.size() == 1) return false;
  // The streak is not reset by an ejection: after fail_timeout the member gets one attempt, and
  // one more failure ejects it again (nginx); a success clears the streak.
  if (++w.failures < pool.passive.max_fails) return false;
  w.ejected_until = now + pool.passive.fail_timeout;
  s->ejections.inc(worker);
  log_member_event("upstream_ejected", pool.name, member.text,
                   fmt::format("{} consecutive failures on worker {}; left out for {} ms",
                               w.failures, worker, pool.passive.fail_timeout.count()));
  return true;
}

}  // namespace moat::edge

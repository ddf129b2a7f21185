#include "edge/balancer.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace moat::edge {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t kWorker = 0;

// A config with one pool "p" of the given members and method, state attached for 2 workers.
struct Fixture {
  EdgeConfig config;
  BalancerClock::time_point now = BalancerClock::time_point{} + 1h;

  Fixture(BalanceMethod method, std::vector<std::uint32_t> weights,
          std::vector<std::uint32_t> priorities = {}) {
    Pool p;
    p.name = "p";
    p.method = method;
    for (std::size_t i = 0; i < weights.size(); ++i) {
      Member m;
      m.text = "127.0.0.1:" + std::to_string(9000 + i);
      m.port = static_cast<std::uint16_t>(9000 + i);
      m.weight = weights[i];
      m.priority = priorities.empty() ? static_cast<std::uint32_t>(i + 1) : priorities[i];
      p.members.push_back(m);
    }
    config.pools.push_back(std::move(p));
    attach_pool_state(config, nullptr, 2, nullptr);
  }

  const Pool& pool() const { return config.pools.front(); }
  MemberState& state(std::size_t i) { return *pool().state->members[i]; }
  std::size_t index(const Member* m) const {
    return m == nullptr ? 99 : static_cast<std::size_t>(m - pool().members.data());
  }
  std::size_t pick_index(std::span<const Member* const> exclude = {}) {
    return index(pick(pool(), kWorker, now, exclude));
  }
  // Counts over `n` picks, each attempt ending at once with `ok` and 1 ms.
  std::map<std::size_t, int> distribution(int n) {
    std::map<std::size_t, int> counts;
    for (int i = 0; i < n; ++i) {
      const Member* m = pick(pool(), kWorker, now);
      ++counts[index(m)];
      if (m != nullptr) {
        on_attempt_start(pool(), *m, kWorker);
        on_attempt_end(pool(), *m, kWorker, AttemptOutcome::kOk, 1000us, now);
      }
    }
    return counts;
  }
  void fail(std::size_t i, int times, AttemptOutcome outcome = AttemptOutcome::kConnectFailed) {
    for (int k = 0; k < times; ++k) {
      on_attempt_start(pool(), pool().members[i], kWorker);
      on_attempt_end(pool(), pool().members[i], kWorker, outcome, 0us, now);
    }
  }
};

TEST(Balancer, RoundRobinAlternates) {
  Fixture f(BalanceMethod::kRoundRobin, {1, 5, 1});  // weights are ignored by round-robin
  std::vector<std::size_t> order;
  for (int i = 0; i < 6; ++i) order.push_back(f.pick_index());
  EXPECT_EQ(order, (std::vector<std::size_t>{0, 1, 2, 0, 1, 2}));
  auto counts = f.distribution(999);
  EXPECT_EQ(counts[0], 333);
  EXPECT_EQ(counts[1], 333);
  EXPECT_EQ(counts[2], 333);
}

TEST(Balancer, RoundRobinSkipsDownMembers) {
  Fixture f(BalanceMethod::kRoundRobin, {1, 1, 1});
  f.state(1).set_up(false);
  auto counts = f.distribution(1000);
  EXPECT_EQ(counts[0], 500);
  EXPECT_EQ(counts[1], 0);
  EXPECT_EQ(counts[2], 500);
}

TEST(Balancer, SmoothWeightedThreeToOne) {
  Fixture f(BalanceMethod::kWeighted, {3, 1});
  auto counts = f.distribution(1000);
  EXPECT_EQ(counts[0], 750);
  EXPECT_EQ(counts[1], 250);
}

TEST(Balancer, SmoothWeightedInterleaves) {
  // nginx's example: 5:1:1 gives a a b a c a a (never five a in a row).
  Fixture f(BalanceMethod::kWeighted, {5, 1, 1});
  std::string seq;
  for (int i = 0; i < 7; ++i) seq += static_cast<char>('a' + f.pick_index());
  EXPECT_EQ(seq, "aabacaa");
}

TEST(Balancer, PriorityFailoverAndRecovery) {
  Fixture f(BalanceMethod::kPriority, {1, 1, 1});
  EXPECT_EQ(f.distribution(1000)[0], 1000);  // all on the primary
  f.state(0).set_up(false);
  EXPECT_EQ(f.distribution(1000)[1], 1000);  // failover to the second, in order
  f.state(1).set_up(false);
  EXPECT_EQ(f.distribution(1000)[2], 1000);
  f.state(0).set_up(true);
  EXPECT_EQ(f.distribution(1000)[0], 1000);  // the primary is back: traffic returns
  f.state(0).set_up(false);
  f.state(2).set_up(false);
  EXPECT_EQ(f.pick_index(), 99u);  // none usable: nullptr
}

TEST(Balancer, PriorityLevelsShareByWeight) {
  // Explicit priorities: two members at level 1 split by weight, the level-2 member is a spare.
  Fixture f(BalanceMethod::kPriority, {3, 1, 1}, {1, 1, 2});
  auto counts = f.distribution(1000);
  EXPECT_EQ(counts[0], 750);
  EXPECT_EQ(counts[1], 250);
  EXPECT_EQ(counts[2], 0);
}

TEST(Balancer, PassiveEjectionAndExpiry) {
  Fixture f(BalanceMethod::kPriority, {1, 1});  // max_fails 3, fail_timeout 10 s
  f.fail(0, 2);
  EXPECT_EQ(f.pick_index(), 0u);  // two failures: still in
  on_attempt_start(f.pool(), f.pool().members[0], kWorker);
  EXPECT_TRUE(
      on_attempt_end(f.pool(), f.pool().members[0], kWorker, AttemptOutcome::kTimeout, 0us, f.now));
  EXPECT_EQ(f.pick_index(), 1u);                              // ejected
  EXPECT_EQ(pick(f.pool(), 1, f.now), &f.pool().members[0]);  // per worker: worker 1 still uses it
  f.now += 9s;
  EXPECT_EQ(f.pick_index(), 1u);
  f.now += 1s;
  EXPECT_EQ(f.pick_index(), 0u);  // fail_timeout over: tried again
  // One more failure ejects it again at once; a success clears the streak.
  f.fail(0, 1);
  EXPECT_EQ(f.pick_index(), 1u);
  f.now += 10s;
  f.distribution(1);
  f.fail(0, 2);
  EXPECT_EQ(f.pick_index(), 0u);
}

TEST(Balancer, InconclusiveAndSuccessDoNotEject) {
  Fixture f(BalanceMethod::kPriority, {1, 1});
  f.fail(0, 10, AttemptOutcome::kInconclusive);
  EXPECT_EQ(f.pick_index(), 0u);
  f.fail(0, 2);
  f.distribution(1);  // success on 0 resets the streak
  f.fail(0, 2);
  EXPECT_EQ(f.pick_index(), 0u);
}

TEST(Balancer, PassiveChecksCanBeOff) {
  Fixture f(BalanceMethod::kPriority, {1, 1});
  f.config.pools.front().passive.max_fails = 0;
  f.fail(0, 100);
  EXPECT_EQ(f.pick_index(), 0u);
}

TEST(Balancer, LoneMemberIsNeverEjected) {
  Fixture f(BalanceMethod::kRoundRobin, {1});
  f.fail(0, 10);
  EXPECT_EQ(f.pick_index(), 0u);
  f.state(0).set_up(false);  // active checks still apply
  EXPECT_EQ(f.pick_index(), 99u);
}

TEST(Balancer, RecoveryByActiveCheckClearsEjection) {
  Fixture f(BalanceMethod::kPriority, {1, 1});
  f.fail(0, 3);
  EXPECT_EQ(f.pick_index(), 1u);
  f.state(0).set_up(false);
  f.state(0).set_up(true);  // the health checker saw it come back
  EXPECT_EQ(f.pick_index(), 0u);
}

TEST(Balancer, AllDownGivesNull) {
  Fixture f(BalanceMethod::kWeighted, {1, 1});
  f.fail(0, 3);
  f.state(1).set_up(false);
  EXPECT_EQ(f.pick_index(), 99u);
  auto counts = f.distribution(10);
  EXPECT_EQ(counts[99], 10);
}

TEST(Balancer, ExcludeSkipsTriedMembers) {
  for (auto method :
       {BalanceMethod::kRoundRobin, BalanceMethod::kPriority, BalanceMethod::kWeighted,
        BalanceMethod::kPerformance, BalanceMethod::kLeastConnections}) {
    Fixture f(method, {1, 1});
    const Member* first = &f.pool().members[0];
    for (int i = 0; i < 20; ++i) {
      EXPECT_EQ(f.pick_index(std::span<const Member* const>(&first, 1)), 1u) << method_name(method);
    }
    const Member* both[] = {&f.pool().members[0], &f.pool().members[1]};
    EXPECT_EQ(f.pick_index(both), 99u) << method_name(method);
  }
}

TEST(Balancer, PerformancePicksLowestAverage) {
  Fixture f(BalanceMethod::kPerformance, {1, 1, 1});
  // Never measured members are tried first, each once.
  std::vector<std::size_t> first;
  for (int i = 0; i < 3; ++i) {
    std::size_t m = f.pick_index();
    first.push_back(m);
    const auto latency = std::chrono::microseconds(m == 1 ? 2'000 : 20'000);
    on_attempt_start(f.pool(), f.pool().members[m], kWorker);
    on_attempt_end(f.pool(), f.pool().members[m], kWorker, AttemptOutcome::kOk, latency, f.now);
  }
  std::sort(first.begin(), first.end());
  EXPECT_EQ(first, (std::vector<std::size_t>{0, 1, 2}));
  std::map<std::size_t, int> counts;
  for (int i = 0; i < 1000; ++i) {
    std::size_t m = f.pick_index();
    ++counts[m];
    const auto latency = std::chrono::microseconds(m == 1 ? 2'000 : 20'000);
    on_attempt_start(f.pool(), f.pool().members[m], kWorker);
    on_attempt_end(f.pool(), f.pool().members[m], kWorker, AttemptOutcome::kOk, latency, f.now);
  }
  // All but the exploration picks (1 in 50, spread round-robin) go to the fastest.
  EXPECT_GE(counts[1], 980);
  EXPECT_GT(counts[0], 0);  // the slower ones are still measured now and then
  EXPECT_GT(counts[2], 0);
}

TEST(Balancer, PerformanceFollowsAChangeOfLatency) {
  Fixture f(BalanceMethod::kPerformance, {1, 1});
  auto run = [&](std::chrono::microseconds a, std::chrono::microseconds b) {
    std::map<std::size_t, int> counts;
    for (int i = 0; i < 1000; ++i) {
      std::size_t m = f.pick_index();
      ++counts[m];
      on_attempt_start(f.pool(), f.pool().members[m], kWorker);
      on_attempt_end(f.pool(), f.pool().members[m], kWorker, AttemptOutcome::kOk, m == 0 ? a : b,
                     f.now);
    }
    return counts;
  };
  EXPECT_GE(run(1000us, 5000us)[0], 970);
  EXPECT_GE(run(50'000us, 5000us)[1], 970);  // member 0 got slow: traffic moves to 1
}

TEST(Balancer, LeastConnections) {
  Fixture f(BalanceMethod::kLeastConnections, {1, 1, 1});
  // Three attempts in progress spread over the three members; then the one that finishes first
  // gets the next.
  std::vector<const Member*> open;
  for (int i = 0; i < 3; ++i) {
    const Member* m = pick(f.pool(), kWorker, f.now);
    on_attempt_start(f.pool(), *m, kWorker);
    open.push_back(m);
  }
  EXPECT_NE(open[0], open[1]);
  EXPECT_NE(open[1], open[2]);
  EXPECT_NE(open[0], open[2]);
  on_attempt_end(f.pool(), *open[1], kWorker, AttemptOutcome::kOk, 1000us, f.now);
  EXPECT_EQ(pick(f.pool(), kWorker, f.now), open[1]);
  EXPECT_EQ(pick(f.pool(), kWorker, f.now), open[1]);  // still the only one with 0 active
  // Over 1000 picks with member 2 holding 5 long attempts, 0 and 1 share the traffic.
  for (auto* m : open) {
    if (m != open[1]) on_attempt_end(f.pool(), *m, kWorker, AttemptOutcome::kOk, 1000us, f.now);
  }
  for (int i = 0; i < 5; ++i) on_attempt_start(f.pool(), f.pool().members[2], kWorker);
  auto counts = f.distribution(1000);
  EXPECT_EQ(counts[0], 500);
  EXPECT_EQ(counts[1], 500);
  EXPECT_EQ(counts[2], 0);
}

TEST(Balancer, LeastConnectionsPerWeight) {
  Fixture f(BalanceMethod::kLeastConnections, {3, 1});
  // Hold every attempt open: the split follows the weights, 3 active on member 0 for 1 on 1.
  std::map<std::size_t, int> counts;
  for (int i = 0; i < 400; ++i) {
    const Member* m = pick(f.pool(), kWorker, f.now);
    on_attempt_start(f.pool(), *m, kWorker);
    ++counts[f.index(m)];
  }
  EXPECT_EQ(counts[0], 300);
  EXPECT_EQ(counts[1], 100);
}

TEST(Balancer, StateSurvivesReload) {
  Fixture f(BalanceMethod::kPriority, {1, 1});
  f.state(0).set_up(false);
  EdgeConfig next;
  Pool p = f.pool();
  p.state.reset();
  std::swap(p.members[0], p.members[1]);  // same members, other order
  next.pools.push_back(p);
  attach_pool_state(next, &f.config, 2, nullptr);
  const Pool& np = next.pools.front();
  EXPECT_EQ(np.state->members[1].get(), f.pool().state->members[0].get());
  EXPECT_FALSE(np.state->members[1]->up());
  EXPECT_EQ(pick(np, kWorker, f.now), &np.members[0]);
}

TEST(Balancer, NoStateGivesFirstMember) {
  EdgeConfig c;
  Pool p;
  p.members.resize(2);
  c.pools.push_back(p);
  EXPECT_EQ(pick(c.pools[0], 0, BalancerClock::now()), &c.pools[0].members[0]);
}

}  // namespace
}  // namespace moat::edge

#include <gtest/gtest.h>

#include "edge/overload.hpp"
#include "core/net/address.hpp"
#include "edge/config.hpp"
#include "edge/route_limiter.hpp"

namespace moat::edge {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

core::guard::ClientKey client(std::uint8_t last) {
  core::net::IpAddress a = *core::net::parse_ip_strict("192.0.2." + std::to_string(last));
  return core::guard::ClientKey::from(a, 32, 64);
}

TEST(LagDetector, OneLateTickIsNotOverload) {
  LagDetector lag;
  Clock::time_point t{};
  EXPECT_FALSE(lag.observe(t, t + 900ms, 200ms));  // one stall
  EXPECT_EQ(lag.last_lag(), 900ms);
  EXPECT_FALSE(lag.observe(t + 1s, t + 1s + 5ms, 200ms));
  EXPECT_FALSE(lag.overloaded());
}

TEST(LagDetector, LateTicksInARowAreOverloadAndOnTimeTicksEndIt) {
  LagDetector lag;
  Clock::time_point t{};
  EXPECT_FALSE(lag.observe(t, t + 300ms, 200ms));
  EXPECT_TRUE(lag.observe(t + 400ms, t + 700ms, 200ms));
  EXPECT_TRUE(lag.observe(t + 800ms, t + 800ms, 200ms));  // one on time: still overloaded
  EXPECT_TRUE(lag.observe(t + 900ms, t + 1200ms, 200ms));  // late again: the streak restarts
  EXPECT_TRUE(lag.observe(t + 1300ms, t + 1300ms, 200ms));
  EXPECT_FALSE(lag.observe(t + 1400ms, t + 1401ms, 200ms));
}

TEST(LagDetector, ThresholdZeroIsOff) {
  LagDetector lag;
  Clock::time_point t{};
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(lag.observe(t, t + 10s, 0ms));
}

TEST(LagDetector, EarlyWakeIsNoLag) {
  LagDetector lag;
  Clock::time_point t = Clock::time_point{} + 1s;
  lag.observe(t, t - 5ms, 200ms);
  EXPECT_EQ(lag.last_lag(), 0ms);
}

TEST(ResidentBytes, ReadsProcSelfStatm) { EXPECT_GT(resident_bytes(), 1024u * 1024u); }

TEST(RouteLimiter, BurstThenRetryAfterThenRefill) {
  RouteLimiter limiter(1000);
  Clock::time_point t = Clock::time_point{} + 1h;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter.take(7, client(1), 1, 3, t), 0);
  EXPECT_EQ(limiter.take(7, client(1), 1, 3, t), 1);
  EXPECT_EQ(limiter.take(7, client(1), 1, 3, t + 1s), 0);  // one token a second
  EXPECT_EQ(limiter.take(7, client(1), 0.25, 3, t + 1s), 4);  // a reload lowered the rate
}

TEST(RouteLimiter, RoutesAndClientsHaveTheirOwnBuckets) {
  RouteLimiter limiter(1000);
  Clock::time_point t = Clock::time_point{} + 1h;
  EXPECT_EQ(limiter.take(1, client(1), 1, 1, t), 0);
  EXPECT_NE(limiter.take(1, client(1), 1, 1, t), 0);
  EXPECT_EQ(limiter.take(2, client(1), 1, 1, t), 0);  // another route
  EXPECT_EQ(limiter.take(1, client(2), 1, 1, t), 0);  // another client
}

TEST(RouteLimiter, BoundedTablePrefersRefilledVictims) {
  // One shard of kProbe slots: a full table evicts, and a refilled bucket goes first.
  RouteLimiter limiter(RouteLimiter::kProbe, 1);
  Clock::time_point t = Clock::time_point{} + 1h;
  for (std::uint8_t c = 0; c < 64; ++c) limiter.take(1, client(c), 1, 1, t);
  EXPECT_GT(limiter.evictions(), 0u);
  // Every bucket refilled after a second: new clients evict nothing that mattered.
  const std::size_t before = limiter.evictions();
  for (std::uint8_t c = 64; c < 72; ++c) EXPECT_EQ(limiter.take(1, client(c), 1, 1, t + 2s), 0);
  EXPECT_EQ(limiter.evictions(), before);
}

const std::string kHead = "moat: gateway/v1\nedge:\n  listen_https: [127.0.0.1:8443]\n"
                          "  certificates: [{cert: a.crt, key: a.key}]\n"
                          "  pools: [{name: app, members: [\"127.0.0.1:9000\"]}]\n";

std::string errors(const EdgeConfigLoad& l) {
  std::string out;
  for (const auto& d : l.diagnostics) out += core::config::format(d) + "\n";
  return out;
}

TEST(DefenceConfig, DefaultsAndKeys) {
  auto l = load_edge_config_text(
      kHead +
          "  routes:\n"
          "    - {path_prefix: /login, pool: app, rate_limit: {requests_per_second: 5}}\n"
          "    - {pool: app}\n"
          "  limits: {send_timeout: 30s, min_body_rate: 2KiB/s, body_rate_grace: 3s,\n"
          "           overload_lag: 200ms, overload_memory: 2GiB}\n",
      "edge.yaml", "/etc/moat");
  ASSERT_TRUE(l.config) << errors(l);
  const auto& c = *l.config;
  EXPECT_EQ(c.routes[0].requests_per_second, 5);
  EXPECT_EQ(c.routes[0].burst, 10);  // twice the rate
  EXPECT_EQ(c.routes[1].requests_per_second, 0);
  EXPECT_NE(c.routes[0].limit_id, c.routes[1].limit_id);
  EXPECT_EQ(c.limits.send_timeout, std::chrono::milliseconds(30'000));
  EXPECT_EQ(c.limits.min_body_rate, 2048u);
  EXPECT_EQ(c.limits.body_rate_grace, std::chrono::milliseconds(3'000));
  EXPECT_EQ(c.limits.overload_lag, std::chrono::milliseconds(200));
  EXPECT_EQ(c.limits.overload_memory, 2ULL << 30);

  auto d = load_edge_config_text(kHead + "  routes: [{pool: app}]\n", "edge.yaml", "/etc/moat");
  ASSERT_TRUE(d.config) << errors(d);
  EXPECT_EQ(d.config->limits.send_timeout, std::chrono::milliseconds(60'000));
  EXPECT_EQ(d.config->limits.min_body_rate, 1024u);
  EXPECT_EQ(d.config->limits.overload_memory, 0u);
}

TEST(DefenceConfig, BadValuesAreLocated) {
  auto l = load_edge_config_text(
      kHead + "  routes: [{pool: app, rate_limit: {requests_per_second: 0}}]\n"
              "  limits: {min_body_rate: fast}\n",
      "edge.yaml", "/etc/moat");
  EXPECT_FALSE(l.config);
  EXPECT_NE(errors(l).find("requests_per_second must be more than zero"), std::string::npos)
      << errors(l);
  EXPECT_NE(errors(l).find("edge.yaml:7:27: error: min_body_rate 'fast' is not a rate"),
            std::string::npos)
      << errors(l);
}

}  // namespace
}  // namespace moat::edge

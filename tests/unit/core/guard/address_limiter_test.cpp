#include "core/guard/address_limiter.hpp"

#include <gtest/gtest.h>

namespace moat::core::guard {
namespace {

using namespace std::chrono_literals;

const TimePoint t0 = TimePoint{} + 1000s;

ClientKey key(std::uint32_t v4) { return ClientKey::from(net::IpAddress::v4(v4)); }

LimiterSettings small() {
  LimiterSettings s;
  s.max_connections_per_client = 2;
  s.handshakes_per_second = 1;
  s.handshake_burst = 2;
  s.requests_per_second = 10;
  s.request_burst = 3;
  s.ban_after_trips = 3;
  s.ban_window = 10s;
  s.ban_time = 1s;
  s.ban_time_max = 4s;
  s.idle_expiry = 60s;
  return s;
}

TEST(AddressLimiter, CapsOpenConnectionsPerPrefix) {
  AddressLimiter l(small());
  const auto a = key(0x0a000001), a2 = key(0x0a0000fe), b = key(0x0a000101);
  EXPECT_EQ(a, a2);  // one /24
  EXPECT_TRUE(l.open_connection(a, t0).allowed());
  EXPECT_TRUE(l.open_connection(a2, t0).allowed());
  EXPECT_EQ(l.open_connection(a, t0).verdict, Verdict::kConnectionsPerClient);
  EXPECT_TRUE(l.open_connection(b, t0).allowed());  // another /24
  l.close_connection(a, t0);
  EXPECT_TRUE(l.open_connection(a, t0).allowed());
  EXPECT_EQ(l.inspect(a, t0)->open, 2u);
}

TEST(AddressLimiter, HandshakeBudget) {
  AddressLimiter l(small());
  const auto a = key(0x0a000001);
  EXPECT_TRUE(l.handshake(a, t0).allowed());
  EXPECT_TRUE(l.handshake(a, t0).allowed());
  EXPECT_EQ(l.handshake(a, t0).verdict, Verdict::kHandshakes);
  EXPECT_TRUE(l.handshake(a, t0 + 1s).allowed());
  EXPECT_TRUE(l.handshake(key(0x0b000001), t0).allowed());
}

TEST(AddressLimiter, RequestBudgetWithRetryAfter) {
  AddressLimiter l(small());
  const auto a = key(0x0a000001);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(l.request(a, t0).allowed());
  Decision d = l.request(a, t0);
  EXPECT_EQ(d.verdict, Verdict::kRequests);
  EXPECT_EQ(d.retry_after, 1s);
  EXPECT_TRUE(l.request(a, t0 + 100ms).allowed());
}

TEST(AddressLimiter, EscalatingBansDoubleUpToTheMaximum) {
  AddressLimiter l(small());
  const auto a = key(0x0a000001);
  TimePoint now = t0;
  auto trip_until_banned = [&] {
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(l.request(a, now).allowed());
    EXPECT_FALSE(l.request(a, now).banned_now);
    EXPECT_FALSE(l.request(a, now).banned_now);
    Decision d = l.request(a, now);
    EXPECT_EQ(d.verdict, Verdict::kRequests);
    EXPECT_TRUE(d.banned_now);
  };
  trip_until_banned();
  EXPECT_EQ(l.open_connection(a, now).verdict, Verdict::kBanned);
  EXPECT_EQ(l.handshake(a, now + 999ms).verdict, Verdict::kBanned);
  now += 1s;  // first ban: 1 s
  EXPECT_TRUE(l.open_connection(a, now).allowed());
  now += 1s;  // the bucket refilled
  trip_until_banned();
  EXPECT_EQ(l.request(a, now + 1999ms).verdict, Verdict::kBanned);  // second ban: 2 s
  now += 2s;
  now += 1s;
  trip_until_banned();
  Decision d = l.request(a, now + 3s);
  EXPECT_EQ(d.verdict, Verdict::kBanned);  // third ban: 4 s
  EXPECT_EQ(d.retry_after, 1s);
  now += 4s;
  now += 1s;
  trip_until_banned();
  EXPECT_EQ(l.request(a, now + 3999ms).verdict, Verdict::kBanned);  // capped at 4 s
  EXPECT_TRUE(l.open_connection(a, now + 4s).allowed());
  EXPECT_EQ(l.inspect(a, now)->bans, 4u);
  // After ban_time_max of good conduct, the next ban is short again.
  now += 4s + 4s + 1s;
  trip_until_banned();
  EXPECT_TRUE(l.request(a, now + 1s).allowed());
}

TEST(AddressLimiter, TripsOutsideTheWindowDoNotAddUp) {
  AddressLimiter l(small());
  const auto a = key(0x0a000001);
  TimePoint now = t0;
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 2; ++i) l.open_connection(a, now);
    EXPECT_EQ(l.open_connection(a, now).verdict, Verdict::kConnectionsPerClient);
    EXPECT_EQ(l.open_connection(a, now).verdict, Verdict::kConnectionsPerClient);
    for (int i = 0; i < 2; ++i) l.close_connection(a, now);
    now += 11s;  // the window (10 s) passes
  }
  EXPECT_EQ(l.inspect(a, now)->bans, 0u);
}

TEST(AddressLimiter, BoundedTableEvictsTheStalestIdleEntry) {
  LimiterSettings s = small();
  s.max_clients = 4;
  AddressLimiter l(s, 1);
  const auto busy = key(0x01000001);
  ASSERT_TRUE(l.open_connection(busy, t0).allowed());  // the stalest, but it has a connection
  for (std::uint32_t i = 2; i <= 10; ++i) {
    l.request(key(i << 24), t0 + std::chrono::seconds(i));
    EXPECT_LE(l.size(), 4u);
  }
  EXPECT_TRUE(l.inspect(busy, t0 + 20s).has_value());
  EXPECT_EQ(l.inspect(busy, t0 + 20s)->open, 1u);
  EXPECT_GE(l.evictions(), 6u);
}

TEST(AddressLimiter, IdleEntriesExpire) {
  LimiterSettings s = small();
  s.max_clients = 100;
  AddressLimiter l(s, 1);
  l.request(key(0x01000001), t0);
  l.request(key(0x02000001), t0 + 1s);
  EXPECT_EQ(l.size(), 2u);
  l.request(key(0x03000001), t0 + 2min);
  EXPECT_EQ(l.size(), 1u);
  EXPECT_EQ(l.evictions(), 0u);
}

TEST(AddressLimiter, ZeroDisablesALimit) {
  LimiterSettings s;
  s.max_connections_per_client = 0;
  s.handshakes_per_second = 0;
  s.requests_per_second = 0;
  s.ban_after_trips = 0;
  AddressLimiter l(s);
  const auto a = key(0x0a000001);
  for (int i = 0; i < 10'000; ++i) {
    ASSERT_TRUE(l.open_connection(a, t0).allowed());
    ASSERT_TRUE(l.handshake(a, t0).allowed());
    ASSERT_TRUE(l.request(a, t0).allowed());
  }
}

TEST(AddressLimiter, ReconfigureAppliesToExistingEntries) {
  AddressLimiter l(small());
  const auto a = key(0x0a000001);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(l.request(a, t0).allowed());
  EXPECT_FALSE(l.request(a, t0).allowed());
  LimiterSettings s = small();
  s.requests_per_second = 1000;
  l.configure(s);
  EXPECT_TRUE(l.request(a, t0 + 10ms).allowed());
}

}  // namespace
}  // namespace moat::core::guard

#include "core/guard/token_bucket.hpp"

#include <gtest/gtest.h>

namespace moat::core::guard {
namespace {

using namespace std::chrono_literals;

const TimePoint t0 = TimePoint{} + 1000s;

TEST(TokenBucket, StartsFullThenRefusesOverBurst) {
  TokenBucket b(10, 5);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.take(t0)) << i;
  EXPECT_FALSE(b.take(t0));
  EXPECT_EQ(b.retry_after(t0), 1s);  // 0.1 s rounded up
}

TEST(TokenBucket, RefillsAtTheRateUpToTheBurst) {
  TokenBucket b(10, 5);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(b.take(t0));
  EXPECT_FALSE(b.take(t0 + 50ms));
  EXPECT_TRUE(b.take(t0 + 100ms));  // one token per 100 ms
  EXPECT_FALSE(b.take(t0 + 150ms));
  EXPECT_NEAR(b.tokens(t0 + 1h), 5.0, 1e-9);  // never more than the burst
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.take(t0 + 1h)) << i;
  EXPECT_FALSE(b.take(t0 + 1h));
}

TEST(TokenBucket, RetryAfterRoundsUpToWholeSeconds) {
  TokenBucket b(0.25, 1);  // one token every 4 s
  EXPECT_EQ(b.retry_after(t0), 0s);
  ASSERT_TRUE(b.take(t0));
  EXPECT_EQ(b.retry_after(t0), 4s);
  EXPECT_EQ(b.retry_after(t0 + 1500ms), 3s);  // 2.5 s left -> 3
  EXPECT_EQ(b.retry_after(t0 + 4s), 0s);
}

TEST(TokenBucket, CostAndTimeGoingBackwards) {
  TokenBucket b(1, 10);
  EXPECT_TRUE(b.take(t0, 7));
  EXPECT_FALSE(b.take(t0, 4));
  EXPECT_TRUE(b.take(t0, 3));
  EXPECT_FALSE(b.take(t0 - 10s));  // an earlier time refills nothing
  EXPECT_TRUE(b.take(t0 + 1s));
}

TEST(TokenBucket, ConfigureKeepsTokensCappedAtTheNewBurst) {
  TokenBucket b(1, 10);
  b.configure(100, 3);
  EXPECT_NEAR(b.tokens(t0), 3.0, 1e-9);
  ASSERT_TRUE(b.take(t0, 3));
  EXPECT_TRUE(b.take(t0 + 10ms));
}

TEST(TokenBucket, ZeroRateNeverRefills) {
  TokenBucket b(0, 1);
  EXPECT_TRUE(b.take(t0));
  EXPECT_FALSE(b.take(t0 + 1000h));
  EXPECT_GT(b.retry_after(t0), 3600s);
}

}  // namespace
}  // namespace moat::core::guard

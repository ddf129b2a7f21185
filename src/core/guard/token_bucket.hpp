// guard: DDoS defences for the modes that face the internet: token buckets, client keys
// (address prefixes), per-client connection caps, rate limits and escalating bans
// (address_limiter.hpp). Pure: every operation takes `now`, so tests run on simulated time.
#pragma once

#include <chrono>
#include <cstdint>

namespace moat::core::guard {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// A token bucket: `rate` tokens per second, at most `burst` stored. It starts full.
class TokenBucket {
 public:
  TokenBucket() = default;
  TokenBucket(double rate, double burst) : rate_(rate), burst_(burst), tokens_(burst) {}

  // Takes `cost` tokens if available. Time going backwards refills nothing.
  bool take(TimePoint now, double cost = 1.0);
  // Whole seconds (rounded up) until one token is available; 0 if one is available now.
  std::chrono::seconds retry_after(TimePoint now) const;
  // Changes the rate and burst, keeping the tokens already stored (capped at the new burst).
  void configure(double rate, double burst);

  double rate() const { return rate_; }
  double burst() const { return burst_; }
  double tokens(TimePoint now) const;

 private:
  double refilled(TimePoint now) const;

  double rate_ = 0;
  double burst_ = 0;
  double tokens_ = 0;
  bool started_ = false;  // `last_` is meaningful
  TimePoint last_{};
};

}  // namespace moat::core::guard

#include "core/guard/token_bucket.hpp"

#include <algorithm>
#include <cmath>

namespace moat::core::guard {

double TokenBucket::refilled(TimePoint now) const {
  if (!started_ || now <= last_) return tokens_;
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  return std::min(burst_, tokens_ + elapsed * rate_);
}

double TokenBucket::tokens(TimePoint now) const { return refilled(now); }

bool TokenBucket::take(TimePoint now, double cost) {
  tokens_ = refilled(now);
  if (!started_ || now > last_) last_ = now;
  started_ = true;
  if (tokens_ + 1e-9 < cost) return false;
  tokens_ = std::max(0.0, tokens_ - cost);
  return true;
}

std::chrono::seconds TokenBucket::retry_after(TimePoint now) const {
  const double have = refilled(now);
  if (have + 1e-9 >= 1.0) return std::chrono::seconds(0);
  if (rate_ <= 0) return std::chrono::seconds(24 * 3600);  // never refills: a day, not forever
  const double wait = (1.0 - have) / rate_;
  const auto whole = static_cast<std::int64_t>(std::ceil(wait - 1e-9));
  return std::chrono::seconds(std::max<std::int64_t>(1, whole));
}

void TokenBucket::configure(double rate, double burst) {
  rate_ = rate;
  burst_ = burst;
  tokens_ = std::min(tokens_, burst_);
  if (!started_) tokens_ = burst_;
}

}  // namespace moat::core::guard

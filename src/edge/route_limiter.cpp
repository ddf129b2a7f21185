#include "edge/route_limiter.hpp"

#include <algorithm>

namespace moat::edge {

struct RouteLimiter::Slot {
  bool used = false;
  std::uint64_t route_id = 0;
  core::guard::ClientKey client;
  core::guard::TokenBucket bucket;
  TimePoint last_seen{};
};

struct RouteLimiter::Shard {
  std::mutex mutex;
  std::vector<Slot> slots;
  std::size_t evictions = 0;
};

RouteLimiter::RouteLimiter(std::size_t capacity, std::size_t shards) {
  shards = std::max<std::size_t>(1, shards);
  const std::size_t per_shard = std::max(kProbe, (capacity + shards - 1) / shards);
  for (std::size_t i = 0; i < shards; ++i) {
    auto shard = std::make_unique<Shard>();
    shard->slots.resize(per_shard);
    shards_.push_back(std::move(shard));
  }
}

RouteLimiter::~RouteLimiter() = default;

std::int64_t RouteLimiter::take(std::uint64_t route_id, const core::guard::ClientKey& client,
                                double rate, double burst, TimePoint now) {
  // splitmix64 finalizer over both parts: the home slot must not follow one of them alone.
  std::uint64_t h = core::guard::ClientKeyHash{}(client) ^ (route_id * 0x9e3779b97f4a7c15ULL);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  Shard& shard = *shards_[h % shards_.size()];
  std::lock_guard lock(shard.mutex);
  const std::size_t n = shard.slots.size();
  const std::size_t home = (h / shards_.size()) % n;
  Slot* found = nullptr;
  Slot* victim = nullptr;
  int victim_rank = -1;  // 2 empty, 1 refilled, 0 in use (then the stalest)
  for (std::size_t i = 0; i < kProbe && found == nullptr; ++i) {
    Slot& s = shard.slots[(home + i) % n];
    if (s.used && s.route_id == route_id && s.client == client) {
      found = &s;
      break;
    }
    const int rank = !s.used ? 2 : s.bucket.tokens(now) >= s.bucket.burst() ? 1 : 0;
    if (rank > victim_rank ||
        (rank == 0 && victim_rank == 0 && s.last_seen < victim->last_seen)) {
      victim = &s;
      victim_rank = rank;
    }
  }
  if (found == nullptr) {
    if (victim_rank == 0) ++shard.evictions;
    found = victim;
    found->used = true;
    found->route_id = route_id;
    found->client = client;
    found->bucket = core::guard::TokenBucket(rate, burst);
  } else if (found->bucket.rate() != rate || found->bucket.burst() != burst) {
    found->bucket.configure(rate, burst);
  }
  found->last_seen = now;
  if (found->bucket.take(now)) return 0;
  return std::max<std::int64_t>(1, found->bucket.retry_after(now).count());
}

std::size_t RouteLimiter::evictions() const {
  std::size_t total = 0;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard->mutex);
    total += shard->evictions;
  }
  return total;
}

}  // namespace moat::edge

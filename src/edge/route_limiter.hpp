// edge: per-route request rate limits (a route's `rate_limit`), one token bucket per (route,
// client prefix), as nginx's limit_req with a zone keyed by $binary_remote_addr per location.
// Shared by the workers like the guard's per-client table (SO_REUSEPORT spreads one client over
// every worker: per-worker buckets would multiply the limit by the worker count), sharded, one
// mutex per shard. The table is a fixed array allocated once: no allocation on the request path.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "core/guard/client_key.hpp"
#include "core/guard/token_bucket.hpp"

namespace moat::edge {

class RouteLimiter {
 public:
  using TimePoint = core::guard::TimePoint;

  // At most `capacity` buckets over all routes and clients (rounded up per shard).
  explicit RouteLimiter(std::size_t capacity, std::size_t shards = 16);
  ~RouteLimiter();
  RouteLimiter(const RouteLimiter&) = delete;
  RouteLimiter& operator=(const RouteLimiter&) = delete;

  // Takes one token from the bucket of (`route_id`, `client`), created full with `rate` and
  // `burst` (or re-configured to them: a reload keeps the tokens). 0: allowed; otherwise the
  // whole seconds (at least 1) until a token is available: the Retry-After.
  std::int64_t take(std::uint64_t route_id, const core::guard::ClientKey& client, double rate,
                    double burst, TimePoint now);

  std::size_t evictions() const;

  // Slots probed from a key's home slot. A key not found there takes an empty slot, else one
  // whose bucket has refilled (forgetting it loses nothing), else the least recently used one.
  static constexpr std::size_t kProbe = 8;

 private:
  struct Slot;
  struct Shard;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace moat::edge

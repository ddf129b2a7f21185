// guard: per-client state for the edge's DDoS defences. One table per process, shared by the
// workers and sharded by key, each shard behind its own mutex, touched once at accept, once per
// TLS handshake, once per request and once at close (a short, almost always uncontended lock).
//
// Why shared rather than per worker: SO_REUSEPORT spreads one client's connections over every
// worker, so per-worker tables would multiply each per-client limit by the worker count and let a
// client banned on one worker carry on through another. Exact limits are worth a lock.
//
// The table is bounded (max_clients): entries expire when idle (no connection open, no ban in
// force, unseen for idle_expiry) and, when a shard is full, the least recently seen entry without
// open connections is evicted (failing that, the least recently seen one).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "core/guard/client_key.hpp"
#include "core/guard/token_bucket.hpp"

namespace moat::core::guard {

using std::chrono::milliseconds;

struct LimiterSettings {
  std::size_t max_connections_per_client = 256;  // 0: no cap
  double handshakes_per_second = 20;             // 0: no budget
  double handshake_burst = 40;
  double requests_per_second = 200;  // 0: no limit
  double request_burst = 400;
  std::size_t ban_after_trips = 20;  // trips within ban_window that earn a ban; 0: never ban
  milliseconds ban_window{10'000};
  milliseconds ban_time{10'000};       // the first ban; each further one doubles...
  milliseconds ban_time_max{600'000};  // ...up to this; forgotten after this long without a ban
  milliseconds idle_expiry{60'000};
  std::size_t max_clients = 100'000;  // table size (all shards)
};

// Which limit answered; kAllowed when none did.
enum class Verdict : std::uint8_t {
  kAllowed,
  kConnectionsPerClient,
  kHandshakes,
  kRequests,
  kBanned,
};

const char* verdict_name(Verdict verdict);  // "connections_per_client", "handshakes", ...

struct Decision {
  Verdict verdict = Verdict::kAllowed;
  std::chrono::seconds retry_after{0};  // rounded up; for kRequests and kBanned
  bool banned_now = false;             // this trip started a ban
  bool allowed() const { return verdict == Verdict::kAllowed; }
};

// What the table knows about a client (for tests and diagnostics).
struct ClientState {
  std::size_t open = 0;
  std::size_t strikes = 0;
  std::size_t bans = 0;  // bans so far (the next lasts ban_time * 2^bans)
  bool banned = false;
  TimePoint ban_until{};
};

class AddressLimiter {
 public:
  explicit AddressLimiter(LimiterSettings settings = {}, std::size_t shards = 16);
  ~AddressLimiter();
  AddressLimiter(const AddressLimiter&) = delete;
  AddressLimiter& operator=(const AddressLimiter&) = delete;

  // New settings (a reload); each entry picks them up at its next use.
  void configure(const LimiterSettings& settings);

  // A connection was accepted. Allowed: it is counted open, and close_connection() must follow.
  // Refused: kBanned, or kConnectionsPerClient (a trip).
  Decision open_connection(const ClientKey& key, TimePoint now);
  void close_connection(const ClientKey& key, TimePoint now);
  // Before a TLS handshake: kHandshakes over budget (a trip), kBanned during a ban.
  Decision handshake(const ClientKey& key, TimePoint now);
  // Before a request is served: kRequests over budget (a trip), kBanned during a ban.
  Decision request(const ClientKey& key, TimePoint now);

  std::optional<ClientState> inspect(const ClientKey& key, TimePoint now) const;
  std::size_t size() const;
  std::size_t evictions() const;

 private:
  struct Entry;
  struct Shard;
  Shard& shard_for(const ClientKey& key) const;

  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace moat::core::guard

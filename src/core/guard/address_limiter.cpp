#include "core/guard/address_limiter.hpp"

#include <algorithm>

namespace moat::core::guard {

const char* verdict_name(Verdict verdict) {
  switch (verdict) {
    case Verdict::kAllowed: return "";
    case Verdict::kConnectionsPerClient: return "connections_per_client";
    case Verdict::kHandshakes: return "handshakes";
    case Verdict::kRequests: return "requests";
    case Verdict::kBanned: return "banned";
  }
  return "";
}

struct AddressLimiter::Entry {
  ClientKey key;
  std::size_t open = 0;
  TokenBucket handshakes;
  TokenBucket requests;
  std::size_t strikes = 0;
  TimePoint window_start{};
  std::size_t bans = 0;
  TimePoint ban_until{};
  TimePoint last_seen{};
};

struct AddressLimiter::Shard {
  mutable std::mutex mutex;
  LimiterSettings settings;
  std::size_t capacity = 1;
  std::list<Entry> lru;  // front: most recently seen
  std::unordered_map<ClientKey, std::list<Entry>::iterator, ClientKeyHash> index;
  std::size_t evictions = 0;

  bool expired(const Entry& e, TimePoint now) const {
    if (e.open != 0 || now < e.ban_until) return false;
    if (now - e.last_seen < settings.idle_expiry) return false;
    // A client that was banned is remembered for a while, so that its next ban is longer.
    return e.bans == 0 || now - e.ban_until >= settings.ban_time_max;
  }

  void erase(std::list<Entry>::iterator it) {
    index.erase(it->key);
    lru.erase(it);
  }

  void refresh(Entry& e) {
    if (e.handshakes.rate() != settings.handshakes_per_second ||
        e.handshakes.burst() != settings.handshake_burst) {
      e.handshakes.configure(settings.handshakes_per_second, settings.handshake_burst);
    }
    if (e.requests.rate() != settings.requests_per_second ||
        e.requests.burst() != settings.request_burst) {
      e.requests.configure(settings.requests_per_second, settings.request_burst);
    }
  }

  Entry* find(const ClientKey& key, TimePoint now) {
    auto found = index.find(key);
    if (found == index.end()) return nullptr;
    lru.splice(lru.begin(), lru, found->second);
    Entry& e = *found->second;
    e.last_seen = std::max(e.last_seen, now);
    refresh(e);
    return &e;
  }

  Entry& find_or_add(const ClientKey& key, TimePoint now) {
    if (Entry* e = find(key, now)) return *e;
    // Expire idle entries from the stale end (bounded work per insertion).
    for (int i = 0; i < 4 && !lru.empty() && expired(lru.back(), now); ++i) {
      erase(std::prev(lru.end()));
    }
    if (index.size() >= capacity) {
      // Full: the stalest entry without open connections or a ban in force, else the stalest.
      auto victim = std::prev(lru.end());
      auto it = victim;
      for (int i = 0; i < 64; ++i) {
        if (it->open == 0 && now >= it->ban_until) {
          victim = it;
          break;
        }
        if (it == lru.begin()) break;
        --it;
      }
      erase(victim);
      ++evictions;
    }
    lru.push_front(Entry{});
    Entry& e = lru.front();
    e.key = key;
    e.last_seen = now;
    e.window_start = now;
    e.handshakes = TokenBucket(settings.handshakes_per_second, settings.handshake_burst);
    e.requests = TokenBucket(settings.requests_per_second, settings.request_burst);
    index.emplace(key, lru.begin());
    return e;
  }

  // A limit refused this client: one more strike; enough within the window earn a ban.
  bool trip(Entry& e, TimePoint now) {
    if (settings.ban_after_trips == 0) return false;
    if (now - e.window_start >= settings.ban_window) {
      e.strikes = 0;
      e.window_start = now;
    }
    if (++e.strikes < settings.ban_after_trips) return false;
    if (e.bans > 0 && now - e.ban_until >= settings.ban_time_max) e.bans = 0;  // good conduct
    milliseconds length = settings.ban_time;
    for (std::size_t i = 0; i < e.bans && length < settings.ban_time_max; ++i) length *= 2;
    length = std::min(length, settings.ban_time_max);
    e.ban_until = now + length;
    ++e.bans;
    e.strikes = 0;
    e.window_start = now;
    return true;
  }
};

namespace {

std::chrono::seconds ceil_seconds(Clock::duration d) {
  auto s = std::chrono::ceil<std::chrono::seconds>(d);
  return std::max(s, std::chrono::seconds(1));
}

}  // namespace

AddressLimiter::AddressLimiter(LimiterSettings settings, std::size_t shards) {
  shards = std::max<std::size_t>(1, shards);
  for (std::size_t i = 0; i < shards; ++i) shards_.push_back(std::make_unique<Shard>());
  configure(settings);
}

AddressLimiter::~AddressLimiter() = default;

void AddressLimiter::configure(const LimiterSettings& settings) {
  const std::size_t per_shard = std::max<std::size_t>(1, settings.max_clients / shards_.size());
  for (auto& shard : shards_) {
    std::lock_guard lock(shard->mutex);
    shard->settings = settings;
    shard->capacity = per_shard;
  }
}

AddressLimiter::Shard& AddressLimiter::shard_for(const ClientKey& key) const {
  return *shards_[ClientKeyHash{}(key) % shards_.size()];
}

Decision AddressLimiter::open_connection(const ClientKey& key, TimePoint now) {
  Shard& s = shard_for(key);
  std::lock_guard lock(s.mutex);
  Entry& e = s.find_or_add(key, now);
  if (now < e.ban_until) return {Verdict::kBanned, ceil_seconds(e.ban_until - now), false};
  const std::size_t cap = s.settings.max_connections_per_client;
  if (cap != 0 && e.open >= cap) {
    const bool banned = s.trip(e, now);
    return {Verdict::kConnectionsPerClient, std::chrono::seconds(0), banned};
  }
  ++e.open;
  return {};
}

void AddressLimiter::close_connection(const ClientKey& key, TimePoint now) {
  Shard& s = shard_for(key);
  std::lock_guard lock(s.mutex);
  // Not found: evicted while open (the table was full); nothing to undo.
  if (Entry* e = s.find(key, now); e != nullptr && e->open > 0) --e->open;
}

Decision AddressLimiter::handshake(const ClientKey& key, TimePoint now) {
  Shard& s = shard_for(key);
  std::lock_guard lock(s.mutex);
  Entry& e = s.find_or_add(key, now);
  if (now < e.ban_until) return {Verdict::kBanned, ceil_seconds(e.ban_until - now), false};
  if (s.settings.handshakes_per_second <= 0 || e.handshakes.take(now)) return {};
  const bool banned = s.trip(e, now);
  return {Verdict::kHandshakes, e.handshakes.retry_after(now), banned};
}

Decision AddressLimiter::request(const ClientKey& key, TimePoint now) {
  Shard& s = shard_for(key);
  std::lock_guard lock(s.mutex);
  Entry& e = s.find_or_add(key, now);
  if (now < e.ban_until) return {Verdict::kBanned, ceil_seconds(e.ban_until - now), false};
  if (s.settings.requests_per_second <= 0 || e.requests.take(now)) return {};
  const bool banned = s.trip(e, now);
  auto retry = e.requests.retry_after(now);
  if (banned) retry = std::max(retry, ceil_seconds(e.ban_until - now));
  return {Verdict::kRequests, retry, banned};
}

std::optional<ClientState> AddressLimiter::inspect(const ClientKey& key, TimePoint now) const {
  Shard& s = shard_for(key);
  std::lock_guard lock(s.mutex);
  auto found = s.index.find(key);
  if (found == s.index.end()) return std::nullopt;
  const Entry& e = *found->second;
  return ClientState{e.open, e.strikes, e.bans, now < e.ban_until, e.ban_until};
}

std::size_t AddressLimiter::size() const {
  std::size_t n = 0;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard->mutex);
    n += shard->index.size();
  }
  return n;
}

std::size_t AddressLimiter::evictions() const {
  std::size_t n = 0;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard->mutex);
    n += shard->evictions;
  }
  return n;
}

}  // namespace moat::core::guard

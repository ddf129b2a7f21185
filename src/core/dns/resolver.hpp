// core/dns: the egress proxy's stub resolver. Non-blocking (Asio coroutines on the worker's own
// io_context), one instance per worker with its own cache (shared-nothing, no locks). Order:
// config overrides, the hosts file, the cache, then DNS over UDP (TCP when truncated) to the
// configured nameservers. It does not judge the addresses: the caller classifies every one
// (core::net::classify) before connecting. docs/dns.md describes what it trusts.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>

#include "core/base/result.hpp"
#include "core/dns/dns_message.hpp"
#include "core/net/address.hpp"

namespace moat::core::net {

struct ResolverConfig {
  // Filled from /etc/resolv.conf by system_resolver_config(); the Resolver itself reads no
  // resolv.conf. Any port (tests run a server on 127.0.0.1:<random port>). Empty: every DNS
  // lookup fails with dns_no_nameservers (overrides and hosts still work).
  std::vector<asio::ip::udp::endpoint> nameservers;
  std::chrono::milliseconds timeout{2000};  // per attempt (one query to one nameserver)
  int attempts = 2;                         // rounds over the nameservers
  std::string hosts_file = "/etc/hosts";    // "" disables
  // Normalized host -> addresses (config `resolve:`, like curl --resolve); never expire.
  std::map<std::string, std::vector<IpAddress>> overrides;
  // DNS TTLs are clamped to [min_ttl, max_ttl]; NXDOMAIN/NODATA are cached for the SOA's
  // negative TTL clamped to [min_ttl, negative_ttl], or min_ttl without an SOA.
  std::chrono::seconds min_ttl{5}, max_ttl{3600}, negative_ttl{30};
  std::size_t max_cache_entries = 10000;  // 0 disables the cache
};

// Reads a resolv.conf: `nameserver` lines (IPv4 or IPv6, port 53, at most 3 like glibc's MAXNS)
// and `options timeout:N attempts:N` (clamped to 1..30 s and 1..5 like glibc). `search`,
// `domain`, `ndots` and other options are ignored: moat resolves absolute names only. No
// nameserver is an error (resolv_conf_no_nameserver) rather than glibc's silent 127.0.0.1.
Result<ResolverConfig> system_resolver_config(const std::string& resolv_conf = "/etc/resolv.conf");
Result<ResolverConfig> parse_resolv_conf(std::string_view text, std::string_view origin);

// Parses hosts(5) text: "ADDRESS NAME [ALIAS...]" with '#' comments. Names are normalized
// (dns::normalize_query_name); lines with an address that is not canonical (parse_ip_strict,
// so no zone ids) and names that do not normalize are skipped. A name listed on several lines
// gets every address, in file order, deduplicated.
std::map<std::string, std::vector<IpAddress>> parse_hosts(std::string_view text);

struct Resolution {
  std::vector<IpAddress> addresses;  // IPv4 first, then IPv6; never empty on success
  enum class Source { kOverride, kHosts, kCache, kDns } source = Source::kDns;
  // Clamped TTL for kDns, the time left for kCache, 0 for the static kOverride and kHosts.
  std::chrono::seconds ttl{0};
  std::chrono::microseconds latency{0};  // from the call to resolve() to its result
};

const char* to_string(Resolution::Source source);  // "override", "hosts", "cache", "dns"

// Plain per-resolver counters (one resolver per worker: sum them when scraping).
struct ResolverCounters {
  std::uint64_t lookups = 0;            // calls to resolve()
  std::uint64_t static_hits = 0;        // answered from overrides or the hosts file
  std::uint64_t cache_hits = 0;         // positive or negative
  std::uint64_t cache_misses = 0;
  std::uint64_t coalesced = 0;          // waited for a lookup of the same name in flight
  std::uint64_t queries_sent = 0;       // UDP datagrams sent (one per attempt)
  std::uint64_t tcp_queries = 0;        // TCP retries after TC=1
  std::uint64_t timeouts = 0;           // attempts that got no valid answer in time
  std::uint64_t responses_ignored = 0;  // wrong source, wrong id, wrong question, malformed
  std::uint64_t cache_evictions = 0;    // entries dropped to stay under max_cache_entries
};

// Error codes of resolve(): dns_bad_name, dns_nxdomain, dns_no_addresses (NODATA), dns_servfail,
// dns_refused, dns_bad_rcode, dns_timeout, dns_unreachable, dns_truncated, dns_no_nameservers,
// dns_socket_error, dns_random_failed.
class Resolver {
 public:
  // Reads the hosts file now (a failure is kept in hosts_error(); lookups go on without it).
  // The resolver must outlive every resolve() in flight: destroy it after its context stops.
  Resolver(asio::io_context& context, ResolverConfig config);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // `host` is a normalized name (IP literals are the caller's job). Runs on the context passed
  // to the constructor; concurrent calls for the same name share one DNS lookup.
  asio::awaitable<Result<Resolution>> resolve(std::string host);

  const ResolverCounters& counters() const { return counters_; }
  std::size_t cache_size() const { return cache_.size(); }
  const std::optional<Error>& hosts_error() const { return hosts_error_; }
  const ResolverConfig& config() const { return config_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct CacheEntry {
    std::vector<IpAddress> addresses;  // empty for a negative entry
    std::optional<Error> error;        // dns_nxdomain or dns_no_addresses
    Clock::time_point expires;
    std::list<std::string>::iterator order;  // position in insertion_order_
  };
  struct InFlight;
  struct FamilyResult;

  asio::awaitable<Result<Resolution>> lookup(std::string name);
  asio::awaitable<Result<dns::DnsAnswer>> query(std::string name, dns::QueryType type);
  asio::awaitable<void> query_into(std::shared_ptr<FamilyResult> out, std::string name,
                                   dns::QueryType type);
  asio::awaitable<Result<dns::DnsAnswer>> udp_attempt(asio::ip::udp::endpoint server,
                                                      std::string name, dns::QueryType type);
  asio::awaitable<Result<dns::DnsAnswer>> tcp_attempt(asio::ip::udp::endpoint server,
                                                      std::string name, dns::QueryType type);

  std::optional<Result<Resolution>> cache_lookup(const std::string& name);
  void cache_store(const std::string& name, CacheEntry entry, std::chrono::seconds ttl);
  std::chrono::seconds clamp_ttl(std::chrono::seconds ttl, std::chrono::seconds high) const;
  std::optional<std::uint16_t> random_id();

  asio::any_io_executor executor_;
  ResolverConfig config_;
  std::map<std::string, std::vector<IpAddress>> hosts_;
  std::optional<Error> hosts_error_;
  std::unordered_map<std::string, CacheEntry> cache_;
  std::list<std::string> insertion_order_;  // oldest first, for eviction
  // Shared with each lookup's clean-up, which may run after the resolver is gone (when frames
  // are destroyed with their io_context).
  using InFlightMap = std::unordered_map<std::string, std::shared_ptr<InFlight>>;
  std::shared_ptr<InFlightMap> in_flight_ = std::make_shared<InFlightMap>();
  std::vector<std::uint8_t> random_pool_;
  std::size_t random_used_ = 0;
  ResolverCounters counters_;
};

}  // namespace moat::core::net

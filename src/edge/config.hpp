// edge: the platform's HTTPS front door: its configuration (the `edge:` section of a gateway
// config). Loaded, validated and compiled once into an immutable EdgeConfig; reload swaps a
// pointer. Reference: docs/edge.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/diagnostic.hpp"
#include "core/net/address.hpp"
#include "core/policy/host_pattern.hpp"
#include "core/policy/model.hpp"

namespace moat::edge {

using std::chrono::milliseconds;

// One certificate with its key; the TLS layer picks one per connection by SNI (edge/tls.hpp).
// Certificates whose leaves carry the same names and differ in key type (RSA, ECDSA) form one
// group, served by client capability.
struct CertificateFiles {
  std::string cert;  // PEM: leaf first, then the intermediates
  std::string key;   // PEM private key
  std::string ocsp;  // optional: a DER OCSPResponse to staple (`openssl ocsp -respout`)
  core::config::Location at;  // the list item, for errors found when the files are loaded
};

struct PoolState;  // edge/balancer.hpp: health and balancing state, attached by the Server

// An upstream server. Addresses only for now: name resolution comes later.
struct Member {
  std::string text;             // as written: "127.0.0.1:9000"
  core::net::IpAddress address;
  std::uint16_t port = 0;
  std::uint32_t weight = 1;     // 1..1000: `weighted`, `least-connections`, ties of `priority`
  std::uint32_t priority = 1;   // 1 is tried first (`priority`); default: position in the list
};

// How a pool picks a member among the healthy ones (docs/edge.md, "Pools and health checks").
enum class BalanceMethod : std::uint8_t {
  kRoundRobin,        // each member in turn (the default, as nginx and HAProxy)
  kPriority,          // the lowest priority number with a healthy member: failover in order
  kWeighted,          // smooth weighted round-robin (nginx's), by weight
  kPerformance,       // the lowest moving-average first-byte time
  kLeastConnections,  // the fewest active requests per weight (counted per worker)
};
const char* method_name(BalanceMethod method);

// Active checks: `GET path` on each member every `interval`; `fall` consecutive failures mark it
// down, `rise` consecutive successes up again. Off unless configured.
struct HealthCheck {
  bool enabled = false;
  std::string path = "/healthz";
  std::string host;  // the Host header; empty = the member's address
  milliseconds interval{5'000};
  milliseconds timeout{2'000};
  std::uint32_t fall = 3;
  std::uint32_t rise = 2;
  struct StatusRange {
    int first = 200;
    int last = 399;
  };
  std::vector<StatusRange> expect_status{StatusRange{}};  // "200-399", "200", "200,204,300-399"

  bool expected(int status) const {
    for (const auto& r : expect_status) {
      if (status >= r.first && status <= r.last) return true;
    }
    return false;
  }
};

// Passive checks (nginx's max_fails/fail_timeout): after `max_fails` consecutive failed attempts
// (connect error or timeout, invalid response) a member is left out for `fail_timeout`, then tried
// again; one more failure then ejects it again, one success clears it. 0 disables.
struct PassiveCheck {
  std::uint32_t max_fails = 3;
  milliseconds fail_timeout{10'000};
};

// A named group of upstream servers and how requests are spread over them.
struct Pool {
  std::string name;
  BalanceMethod method = BalanceMethod::kRoundRobin;
  std::vector<Member> members;
  HealthCheck health;
  PassiveCheck passive;
  milliseconds retry_after{10'000};  // the Retry-After of the 503 when no member is usable
  // Runtime state (edge/balancer.hpp), attached by the Server before the config is published and
  // never replaced afterwards; null in a config that is only checked. Shared with the next
  // config's pool of the same name for the members they have in common, so that health and
  // counts survive a reload.
  mutable std::shared_ptr<PoolState> state;
};

struct Route {
  std::string host_text;  // as written ("*.example.io", "app.example.io"); empty = any host
  std::optional<core::policy::HostPattern> host;  // nullopt = any host
  std::string path_prefix = "/";
  std::string pool_name;
  std::size_t pool = 0;  // index into EdgeConfig::pools
  std::string label;     // "host/prefix" for logs and metrics
  // rate_limit: a token bucket per client (prefix) and route; 0 = none. Over it: 429.
  double requests_per_second = 0;
  double burst = 0;
  std::uint64_t limit_id = 0;  // hash of the label: buckets survive a reload of the same route
};

struct Limits {
  milliseconds handshake_timeout{10'000};  // TCP accept to the end of the TLS handshake
  milliseconds header_timeout{10'000};     // first byte to the end of a request head (slowloris)
  milliseconds idle_timeout{60'000};       // keep-alive wait, and inactivity while moving a body
  milliseconds connect_timeout{5'000};     // upstream TCP connect
  milliseconds first_byte_timeout{60'000};  // request sent to the upstream's response head
  milliseconds drain_timeout{10'000};      // on SIGTERM, for requests in flight to finish
  std::size_t max_request_line = 8 * 1024;
  std::size_t max_header_bytes = 32 * 1024;
  std::size_t max_body_bytes = 1024 * 1024;  // request bodies (buffered, then forwarded): 413
  std::size_t max_response_header_bytes = 64 * 1024;
  std::size_t max_requests_per_connection = 1000;
  std::size_t max_idle_upstream = 32;  // idle keep-alive connections per member and worker

  // DDoS defences (core/guard). Per client means per address prefix (client_prefix_v4/v6).
  // 0 disables a cap, a rate or bans.
  std::size_t max_connections = 20'000;          // all listeners: over it, closed at accept
  std::size_t max_connections_per_client = 256;  // closed at accept, before TLS
  std::uint64_t handshakes_per_second_per_client = 20;  // over budget: closed before SSL_accept
  std::uint64_t handshake_burst_per_client = 40;        // default: twice the rate
  std::uint64_t requests_per_second_per_client = 200;   // over budget: 429 with Retry-After
  std::uint64_t request_burst_per_client = 400;         // default: twice the rate
  std::size_t ban_after_trips = 20;     // limit trips within ban_window that earn a ban
  milliseconds ban_window{10'000};
  milliseconds ban_time{10'000};        // the first ban; each next one doubles...
  milliseconds ban_time_max{600'000};   // ...up to this
  unsigned client_prefix_v4 = 24;
  unsigned client_prefix_v6 = 64;
  std::size_t max_tracked_clients = 100'000;  // the guard's table; the stalest idle are evicted

  // Slow clients and overload (docs/edge.md "DDoS defences").
  milliseconds send_timeout{60'000};  // a write to the client with no progress (slow read)
  std::uint64_t min_body_rate = 1024;  // bytes/s averaged over the body (slow POST); 0: off
  milliseconds body_rate_grace{5'000};  // from the start of the body, before the rate applies
  milliseconds overload_lag{500};  // event-loop lag that sheds new work (2 ticks in a row); 0: off
  std::uint64_t overload_memory = 0;  // resident bytes that shed new work; 0: off
  std::size_t max_route_limit_entries = 100'000;  // per-route rate-limit buckets (all routes)

  // HTTP/2 (edge/h2/h2_connection.hpp H2Limits); over a rate: GOAWAY(ENHANCE_YOUR_CALM).
  std::uint32_t h2_max_concurrent_streams = 100;     // SETTINGS_MAX_CONCURRENT_STREAMS
  std::uint32_t h2_initial_window_size = 1 << 20;    // per stream; the connection gets 4x
  std::uint32_t h2_max_continuations = 8;            // CONTINUATION frames after one HEADERS
  std::uint32_t h2_resets_per_second = 10;           // client resets (rapid reset), refill...
  std::uint32_t h2_reset_burst = 100;                // ...and bucket size
  std::uint32_t h2_settings_per_second = 20;
  std::uint32_t h2_pings_per_second = 20;
  // Request bodies one HTTP/2 connection may hold at once (received, response not ended); a
  // stream that would pass it is refused (RST_STREAM REFUSED_STREAM). At least max_body_bytes.
  std::size_t h2_max_buffered_body = 8 * 1024 * 1024;
};

struct EdgeConfig {
  std::string file;
  std::vector<std::string> listen_https;  // "127.0.0.1:8443"
  std::vector<std::string> listen_http;   // redirect-only listeners
  std::vector<CertificateFiles> certificates;  // the first is the default (no or unknown SNI)
  std::string policy_file;  // resolved; empty = none
  std::shared_ptr<const core::policy::Policy> policy;
  core::policy::Hsts hsts;                 // from the policy's tls.hsts, else the defaults
  std::uint16_t min_tls_version = 0x0303;  // from the policy's tls.min_version
  std::vector<Route> routes;
  std::vector<Pool> pools;
  Limits limits;
  std::string access_log = "-";  // "-" (stdout), a path, or "off" (no records, as nginx's)
  std::string admin_listen;  // "" = no admin listener
  std::size_t workers = 0;   // 0 = one per core

  // The route for a normalized host and a request path (without query): host specificity first
  // (exact, then the longest wildcard parent, then any host), then the longest path prefix.
  // nullptr when none matches.
  const Route* route_for(std::string_view host, std::string_view path) const;
  // The Strict-Transport-Security value (RFC 6797 6.1).
  std::string hsts_value() const;
};

struct EdgeConfigLoad {
  std::shared_ptr<const EdgeConfig> config;  // null on any error
  std::vector<core::config::Diagnostic> diagnostics;
  bool unreadable = false;
};

inline constexpr std::size_t kMaxConfigBytes = 4 * 1024 * 1024;

// True if `path` is under `prefix` on a segment boundary: "/api" covers "/api" and "/api/x" but
// not "/apix"; a prefix ending in '/' covers everything that starts with it.
bool path_has_prefix(std::string_view path, std::string_view prefix);

// Reads a gateway config file and its `edge:` section (and the policy it names).
EdgeConfigLoad load_edge_config(const std::string& path);
EdgeConfigLoad load_edge_config_text(const std::string& text, const std::string& name,
                                     const std::string& base_dir);

}  // namespace moat::edge

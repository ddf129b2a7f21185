// egress: the customer-side gateway's configuration (the `egress:` section of a gateway config).
// Loaded, validated and compiled once into an immutable EgressConfig; reload swaps a pointer.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config/diagnostic.hpp"
#include "core/net/address.hpp"
#include "core/policy/policy_set.hpp"

namespace moat::egress {

using std::chrono::milliseconds;

enum class Mode : std::uint8_t {
  kEnforce,  // deny what the policy does not allow
  kReport,   // allow, but log what would have been denied
};

enum class SniCheck : std::uint8_t {
  kMatch,    // the ClientHello's SNI must equal the CONNECT host (default)
  kPresent,  // an SNI must be present (any name)
  kOff,
};

// Clients are put in a group by proxy credentials, else by source address; a group sees only
// its own policies (by metadata.name; empty = every loaded policy).
// What moat checks of the upstream's first flight (after forwarding the ClientHello).
enum class UpstreamCheck : std::uint8_t {
  kOff,
  kVersion,  // the ServerHello's negotiated version must be at least the floor
  kPins,     // and, for services with pins, a certificate of the chain must match one (RFC 7469)
};

struct Group {
  std::string name;
  std::vector<core::net::IpNetwork> sources;
  std::vector<std::string> policies;
  // The policies this group may use, resolved at load time.
  std::shared_ptr<const core::policy::PolicySet> policy_set;
};

struct User {
  std::string name;
  std::string password_sha256;  // lowercase hex of SHA-256(password)
  std::string group;
};

struct Limits {
  std::size_t max_connections = 10000;
  std::size_t max_connections_per_client = 256;
  milliseconds header_timeout{10'000};   // CONNECT request head (slowloris)
  milliseconds hello_timeout{10'000};    // ClientHello after 200
  milliseconds connect_timeout{5'000};
  milliseconds idle_timeout{300'000};
  milliseconds drain_timeout{10'000};    // on SIGTERM, for open tunnels to finish
  std::size_t max_request_line = 8 * 1024;
  std::size_t max_header_bytes = 32 * 1024;
  std::size_t max_client_hello = 64 * 1024;
};

struct DnsSettings {
  std::vector<std::string> nameservers;  // "127.0.0.1:5353"; empty = /etc/resolv.conf
  milliseconds timeout{2'000};
  int attempts = 2;
  std::map<std::string, std::vector<core::net::IpAddress>> overrides;  // `resolve:`
};

struct Listener {
  std::string address;     // "127.0.0.1:3128"
  bool transparent = false;  // raw TLS (after an iptables REDIRECT): destination from the SNI
};

struct EgressConfig {
  std::string file;
  std::vector<Listener> listeners;
  std::vector<std::string> policy_files;  // resolved relative to the config file
  std::shared_ptr<const core::policy::PolicySet> policies;  // every loaded policy
  std::vector<Group> groups;
  std::vector<User> users;
  std::string auth_realm = "moat";
  Mode mode = Mode::kEnforce;
  std::map<std::string, Mode> service_modes;  // "policy/service" -> mode
  std::vector<core::net::IpNetwork> allow_private;  // destinations allowed although private
  bool require_tls = true;
  SniCheck sni = SniCheck::kMatch;
  std::uint16_t min_tls_version = 0x0303;  // from the policies' tls.min_version, or config
  UpstreamCheck upstream = UpstreamCheck::kOff;
  milliseconds pin_cache_ttl{600'000};  // TLS 1.3 verification handshakes, per host+address
  std::uint16_t transparent_port = 443;
  DnsSettings dns;
  Limits limits;
  std::string audit_log = "-";
  std::string admin_listen;  // "" = no admin listener
  std::size_t workers = 0;   // 0 = one per core

  // The group of a client (by address); nullptr when groups are configured and none matches.
  const Group* group_for(const core::net::IpAddress& client) const;
  const Group* group_named(const std::string& name) const;
  Mode mode_for(const std::string& policy, const std::string& service) const;
};

struct EgressConfigLoad {
  std::shared_ptr<const EgressConfig> config;  // null on any error
  std::vector<core::config::Diagnostic> diagnostics;
  bool unreadable = false;
};

inline constexpr std::size_t kMaxConfigBytes = 4 * 1024 * 1024;

// Reads a gateway config file and its `egress:` section, and loads the policies it names.
EgressConfigLoad load_egress_config(const std::string& path);
EgressConfigLoad load_egress_config_text(const std::string& text, const std::string& name,
                                         const std::string& base_dir);

}  // namespace moat::egress

// core/policy: host names and host patterns: normalization and parsing.
//
// Semantics (docs/host-patterns.md): exact names; "*.example.io" matches any name below
// example.io at any depth but not example.io itself; case-insensitive; one trailing dot ignored;
// IDNs only in their ASCII (punycode) form; never a string-suffix match; IP literals and CIDRs
// only where a service lists them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/base/result.hpp"
#include "core/net/address.hpp"

namespace moat::core::policy {

struct HostPattern {
  enum class Kind : std::uint8_t { kExact, kWildcard, kAddress, kNetwork };
  Kind kind = Kind::kExact;
  // Normalized text: "api.example.com", "*.example.io", "192.0.2.1", "192.0.2.0/24".
  std::string text;
  // kExact: the name; kWildcard: the parent name below which anything matches ("example.io").
  std::string name;
  // kAddress (a /32 or /128) and kNetwork.
  net::IpNetwork network;
};

// Parses one pattern as written in a policy. Errors carry `offset` (byte within `text`) for the
// column, and a `hint` where one helps (e.g. the punycode form of a Unicode name).
Result<HostPattern> parse_host_pattern(std::string_view text);

// A destination as a client names it (CONNECT target, SNI, Host header, CLI argument).
struct Destination {
  enum class Kind : std::uint8_t { kName, kAddress };
  Kind kind = Kind::kName;
  std::string host;  // normalized name, or canonical address text
  net::IpAddress address;
  std::uint16_t port = 0;
};

// Normalizes a host name or IP literal: ASCII lowercase, one trailing dot removed, labels
// checked; any IP spelling (see net::parse_ip_loose) becomes kAddress in canonical form; a
// name whose last label is numeric is refused (it would be read as an address elsewhere).
Result<Destination> normalize_host(std::string_view host);

// "host", "host:port", "[v6]", "[v6]:port". `default_port` applies when no port is given
// (0 means a port is required).
Result<Destination> parse_destination(std::string_view text, std::uint16_t default_port);

// RFC 3492 punycode with the "xn--" prefix for one label of UTF-8 text; nullopt-equivalent
// error if the input is not valid UTF-8. Used for hints.
Result<std::string> to_ascii_label(std::string_view utf8_label);

}  // namespace moat::core::policy

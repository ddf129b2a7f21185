// core/net: IP addresses and networks: strict and loose (attacker-spelled) parsing, and the
// classification the egress proxy uses to refuse private, loopback and metadata destinations.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moat::core::net {

struct IpAddress {
  enum class Family : std::uint8_t { kV4, kV6 };
  Family family = Family::kV4;
  // Network byte order. IPv4 uses bytes[0..3]; the rest stay zero.
  std::array<std::uint8_t, 16> bytes{};

  static IpAddress v4(std::uint32_t host_order);
  bool is_v4() const { return family == Family::kV4; }
  // The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d) or IPv4-compatible IPv6 address.
  std::optional<IpAddress> embedded_v4() const;
  // Canonical text: dotted quad, or RFC 5952 IPv6 (lowercase, longest zero run compressed).
  std::string to_string() const;
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

struct IpNetwork {
  IpAddress base;  // host bits are zero
  std::uint8_t prefix_length = 0;

  bool contains(const IpAddress& address) const;
  std::string to_string() const;  // "10.0.0.0/8"
  friend bool operator==(const IpNetwork&, const IpNetwork&) = default;
};

// Canonical spellings only: four decimal octets without leading zeros ("10.0.0.1"), or RFC 4291
// IPv6 text (with an optional embedded dotted quad). No brackets, no zone ids.
std::optional<IpAddress> parse_ip_strict(std::string_view text);

// Everything a resolver or browser would also take as an address (inet_aton and WHATWG URL
// rules): "127.1", "0x7f.0.0.1", "0177.0.0.1", "2130706433", "0x7f000001", plus the strict forms
// and bracketed IPv6 ("[::1]"). Used to catch IP literals that hide in a host name.
std::optional<IpAddress> parse_ip_loose(std::string_view text);

// "10.0.0.0/8", "fd00::/8"; a bare address is a /32 or /128. Host bits set is an error
// (returns nullopt) so a typo like 10.0.0.1/8 is not silently widened.
std::optional<IpNetwork> parse_network(std::string_view text);

// `address` with every bit after the first `prefix_length` cleared (the network's base).
IpAddress mask_address(const IpAddress& address, std::uint8_t prefix_length);

// The decimal prefix length of a CIDR, without the slash: no sign, no leading zeros, at most
// 32 (IPv4) or 128 (IPv6).
std::optional<std::uint8_t> parse_prefix_length(std::string_view text, IpAddress::Family family);

enum class AddressClass : std::uint8_t {
  kPublic,
  kUnspecified,    // 0.0.0.0/8, ::
  kLoopback,       // 127.0.0.0/8, ::1
  kPrivate,        // RFC 1918
  kUniqueLocal,    // fc00::/7
  kLinkLocal,      // 169.254.0.0/16, fe80::/10
  kMetadata,       // 169.254.169.254, fd00:ec2::254 (cloud instance metadata)
  kCgnat,          // 100.64.0.0/10
  kMulticast,      // 224.0.0.0/4, ff00::/8
  kBroadcast,      // 255.255.255.255
  kReserved,       // 240.0.0.0/4, documentation, benchmarking, 192.0.0.0/24, 64:ff9b::/96 ...
};

const char* to_string(AddressClass c);

// Classifies an address; IPv4-mapped and IPv4-compatible IPv6 addresses are classified by the
// IPv4 address they carry (an attacker's "::ffff:127.0.0.1" is loopback).
AddressClass classify(const IpAddress& address);

}  // namespace moat::core::net

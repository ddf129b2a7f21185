// guard: a client reduced to its network prefix, so that one attacker with many addresses in one
// block (a /24 of IPv4, a /64 of IPv6: what one customer or one host typically gets) is one key.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/net/address.hpp"

namespace moat::core::guard {

struct ClientKey {
  std::array<std::uint8_t, 16> bytes{};  // the address with the host bits cleared
  bool v4 = true;
  std::uint8_t prefix = 0;

  // IPv4-mapped IPv6 (::ffff:a.b.c.d) is reduced as IPv4. Prefixes are clamped to 32 and 128.
  static ClientKey from(const net::IpAddress& address, unsigned v4_prefix = 24,
                        unsigned v6_prefix = 64);

  std::string to_string() const;  // "203.0.113.0/24", "2001:db8::/64"
  friend bool operator==(const ClientKey&, const ClientKey&) = default;
};

struct ClientKeyHash {
  std::size_t operator()(const ClientKey& key) const noexcept;
};

}  // namespace moat::core::guard

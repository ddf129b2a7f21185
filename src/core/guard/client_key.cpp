#include "core/guard/client_key.hpp"

#include <algorithm>

namespace moat::core::guard {

ClientKey ClientKey::from(const net::IpAddress& address, unsigned v4_prefix, unsigned v6_prefix) {
  net::IpAddress a = address;
  if (!a.is_v4()) {
    // Only the mapped form (RFC 4291 2.5.5.2): that is how a dual-stack socket reports IPv4.
    bool mapped = a.bytes[10] == 0xff && a.bytes[11] == 0xff;
    for (std::size_t i = 0; i < 10 && mapped; ++i) mapped = a.bytes[i] == 0;
    if (mapped) {
      if (auto v4 = a.embedded_v4()) a = *v4;
    }
  }
  ClientKey key;
  key.v4 = a.is_v4();
  const unsigned width = key.v4 ? 32 : 128;
  const unsigned prefix = std::min(key.v4 ? v4_prefix : v6_prefix, width);
  key.prefix = static_cast<std::uint8_t>(prefix);
  for (unsigned i = 0; i < width / 8; ++i) {
    const unsigned bit = i * 8;
    std::uint8_t mask = 0;
    if (bit + 8 <= prefix) {
      mask = 0xff;
    } else if (bit < prefix) {
      mask = static_cast<std::uint8_t>(0xff << (8 - (prefix - bit)));
    }
    key.bytes[i] = static_cast<std::uint8_t>(a.bytes[i] & mask);
  }
  return key;
}

std::string ClientKey::to_string() const {
  net::IpAddress a;
  a.family = v4 ? net::IpAddress::Family::kV4 : net::IpAddress::Family::kV6;
  a.bytes = bytes;
  return a.to_string() + "/" + std::to_string(prefix);
}

std::size_t ClientKeyHash::operator()(const ClientKey& key) const noexcept {
  // FNV-1a over the bytes, the family and the prefix.
  std::uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](std::uint8_t b) {
    h ^= b;
    h *= 1099511628211ULL;
  };
  for (std::uint8_t b : key.bytes) mix(b);
  mix(key.v4 ? 4 : 6);
  mix(key.prefix);
  return static_cast<std::size_t>(h ^ (h >> 29));
}

}  // namespace moat::core::guard

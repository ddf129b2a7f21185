// IP address parsing (strict and loose), formatting (RFC 5952) and classification (RFC 6890
// special-purpose registries), without the C library's resolver functions: inet_pton and
// inet_aton disagree between platforms, and we need to know exactly which spellings we take.
#include "core/net/address.hpp"

#include <algorithm>
#include <cstddef>

namespace moat::core::net {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Four decimal octets, 1..3 digits each, no leading zeros ("010" is octal to inet_aton).
std::optional<std::uint32_t> parse_v4_strict(std::string_view text) {
  std::uint32_t value = 0;
  std::size_t pos = 0;
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (pos >= text.size() || text[pos] != '.') return std::nullopt;
      ++pos;
    }
    const std::size_t start = pos;
    std::uint32_t octet = 0;
    while (pos < text.size() && is_digit(text[pos]) && pos - start < 3) {
      octet = octet * 10 + static_cast<std::uint32_t>(text[pos] - '0');
      ++pos;
    }
    const std::size_t len = pos - start;
    if (len == 0 || octet > 255 || (len > 1 && text[start] == '0')) return std::nullopt;
    if (pos < text.size() && is_digit(text[pos])) return std::nullopt;  // a fourth digit
    value = (value << 8) | octet;
  }
  if (pos != text.size()) return std::nullopt;
  return value;
}

// RFC 4291 section 2.2 text: up to eight groups of 1..4 hex digits, at most one "::", and an
// optional trailing dotted quad (strict) standing for the last two groups. No zone id.
std::optional<IpAddress> parse_v6(std::string_view text) {
  std::array<std::uint16_t, 8> groups{};
  int count = 0;  // groups written
  int gap = -1;   // index in `groups` where "::" stands
  std::size_t pos = 0;
  if (text.size() < 2) return std::nullopt;
  if (text[0] == ':') {
    if (text[1] != ':') return std::nullopt;  // a lone leading colon
    gap = 0;
    pos = 2;
    if (pos == text.size()) return IpAddress{IpAddress::Family::kV6, {}};  // "::"
  }
  while (true) {
    // One group, or the embedded IPv4 address.
    const std::size_t start = pos;
    std::size_t end = pos;
    while (end < text.size() && hex_value(text[end]) >= 0) ++end;
    if (end < text.size() && text[end] == '.') {
      // Dotted quad: must be last and needs room for two groups.
      if (count > 6) return std::nullopt;
      auto v4 = parse_v4_strict(text.substr(start));
      if (!v4) return std::nullopt;
      groups[static_cast<std::size_t>(count++)] = static_cast<std::uint16_t>(*v4 >> 16);
      groups[static_cast<std::size_t>(count++)] = static_cast<std::uint16_t>(*v4 & 0xffff);
      pos = text.size();
      break;
    }
    const std::size_t len = end - start;
    if (len == 0 || len > 4 || count >= 8) return std::nullopt;
    std::uint16_t g = 0;
    for (std::size_t i = start; i < end; ++i) {
      g = static_cast<std::uint16_t>((g << 4) | hex_value(text[i]));
    }
    groups[static_cast<std::size_t>(count++)] = g;
    pos = end;
    if (pos == text.size()) break;
    if (text[pos] != ':') return std::nullopt;
    ++pos;
    if (pos < text.size() && text[pos] == ':') {
      if (gap >= 0) return std::nullopt;  // a second "::"
      gap = count;
      ++pos;
      if (pos == text.size()) break;  // trailing "::"
    } else if (pos == text.size()) {
      return std::nullopt;  // a lone trailing colon
    }
  }
  IpAddress out{IpAddress::Family::kV6, {}};
  std::array<std::uint16_t, 8> full{};
  if (gap < 0) {
    if (count != 8) return std::nullopt;
    full = groups;
  } else {
    // "::" stands for at least one zero group (RFC 4291: "one or more groups").
    if (count > 7) return std::nullopt;
    const int tail = count - gap;
    for (int i = 0; i < gap; ++i)
      full[static_cast<std::size_t>(i)] = groups[static_cast<std::size_t>(i)];
    for (int i = 0; i < tail; ++i) {
      full[static_cast<std::size_t>(8 - tail + i)] = groups[static_cast<std::size_t>(gap + i)];
    }
  }
  for (std::size_t i = 0; i < 8; ++i) {
    out.bytes[2 * i] = static_cast<std::uint8_t>(full[i] >> 8);
    out.bytes[2 * i + 1] = static_cast<std::uint8_t>(full[i] & 0xff);
  }
  return out;
}

// One part of an inet_aton / WHATWG IPv4 address: "0x"-prefixed hex, "0"-prefixed octal, or
// decimal. Values above 2^32 are refused (WHATWG: failure), which also bounds the arithmetic.
std::optional<std::uint64_t> parse_loose_part(std::string_view part) {
  if (part.empty()) return std::nullopt;
  unsigned base = 10;
  if (part.size() >= 2 && part[0] == '0' && (part[1] == 'x' || part[1] == 'X')) {
    base = 16;
    part.remove_prefix(2);
    if (part.empty()) return 0;  // WHATWG: "0x" alone is zero
  } else if (part.size() >= 2 && part[0] == '0') {
    base = 8;
    part.remove_prefix(1);
  }
  std::uint64_t value = 0;
  for (char c : part) {
    const int d = hex_value(c);
    if (d < 0 || static_cast<unsigned>(d) >= base) return std::nullopt;
    value = value * base + static_cast<unsigned>(d);
    if (value > 0xffffffffULL) return std::nullopt;
  }
  return value;
}

// inet_aton(3) and the WHATWG URL IPv4 parser: 1..4 parts, the last one fills the remaining
// bytes ("127.1" is 127.0.0.1, "2130706433" is 127.0.0.1). One trailing dot is allowed.
std::optional<std::uint32_t> parse_v4_loose(std::string_view text) {
  if (!text.empty() && text.back() == '.') text.remove_suffix(1);
  std::array<std::uint64_t, 4> parts{};
  std::size_t n = 0;
  while (true) {
    if (n == 4) return std::nullopt;
    const std::size_t dot = text.find('.');
    auto part = parse_loose_part(text.substr(0, dot));
    if (!part) return std::nullopt;
    parts[n++] = *part;
    if (dot == std::string_view::npos) break;
    text.remove_prefix(dot + 1);
  }
  std::uint32_t value = 0;
  for (std::size_t i = 0; i + 1 < n; ++i) {
    if (parts[i] > 255) return std::nullopt;
    value |= static_cast<std::uint32_t>(parts[i]) << (8 * (3 - i));
  }
  const unsigned last_bits = static_cast<unsigned>(8 * (5 - n));
  if (last_bits < 32 && parts[n - 1] >= (1ULL << last_bits)) return std::nullopt;
  return value | static_cast<std::uint32_t>(parts[n - 1]);
}

std::uint32_t v4_value(const IpAddress& a) {
  return (std::uint32_t{a.bytes[0]} << 24) | (std::uint32_t{a.bytes[1]} << 16) |
         (std::uint32_t{a.bytes[2]} << 8) | std::uint32_t{a.bytes[3]};
}

bool v4_in(std::uint32_t address, std::uint32_t network, int prefix) {
  const std::uint32_t mask = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
  return (address & mask) == network;
}

// True if the first `prefix` bits of `a` equal those of `network` (given as 16 bytes).
bool v6_in(const IpAddress& a, const std::array<std::uint8_t, 16>& network, int prefix) {
  for (int i = 0; i < 16 && prefix > 0; ++i, prefix -= 8) {
    const auto idx = static_cast<std::size_t>(i);
    const std::uint8_t mask = prefix >= 8 ? 0xff : static_cast<std::uint8_t>(0xff << (8 - prefix));
    if ((a.bytes[idx] & mask) != (network[idx] & mask)) return false;
  }
  return true;
}

IpAddress v4_from_bytes(const IpAddress& a, std::size_t at) {
  return IpAddress::v4((std::uint32_t{a.bytes[at]} << 24) | (std::uint32_t{a.bytes[at + 1]} << 16) |
                       (std::uint32_t{a.bytes[at + 2]} << 8) | std::uint32_t{a.bytes[at + 3]});
}

AddressClass classify_v4(std::uint32_t a) {
  struct Range {
    std::uint32_t network;
    int prefix;
    AddressClass cls;
  };
  // Order matters: the metadata address sits inside link-local, broadcast inside 240/4.
  static constexpr Range kRanges[] = {
      {0xa9fea9fe, 32, AddressClass::kMetadata},    // 169.254.169.254
      {0x00000000, 8, AddressClass::kUnspecified},  // 0.0.0.0/8 (RFC 1122 "this network")
      {0x7f000000, 8, AddressClass::kLoopback},     // 127.0.0.0/8
      {0x0a000000, 8, AddressClass::kPrivate},      // RFC 1918
      {0xac100000, 12, AddressClass::kPrivate},     // RFC 1918
      {0xc0a80000, 16, AddressClass::kPrivate},     // RFC 1918
      {0xa9fe0000, 16, AddressClass::kLinkLocal},   // RFC 3927
      {0x64400000, 10, AddressClass::kCgnat},       // RFC 6598
      {0xe0000000, 4, AddressClass::kMulticast},    // RFC 5771
      {0xffffffff, 32, AddressClass::kBroadcast},   // RFC 919 limited broadcast
      {0xf0000000, 4, AddressClass::kReserved},     // RFC 1112 "future use"
      {0xc0000000, 24, AddressClass::kReserved},    // RFC 6890 IETF protocol assignments
      {0xc0000200, 24, AddressClass::kReserved},    // RFC 5737 TEST-NET-1
      {0xc0586300, 24, AddressClass::kReserved},    // RFC 7526 deprecated 6to4 relay anycast
      {0xc6120000, 15, AddressClass::kReserved},    // RFC 2544 benchmarking
      {0xc6336400, 24, AddressClass::kReserved},    // RFC 5737 TEST-NET-2
      {0xcb007100, 24, AddressClass::kReserved},    // RFC 5737 TEST-NET-3
  };
  for (const auto& r : kRanges) {
    if (v4_in(a, r.network, r.prefix)) return r.cls;
  }
  return AddressClass::kPublic;
}

}  // namespace

IpAddress IpAddress::v4(std::uint32_t host_order) {
  IpAddress a;
  a.family = Family::kV4;
  a.bytes[0] = static_cast<std::uint8_t>(host_order >> 24);
  a.bytes[1] = static_cast<std::uint8_t>(host_order >> 16);
  a.bytes[2] = static_cast<std::uint8_t>(host_order >> 8);
  a.bytes[3] = static_cast<std::uint8_t>(host_order);
  return a;
}

std::optional<IpAddress> IpAddress::embedded_v4() const {
  if (is_v4()) return std::nullopt;
  for (std::size_t i = 0; i < 10; ++i) {
    if (bytes[i] != 0) return std::nullopt;
  }
  if (bytes[10] == 0xff && bytes[11] == 0xff) return v4_from_bytes(*this, 12);  // RFC 4291 2.5.5.2
  if (bytes[10] != 0 || bytes[11] != 0) return std::nullopt;
  // IPv4-compatible (RFC 4291 2.5.5.1, deprecated). "::" and "::1" are not IPv4 addresses.
  const std::uint32_t low = v4_value(v4_from_bytes(*this, 12));
  if (low <= 1) return std::nullopt;
  return v4_from_bytes(*this, 12);
}

std::string IpAddress::to_string() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  if (is_v4()) {
    out.reserve(15);
    for (std::size_t i = 0; i < 4; ++i) {
      if (i > 0) out.push_back('.');
      out += std::to_string(bytes[i]);
    }
    return out;
  }
  out.reserve(45);
  std::array<std::uint16_t, 8> g{};
  for (std::size_t i = 0; i < 8; ++i) {
    g[i] = static_cast<std::uint16_t>((bytes[2 * i] << 8) | bytes[2 * i + 1]);
  }
  // RFC 5952 section 5: IPv4-mapped addresses keep the dotted quad.
  const bool mapped =
      g[0] == 0 && g[1] == 0 && g[2] == 0 && g[3] == 0 && g[4] == 0 && g[5] == 0xffff;
  const std::size_t words = mapped ? 6 : 8;
  // RFC 5952 4.2: compress the longest run of two or more zero groups, the first if tied.
  std::size_t best_start = words, best_len = 0;
  for (std::size_t i = 0; i < words;) {
    if (g[i] != 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < words && g[j] == 0) ++j;
    if (j - i > best_len && j - i >= 2) {
      best_start = i;
      best_len = j - i;
    }
    i = j;
  }
  for (std::size_t i = 0; i < words;) {
    if (i == best_start) {
      out += "::";
      i += best_len;
      continue;
    }
    if (i > 0 && i != best_start + best_len) out.push_back(':');
    // RFC 5952 4.1 and 4.3: no leading zeros, lowercase.
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
      const int nibble = (g[i] >> shift) & 0xf;
      if (nibble != 0 || started || shift == 0) {
        out.push_back(kHex[nibble]);
        started = true;
      }
    }
    ++i;
  }
  if (mapped) {
    if (best_start + best_len != words) out.push_back(':');
    out += v4_from_bytes(*this, 12).to_string();
  }
  return out;
}

bool IpNetwork::contains(const IpAddress& address) const {
  if (address.family != base.family) return false;
  return v6_in(address, base.bytes, prefix_length);
}

std::string IpNetwork::to_string() const {
  return base.to_string() + "/" + std::to_string(prefix_length);
}

IpAddress mask_address(const IpAddress& address, std::uint8_t prefix_length) {
  IpAddress out = address;
  const std::size_t width = address.is_v4() ? 4 : 16;
  int bits = prefix_length;
  for (std::size_t i = 0; i < width; ++i, bits -= 8) {
    if (bits >= 8) continue;
    out.bytes[i] = bits <= 0 ? 0 : static_cast<std::uint8_t>(out.bytes[i] & (0xff << (8 - bits)));
  }
  return out;
}

std::optional<IpAddress> parse_ip_strict(std::string_view text) {
  if (text.find(':') != std::string_view::npos) return parse_v6(text);
  if (auto v4 = parse_v4_strict(text)) return IpAddress::v4(*v4);
  return std::nullopt;
}

std::optional<IpAddress> parse_ip_loose(std::string_view text) {
  if (!text.empty() && text.front() == '[') {
    // A URL's bracketed IPv6 literal (RFC 3986 3.2.2); IPvFuture and zone ids are not taken.
    if (text.size() < 2 || text.back() != ']') return std::nullopt;
    return parse_v6(text.substr(1, text.size() - 2));
  }
  if (text.find(':') != std::string_view::npos) return parse_v6(text);
  if (auto v4 = parse_v4_loose(text)) return IpAddress::v4(*v4);
  return std::nullopt;
}

std::optional<std::uint8_t> parse_prefix_length(std::string_view text, IpAddress::Family family) {
  // Decimal, no sign, no leading zeros: "/08" is refused rather than guessed at.
  if (text.empty() || text.size() > 3 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  unsigned value = 0;
  for (char c : text) {
    if (!is_digit(c)) return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  const unsigned max = family == IpAddress::Family::kV4 ? 32 : 128;
  if (value > max) return std::nullopt;
  return static_cast<std::uint8_t>(value);
}

std::optional<IpNetwork> parse_network(std::string_view text) {
  const std::size_t slash = text.find('/');
  auto address = parse_ip_strict(text.substr(0, slash));
  if (!address) return std::nullopt;
  IpNetwork network;
  network.base = *address;
  network.prefix_length = address->is_v4() ? 32 : 128;
  if (slash != std::string_view::npos) {
    auto prefix = parse_prefix_length(text.substr(slash + 1), address->family);
    if (!prefix) return std::nullopt;
    network.prefix_length = *prefix;
  }
  if (!(mask_address(network.base, network.prefix_length) == network.base)) return std::nullopt;
  return network;
}

const char* to_string(AddressClass c) {
  switch (c) {
    case AddressClass::kPublic:
      return "public";
    case AddressClass::kUnspecified:
      return "unspecified";
    case AddressClass::kLoopback:
      return "loopback";
    case AddressClass::kPrivate:
      return "private";
    case AddressClass::kUniqueLocal:
      return "unique-local";
    case AddressClass::kLinkLocal:
      return "link-local";
    case AddressClass::kMetadata:
      return "metadata";
    case AddressClass::kCgnat:
      return "cgnat";
    case AddressClass::kMulticast:
      return "multicast";
    case AddressClass::kBroadcast:
      return "broadcast";
    case AddressClass::kReserved:
      return "reserved";
  }
  return "unknown";
}

AddressClass classify(const IpAddress& address) {
  if (address.is_v4()) return classify_v4(v4_value(address));

  using B = std::array<std::uint8_t, 16>;
  static constexpr B kZero{};
  static constexpr B kLoopback{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  if (address.bytes == kZero) return AddressClass::kUnspecified;
  if (address.bytes == kLoopback) return AddressClass::kLoopback;
  // ::ffff:0:0/96 (mapped) and ::/96 (compatible): what a dual-stack socket really reaches.
  if (auto v4 = address.embedded_v4()) return classify_v4(v4_value(*v4));

  // Translation prefixes carry an IPv4 address that the translator will connect to.
  static constexpr B kNat64{0x00, 0x64, 0xff, 0x9b};  // RFC 6052 64:ff9b::/96
  if (v6_in(address, kNat64, 96)) return classify_v4(v4_value(v4_from_bytes(address, 12)));
  static constexpr B k6to4{0x20, 0x02};  // RFC 3056 2002::/16, IPv4 in bits 16..47
  if (v6_in(address, k6to4, 16)) return classify_v4(v4_value(v4_from_bytes(address, 2)));

  struct Range {
    B network;
    int prefix;
    AddressClass cls;
  };
  static constexpr Range kRanges[] = {
      // AWS instance metadata over IPv6 (Nitro), inside fc00::/7.
      {{0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54},
       128,
       AddressClass::kMetadata},
      {{0xfc}, 7, AddressClass::kUniqueLocal},                  // RFC 4193
      {{0xfe, 0x80}, 10, AddressClass::kLinkLocal},             // RFC 4291
      {{0xfe, 0xc0}, 10, AddressClass::kReserved},              // RFC 3879 deprecated site-local
      {{0xff}, 8, AddressClass::kMulticast},                    // RFC 4291
      {{0x20, 0x01, 0x0d, 0xb8}, 32, AddressClass::kReserved},  // RFC 3849 documentation
      {{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, AddressClass::kReserved},  // RFC 8215 local NAT64
      {{0x01, 0x00}, 64, AddressClass::kReserved},                          // RFC 6666 discard-only
      {{0x20, 0x01}, 23, AddressClass::kReserved},  // RFC 2928 IETF protocols (Teredo, ...)
  };
  for (const auto& r : kRanges) {
    if (v6_in(address, r.network, r.prefix)) return r.cls;
  }
  // Only 2000::/3 is allocated as global unicast (RFC 4291 2.4); anything else is not a
  // destination we should treat as the public internet.
  static constexpr B kGlobal{0x20};
  if (!v6_in(address, kGlobal, 3)) return AddressClass::kReserved;
  return AddressClass::kPublic;
}

}  // namespace moat::core::net

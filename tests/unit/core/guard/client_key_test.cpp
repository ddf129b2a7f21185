#include "core/guard/client_key.hpp"

#include <gtest/gtest.h>

#include <unordered_set>

namespace moat::core::guard {
namespace {

net::IpAddress ip(const char* text) {
  auto a = net::parse_ip_strict(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(net::IpAddress{});
}

TEST(ClientKey, Ipv4ReducesToSlash24) {
  auto a = ClientKey::from(ip("203.0.113.7"));
  auto b = ClientKey::from(ip("203.0.113.250"));
  auto c = ClientKey::from(ip("203.0.114.7"));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(a.to_string(), "203.0.113.0/24");
  EXPECT_EQ(ClientKeyHash{}(a), ClientKeyHash{}(b));
}

TEST(ClientKey, Ipv6ReducesToSlash64) {
  auto a = ClientKey::from(ip("2001:db8:1:2:aaaa::1"));
  auto b = ClientKey::from(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"));
  auto c = ClientKey::from(ip("2001:db8:1:3::1"));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(a.to_string(), "2001:db8:1:2::/64");
}

TEST(ClientKey, MappedIpv6IsReducedAsIpv4) {
  auto mapped = ClientKey::from(ip("::ffff:198.51.100.9"));
  EXPECT_TRUE(mapped.v4);
  EXPECT_EQ(mapped, ClientKey::from(ip("198.51.100.1")));
  // ::1 is IPv6 loopback, not the IPv4 address 0.0.0.1.
  EXPECT_FALSE(ClientKey::from(ip("::1")).v4);
}

TEST(ClientKey, ConfigurablePrefixes) {
  EXPECT_EQ(ClientKey::from(ip("10.1.2.3"), 32, 64).to_string(), "10.1.2.3/32");
  EXPECT_EQ(ClientKey::from(ip("10.1.2.3"), 20, 64).to_string(), "10.1.0.0/20");
  EXPECT_EQ(ClientKey::from(ip("10.1.2.3"), 99, 64).to_string(), "10.1.2.3/32");  // clamped
  EXPECT_EQ(ClientKey::from(ip("2001:db8::1"), 24, 48).to_string(), "2001:db8::/48");
  EXPECT_EQ(ClientKey::from(ip("2001:db8::1"), 24, 128).to_string(), "2001:db8::1/128");
  EXPECT_NE(ClientKey::from(ip("10.0.0.1"), 0, 0), ClientKey::from(ip("::"), 0, 0));
}

TEST(ClientKey, HashSpreadsKeys) {
  std::unordered_set<std::size_t> hashes;
  for (unsigned i = 0; i < 256; ++i) {
    hashes.insert(ClientKeyHash{}(ClientKey::from(net::IpAddress::v4(0x0a000000u | (i << 8)))));
  }
  EXPECT_EQ(hashes.size(), 256u);
}

}  // namespace
}  // namespace moat::core::guard

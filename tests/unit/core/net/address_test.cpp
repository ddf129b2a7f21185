#include "core/net/address.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace moat::core::net {
namespace {

struct RoundTrip {
  const char* input;
  const char* canonical;  // nullptr: refused
};

TEST(ParseIpStrict, AcceptsCanonicalAndRfc4291Forms) {
  const std::vector<RoundTrip> cases = {
      {"0.0.0.0", "0.0.0.0"},
      {"10.0.0.1", "10.0.0.1"},
      {"255.255.255.255", "255.255.255.255"},
      {"192.0.2.1", "192.0.2.1"},
      {"::", "::"},
      {"::1", "::1"},
      {"1::", "1::"},
      {"2001:db8::1", "2001:db8::1"},
      {"2001:DB8::1", "2001:db8::1"},
      {"2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
      {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},     // RFC 5952 4.2.3: first run
      {"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"},  // RFC 5952 4.2.2: no single ::
      {"2001:0:0:1:0:0:0:1", "2001:0:0:1::1"},           // longest run
      {"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"},
      {"1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"},
      {"::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8"},
      {"::ffff:127.0.0.1", "::ffff:127.0.0.1"},
      {"::ffff:7f00:1", "::ffff:127.0.0.1"},
      {"::127.0.0.1", "::7f00:1"},
      {"64:ff9b::192.0.2.1", "64:ff9b::c000:201"},
      {"fe80::1", "fe80::1"},
      {"ff02::1", "ff02::1"},
  };
  for (const auto& c : cases) {
    auto a = parse_ip_strict(c.input);
    ASSERT_TRUE(a.has_value()) << c.input;
    EXPECT_EQ(a->to_string(), c.canonical) << c.input;
    auto again = parse_ip_strict(a->to_string());
    ASSERT_TRUE(again.has_value()) << c.input;
    EXPECT_EQ(*again, *a) << c.input;
  }
}

TEST(ParseIpStrict, RefusesEverythingElse) {
  for (const char* bad : {"",
                          "1",
                          "1.2.3",
                          "1.2.3.4.5",
                          "127.1",
                          "0x7f.0.0.1",
                          "0177.0.0.1",
                          "010.0.0.1",
                          "01.2.3.4",
                          "256.0.0.1",
                          "1.2.3.256",
                          "1.2.3.4.",
                          ".1.2.3.4",
                          "1..2.3",
                          "1.2.3.-4",
                          "+1.2.3.4",
                          "1.2.3.4 ",
                          " 1.2.3.4",
                          "2130706433",
                          "0x7f000001",
                          "1.2.3.0004",
                          "[::1]",
                          ":",
                          ":::",
                          "1:2",
                          "1::2::3",
                          "1:2:3:4:5:6:7:8:9",
                          "1:2:3:4:5:6:7:8::",
                          "::1:2:3:4:5:6:7:8",
                          "12345::",
                          "g::",
                          "::1%eth0",
                          "fe80::1%1",
                          ":1::",
                          "1::2:",
                          "::ffff:127.1",
                          "::ffff:1.2.3.4.5",
                          "1.2.3.4::",
                          "::1.2.3.4:1",
                          "1:2:3:4:5:6:7:1.2.3.4",
                          "::1 ",
                          "1.2.3.4/32"}) {
    EXPECT_FALSE(parse_ip_strict(bad).has_value()) << bad;
  }
}

TEST(ParseIpLoose, TakesEverySpellingAResolverTakes) {
  const std::vector<RoundTrip> cases = {
      {"127.0.0.1", "127.0.0.1"},
      {"127.1", "127.0.0.1"},
      {"127.0.1", "127.0.0.1"},
      {"2130706433", "127.0.0.1"},
      {"0x7f000001", "127.0.0.1"},
      {"0X7F000001", "127.0.0.1"},
      {"0x7f.1", "127.0.0.1"},
      {"0x7f.0.0.1", "127.0.0.1"},
      {"0177.0.0.1", "127.0.0.1"},
      {"0177.1", "127.0.0.1"},
      {"010.0.0.1", "8.0.0.1"},
      {"0x7f.0x0.0x0.0x1", "127.0.0.1"},
      {"127.0x0.01", "127.0.0.1"},           // mixed bases
      {"169.254.43518", "169.254.169.254"},  // metadata, short form
      {"0xa9fea9fe", "169.254.169.254"},
      {"0", "0.0.0.0"},
      {"0x", "0.0.0.0"},  // WHATWG: "0x" alone is zero
      {"4294967295", "255.255.255.255"},
      {"127.0.0.1.", "127.0.0.1"},  // one trailing dot (WHATWG)
      {"[::1]", "::1"},
      {"[::ffff:127.0.0.1]", "::ffff:127.0.0.1"},
      {"::ffff:7f00:1", "::ffff:127.0.0.1"},
      {"2001:db8::1", "2001:db8::1"},
  };
  for (const auto& c : cases) {
    auto a = parse_ip_loose(c.input);
    ASSERT_TRUE(a.has_value()) << c.input;
    EXPECT_EQ(a->to_string(), c.canonical) << c.input;
  }
}

TEST(ParseIpLoose, RefusesNonAddresses) {
  for (const char* bad : {"",
                          ".",
                          "..",
                          "4294967296",
                          "0x100000000",
                          "1.2.3.4.5",
                          "256.1",
                          "1.16777216",
                          "1.2.65536",
                          "08.0.0.1",
                          "0x7g.1",
                          "1..1",
                          ".1",
                          "1.2.3.4..",
                          "example.com",
                          "1e3",
                          "-1",
                          "+1",
                          "[1.2.3.4]",
                          "[::1",
                          "::1]",
                          "[]",
                          "[::1]:80",
                          "fe80::1%eth0",
                          "99999999999999999999999",
                          "0x0000000000000000000001ffffffff"}) {
    EXPECT_FALSE(parse_ip_loose(bad).has_value()) << bad;
  }
}

TEST(ParseNetwork, ParsesAndRejectsHostBits) {
  struct Case {
    const char* input;
    const char* canonical;  // nullptr: refused
  };
  const std::vector<Case> cases = {
      {"10.0.0.0/8", "10.0.0.0/8"},
      {"0.0.0.0/0", "0.0.0.0/0"},
      {"192.0.2.1", "192.0.2.1/32"},
      {"192.0.2.1/32", "192.0.2.1/32"},
      {"2001:db8::/32", "2001:db8::/32"},
      {"::/0", "::/0"},
      {"::1", "::1/128"},
      {"fd00::/8", "fd00::/8"},
      {"10.0.0.1/8", nullptr},
      {"2001:db8::1/32", nullptr},
      {"10.0.0.0/33", nullptr},
      {"::/129", nullptr},
      {"10.0.0.0/", nullptr},
      {"10.0.0.0/08", nullptr},
      {"10.0.0.0/+8", nullptr},
      {"10.0.0.0/-8", nullptr},
      {"10/8", nullptr},
      {"/8", nullptr},
      {"10.0.0.0/8/8", nullptr},
      {"[::]/0", nullptr},
  };
  for (const auto& c : cases) {
    auto n = parse_network(c.input);
    if (c.canonical == nullptr) {
      EXPECT_FALSE(n.has_value()) << c.input;
      continue;
    }
    ASSERT_TRUE(n.has_value()) << c.input;
    EXPECT_EQ(n->to_string(), c.canonical) << c.input;
    EXPECT_TRUE(n->contains(n->base)) << c.input;
  }
}

TEST(IpNetwork, Contains) {
  auto net = *parse_network("192.0.2.0/24");
  EXPECT_TRUE(net.contains(*parse_ip_strict("192.0.2.255")));
  EXPECT_FALSE(net.contains(*parse_ip_strict("192.0.3.0")));
  EXPECT_FALSE(net.contains(*parse_ip_strict("::ffff:192.0.2.1")));  // family differs
  auto odd = *parse_network("10.0.0.0/9");
  EXPECT_TRUE(odd.contains(*parse_ip_strict("10.127.255.255")));
  EXPECT_FALSE(odd.contains(*parse_ip_strict("10.128.0.0")));
  auto all = *parse_network("0.0.0.0/0");
  EXPECT_TRUE(all.contains(*parse_ip_strict("255.255.255.255")));
  auto v6 = *parse_network("2001:db8::/33");
  EXPECT_TRUE(v6.contains(*parse_ip_strict("2001:db8:7fff::1")));
  EXPECT_FALSE(v6.contains(*parse_ip_strict("2001:db8:8000::1")));
}

TEST(IpAddress, EmbeddedV4) {
  EXPECT_EQ(parse_ip_strict("::ffff:10.1.2.3")->embedded_v4(), parse_ip_strict("10.1.2.3"));
  EXPECT_EQ(parse_ip_strict("::10.1.2.3")->embedded_v4(), parse_ip_strict("10.1.2.3"));
  EXPECT_FALSE(parse_ip_strict("::")->embedded_v4().has_value());
  EXPECT_FALSE(parse_ip_strict("::1")->embedded_v4().has_value());
  EXPECT_FALSE(parse_ip_strict("10.1.2.3")->embedded_v4().has_value());
  EXPECT_FALSE(parse_ip_strict("2001:db8::a01:203")->embedded_v4().has_value());
  EXPECT_FALSE(parse_ip_strict("::fffe:10.1.2.3")->embedded_v4().has_value());
}

TEST(MaskAddress, ClearsHostBits) {
  EXPECT_EQ(mask_address(*parse_ip_strict("10.1.2.3"), 8).to_string(), "10.0.0.0");
  EXPECT_EQ(mask_address(*parse_ip_strict("10.255.2.3"), 9).to_string(), "10.128.0.0");
  EXPECT_EQ(mask_address(*parse_ip_strict("10.1.2.3"), 0).to_string(), "0.0.0.0");
  EXPECT_EQ(mask_address(*parse_ip_strict("10.1.2.3"), 32).to_string(), "10.1.2.3");
  EXPECT_EQ(mask_address(*parse_ip_strict("2001:db8:ffff::1"), 36).to_string(), "2001:db8:f000::");
}

TEST(ParsePrefixLength, Bounds) {
  using F = IpAddress::Family;
  EXPECT_EQ(parse_prefix_length("0", F::kV4), 0);
  EXPECT_EQ(parse_prefix_length("32", F::kV4), 32);
  EXPECT_FALSE(parse_prefix_length("33", F::kV4).has_value());
  EXPECT_EQ(parse_prefix_length("128", F::kV6), 128);
  EXPECT_FALSE(parse_prefix_length("129", F::kV6).has_value());
  EXPECT_FALSE(parse_prefix_length("", F::kV6).has_value());
  EXPECT_FALSE(parse_prefix_length("08", F::kV6).has_value());
  EXPECT_FALSE(parse_prefix_length("0128", F::kV6).has_value());
  EXPECT_FALSE(parse_prefix_length("1a", F::kV6).has_value());
}

TEST(Classify, Table) {
  struct Case {
    const char* address;
    AddressClass expected;
  };
  using C = AddressClass;
  const std::vector<Case> cases = {
      {"8.8.8.8", C::kPublic},
      {"1.1.1.1", C::kPublic},
      {"0.0.0.0", C::kUnspecified},
      {"0.1.2.3", C::kUnspecified},
      {"127.0.0.1", C::kLoopback},
      {"127.255.255.254", C::kLoopback},
      {"10.0.0.1", C::kPrivate},
      {"172.16.0.1", C::kPrivate},
      {"172.31.255.255", C::kPrivate},
      {"172.32.0.0", C::kPublic},
      {"192.168.1.1", C::kPrivate},
      {"169.254.169.254", C::kMetadata},
      {"169.254.169.253", C::kLinkLocal},
      {"169.254.0.1", C::kLinkLocal},
      {"100.64.0.1", C::kCgnat},
      {"100.127.255.255", C::kCgnat},
      {"100.128.0.0", C::kPublic},
      {"224.0.0.1", C::kMulticast},
      {"239.255.255.255", C::kMulticast},
      {"255.255.255.255", C::kBroadcast},
      {"240.0.0.1", C::kReserved},
      {"255.255.255.254", C::kReserved},
      {"192.0.0.8", C::kReserved},
      {"192.0.2.1", C::kReserved},
      {"198.18.0.1", C::kReserved},
      {"198.19.255.255", C::kReserved},
      {"198.20.0.0", C::kPublic},
      {"198.51.100.7", C::kReserved},
      {"203.0.113.9", C::kReserved},
      {"::", C::kUnspecified},
      {"::1", C::kLoopback},
      {"2606:4700::1111", C::kPublic},
      {"fc00::1", C::kUniqueLocal},
      {"fd12:3456::1", C::kUniqueLocal},
      {"fd00:ec2::254", C::kMetadata},
      {"fd00:ec2::253", C::kUniqueLocal},
      {"fe80::1", C::kLinkLocal},
      {"febf::1", C::kLinkLocal},
      {"ff02::1", C::kMulticast},
      {"2001:db8::1", C::kReserved},
      // Attackers' spellings: an IPv4 address inside an IPv6 one is what a connection reaches.
      {"::ffff:127.0.0.1", C::kLoopback},
      {"::ffff:7f00:1", C::kLoopback},
      {"::ffff:169.254.169.254", C::kMetadata},
      {"::ffff:10.0.0.1", C::kPrivate},
      {"::ffff:8.8.8.8", C::kPublic},
      {"::127.0.0.1", C::kLoopback},
      {"::10.0.0.1", C::kPrivate},
      {"64:ff9b::127.0.0.1", C::kLoopback},
      {"64:ff9b::7f00:1", C::kLoopback},
      {"64:ff9b::a9fe:a9fe", C::kMetadata},
      {"64:ff9b::8.8.8.8", C::kPublic},
      {"2002:7f00:1::", C::kLoopback},
      {"2002:a9fe:a9fe::1", C::kMetadata},
      {"2002:0808:0808::1", C::kPublic},
      {"64:ff9b:1::1", C::kReserved},
      {"2001::1", C::kReserved},  // Teredo
      {"100::1", C::kReserved},
      {"4000::1", C::kReserved},  // outside 2000::/3
  };
  for (const auto& c : cases) {
    auto a = parse_ip_strict(c.address);
    ASSERT_TRUE(a.has_value()) << c.address;
    EXPECT_STREQ(to_string(classify(*a)), to_string(c.expected)) << c.address;
  }
}

TEST(Classify, LooseSpellingsOfLoopbackAndMetadata) {
  for (const char* s : {"127.1", "2130706433", "0x7f000001", "0177.0.0.1", "0x7f.1", "[::1]",
                        "[::ffff:127.0.0.1]", "127.0.0.1."}) {
    auto a = parse_ip_loose(s);
    ASSERT_TRUE(a.has_value()) << s;
    EXPECT_EQ(classify(*a), AddressClass::kLoopback) << s;
  }
  for (const char* s : {"169.254.43518", "0xa9fea9fe", "2852039166", "0251.0376.0251.0376"}) {
    auto a = parse_ip_loose(s);
    ASSERT_TRUE(a.has_value()) << s;
    EXPECT_EQ(classify(*a), AddressClass::kMetadata) << s;
  }
}

TEST(Classify, Names) {
  EXPECT_STREQ(to_string(AddressClass::kMetadata), "metadata");
  EXPECT_STREQ(to_string(AddressClass::kPublic), "public");
  EXPECT_STREQ(to_string(AddressClass::kUniqueLocal), "unique-local");
}

}  // namespace
}  // namespace moat::core::net

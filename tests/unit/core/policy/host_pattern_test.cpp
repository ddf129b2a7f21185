#include "core/policy/host_pattern.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace moat::core::policy {
namespace {

using Kind = HostPattern::Kind;

// ---------------------------------------------------------------------------------------------
// parse_host_pattern: accepted

TEST(ParseHostPattern, Accepts) {
  struct Case {
    std::string input;
    Kind kind;
    std::string text;
    std::string name;
  };
  const std::vector<Case> cases = {
      {"api.example.com", Kind::kExact, "api.example.com", "api.example.com"},
      {"API.Example.COM", Kind::kExact, "api.example.com", "api.example.com"},
      {"api.example.com.", Kind::kExact, "api.example.com", "api.example.com"},
      {"localhost", Kind::kExact, "localhost", "localhost"},
      {"_dmarc.example.com", Kind::kExact, "_dmarc.example.com", "_dmarc.example.com"},
      {"a-b.c_d.example", Kind::kExact, "a-b.c_d.example", "a-b.c_d.example"},
      {"r3---sn-abc.googlevideo.com", Kind::kExact, "r3---sn-abc.googlevideo.com",
       "r3---sn-abc.googlevideo.com"},
      {"xn--mnchen-3ya.de", Kind::kExact, "xn--mnchen-3ya.de", "xn--mnchen-3ya.de"},
      {"az416426.vo.msecnd.net", Kind::kExact, "az416426.vo.msecnd.net", "az416426.vo.msecnd.net"},
      {"1password.com", Kind::kExact, "1password.com", "1password.com"},
      {"123.example.com", Kind::kExact, "123.example.com", "123.example.com"},
      {"example.0a", Kind::kExact, "example.0a", "example.0a"},
      {"*.example.io", Kind::kWildcard, "*.example.io", "example.io"},
      {"*.Example.IO.", Kind::kWildcard, "*.example.io", "example.io"},
      {"*.com", Kind::kWildcard, "*.com", "com"},
      {"*._tcp.example.com", Kind::kWildcard, "*._tcp.example.com", "_tcp.example.com"},
      {"192.0.2.1", Kind::kAddress, "192.0.2.1", ""},
      {"192.0.2.1.", Kind::kAddress, "192.0.2.1", ""},
      {"2001:db8::1", Kind::kAddress, "2001:db8::1", ""},
      {"2001:DB8:0::1", Kind::kAddress, "2001:db8::1", ""},
      {"192.0.2.0/24", Kind::kNetwork, "192.0.2.0/24", ""},
      {"0.0.0.0/0", Kind::kNetwork, "0.0.0.0/0", ""},
      {"192.0.2.1/32", Kind::kAddress, "192.0.2.1", ""},
      {"2001:db8::/32", Kind::kNetwork, "2001:db8::/32", ""},
      {"2001:db8::1/128", Kind::kAddress, "2001:db8::1", ""},
  };
  for (const auto& c : cases) {
    auto p = parse_host_pattern(c.input);
    ASSERT_TRUE(p.ok()) << c.input << ": " << p.error().message;
    EXPECT_EQ(p->kind, c.kind) << c.input;
    EXPECT_EQ(p->text, c.text) << c.input;
    EXPECT_EQ(p->name, c.name) << c.input;
    // The normalized text is itself a pattern that parses to the same thing.
    auto again = parse_host_pattern(p->text);
    ASSERT_TRUE(again.ok()) << p->text;
    EXPECT_EQ(again->text, p->text);
    EXPECT_EQ(again->kind, p->kind);
  }
}

TEST(ParseHostPattern, AddressesCarryTheirNetwork) {
  auto a = parse_host_pattern("192.0.2.1");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->network.to_string(), "192.0.2.1/32");
  auto n = parse_host_pattern("10.0.0.0/8");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->network.prefix_length, 8);
  EXPECT_EQ(n->network.base.to_string(), "10.0.0.0");
  auto v6 = parse_host_pattern("fd00::/8");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->network.to_string(), "fd00::/8");
}

TEST(ParseHostPattern, LimitsAreInclusive) {
  const std::string label63(63, 'a');
  EXPECT_TRUE(parse_host_pattern(label63 + ".com").ok());
  EXPECT_TRUE(parse_host_pattern("*." + label63 + ".com").ok());
  // 253 bytes: 63 + 1 + 63 + 1 + 63 + 1 + 61.
  const std::string name253 = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
  ASSERT_EQ(name253.size(), 253u);
  EXPECT_TRUE(parse_host_pattern(name253).ok());
  EXPECT_TRUE(parse_host_pattern(name253 + ".").ok());  // the trailing dot is not counted
}

// ---------------------------------------------------------------------------------------------
// parse_host_pattern: refused, with the code, the byte offset and (where one helps) the hint.

struct ErrorCase {
  std::string input;
  std::string code;
  std::size_t offset;
  std::string hint_contains;  // "" = do not check
};

void expect_pattern_errors(const std::vector<ErrorCase>& cases) {
  for (const auto& c : cases) {
    auto p = parse_host_pattern(c.input);
    ASSERT_FALSE(p.ok()) << "'" << c.input << "' parsed as " << p->text;
    EXPECT_EQ(p.error().code, c.code) << c.input << ": " << p.error().message;
    EXPECT_EQ(p.error().offset, c.offset) << c.input << ": " << p.error().message;
    EXPECT_FALSE(p.error().message.empty()) << c.input;
    if (!c.hint_contains.empty()) {
      EXPECT_NE(p.error().hint.find(c.hint_contains), std::string::npos)
          << c.input << ": hint was '" << p.error().hint << "'";
    }
  }
}

TEST(ParseHostPattern, RefusesMalformedNames) {
  const std::string long_label(64, 'a');
  const std::string label63(63, 'a');
  const std::string name254 = label63 + "." + label63 + "." + label63 + "." + std::string(62, 'b');
  expect_pattern_errors({
      {"", "empty_pattern", 0, "*.example.com"},
      {".", "empty_label", 0, ""},
      {"..", "trailing_dots", 1, ""},
      {"example.io..", "trailing_dots", 11, "write example.io"},
      {"*.example.io..", "trailing_dots", 13, "write *.example.io"},
      {".example.com", "empty_label", 0, "did you mean example.com?"},
      {"a..b", "empty_label", 2, "did you mean a.b?"},
      {"api..example.com", "empty_label", 4, "did you mean api.example.com?"},
      {"*..visualstudio.com", "empty_label", 2, "did you mean *.visualstudio.com?"},
      {"*..x.com", "empty_label", 2, "did you mean *.x.com?"},
      {"*...x.com", "empty_label", 2, "did you mean *.x.com?"},
      {long_label + ".com", "label_too_long", 0, ""},
      {"api." + long_label + ".com", "label_too_long", 4, ""},
      {"*." + long_label + ".com", "label_too_long", 2, ""},
      {name254, "name_too_long", 253, ""},
      {"-api.example.com", "label_hyphen", 0, ""},
      {"api-.example.com", "label_hyphen", 3, ""},
      {"api.-example.com", "label_hyphen", 4, ""},
      {"api.example-.com", "label_hyphen", 11, ""},
      {"api.example.com-", "label_hyphen", 15, ""},
      {"*.-x.com", "label_hyphen", 2, ""},
      {"api example.com", "invalid_character", 3, "letters, digits"},
      {" api.example.com", "invalid_character", 0, ""},
      {"api.example.com ", "invalid_character", 15, ""},
      {"api.exa$mple.com", "invalid_character", 7, ""},
      {"api.example.com\t", "invalid_character", 15, ""},
      {std::string("api\0.com", 8), "invalid_character", 3, ""},
      {"api,example.com", "invalid_character", 3, ""},
      {"user@example.com", "invalid_character", 4, ""},
      {"example.com/path", "invalid_network", 0, ""},
      {"example.com:443", "port_in_pattern", 11, "write example.com"},
      {"api%2eexample.com", "invalid_character", 3, ""},
  });
}

TEST(ParseHostPattern, RefusesMisplacedWildcards) {
  expect_pattern_errors({
      {"*", "wildcard_without_parent", 0, "*.example.com"},
      {"*.", "wildcard_without_parent", 0, "*.example.com"},
      {"*x.com", "misplaced_wildcard", 0, "did you mean *.x.com?"},
      {"**.x.com", "misplaced_wildcard", 0, "did you mean *.x.com?"},
      {"**", "misplaced_wildcard", 0, ""},
      {"a*b.com", "misplaced_wildcard", 1, "*.example.com"},
      {"x.*", "misplaced_wildcard", 2, ""},
      {"foo.*.com", "misplaced_wildcard", 4, ""},
      {"*.*.com", "misplaced_wildcard", 2, ""},
      {"*.foo*.com", "misplaced_wildcard", 5, ""},
      {"api.*", "misplaced_wildcard", 4, ""},
  });
}

TEST(ParseHostPattern, RefusesNumericNamesAndOddAddresses) {
  expect_pattern_errors({
      // The last label is a number but the whole is not an address.
      {"example.123", "numeric_name", 8, "four decimal numbers"},
      {"1.2.3.4.5", "numeric_name", 8, ""},
      {"*.1.2.3.4", "numeric_name", 8, ""},
      {"*.example.0x1f", "numeric_name", 10, ""},
      {"example.0x", "numeric_name", 8, ""},
      {"256.1.1.1", "numeric_name", 8, ""},
      {"08.0.0.1", "numeric_name", 7, ""},
      // Addresses in spellings that only inet_aton and browsers take.
      {"1.2.3", "non_canonical_address", 0, "write 1.2.0.3"},
      {"127.1", "non_canonical_address", 0, "write 127.0.0.1"},
      {"0x7f.1", "non_canonical_address", 0, "write 127.0.0.1"},
      {"010.0.0.1", "non_canonical_address", 0, "write 8.0.0.1"},
      {"0177.0.0.1", "non_canonical_address", 0, "write 127.0.0.1"},
      {"2130706433", "non_canonical_address", 0, "write 127.0.0.1"},
      {"0x7f000001", "non_canonical_address", 0, "write 127.0.0.1"},
      {"192.0.02.1", "non_canonical_address", 0, "write 192.0.2.1"},
      // IPv6 written with brackets, zones, ports or mistakes.
      {"[2001:db8::1]", "bracketed_address", 0, "write 2001:db8::1"},
      {"[2001:db8::1]:443", "bracketed_address", 0, ""},
      {"2001:db8::1::2", "invalid_ipv6", 0, ""},
      {"fe80::1%eth0", "invalid_ipv6", 0, ""},
      {"2001:db8:::1", "invalid_ipv6", 0, ""},
      // Networks.
      {"192.0.2.1/24", "host_bits_set", 0, "192.0.2.0/24"},
      {"10.1.0.0/8", "host_bits_set", 0, "10.0.0.0/8"},
      {"2001:db8::1/32", "host_bits_set", 0, "2001:db8::/32"},
      {"192.0.2.0/33", "prefix_out_of_range", 10, ""},
      {"2001:db8::/129", "prefix_out_of_range", 11, ""},
      {"192.0.2.0/999", "prefix_out_of_range", 10, ""},
      {"192.0.2.0/", "invalid_prefix", 10, ""},
      {"192.0.2.0/1234", "invalid_prefix", 10, ""},
      {"192.0.2.0/-1", "invalid_prefix", 10, ""},
      {"192.0.2.0/24/8", "invalid_prefix", 10, ""},
      {"192.0.2.0/024", "invalid_prefix", 10, "write 192.0.2.0/24"},
      {"/24", "invalid_network", 0, ""},
      {"example.com/24", "invalid_network", 0, ""},
      {"10/8", "non_canonical_address", 0, "write 0.0.0.10/8"},
      {"127.1/32", "non_canonical_address", 0, "write 127.0.0.1/32"},
      {"[::1]/128", "bracketed_address", 0, ""},
  });
}

TEST(ParseHostPattern, RefusesRawUnicodeWithThePunycodeForm) {
  expect_pattern_errors({
      {"m\xc3\xbc"
       "nchen.de",
       "non_ascii", 1, "xn--mnchen-3ya.de"},
      {"*.b\xc3\xbc"
       "cher.example",
       "non_ascii", 3, "*.xn--bcher-kva.example"},
      {"\xe4\xbe\x8b\xe3\x81\x88.jp", "non_ascii", 0, ""},
      {"bad\xff.com", "non_ascii", 3, "punycode"},  // not UTF-8: no form to suggest
  });
}

// ---------------------------------------------------------------------------------------------
// to_ascii_label (RFC 3492 7.1 samples and well-known names)

TEST(ToAsciiLabel, Punycode) {
  struct Case {
    std::string utf8;
    std::string ascii;
  };
  const std::vector<Case> cases = {
      {"example", "example"},
      {"EXAMPLE", "example"},
      {"m\xc3\xbc"
       "nchen",
       "xn--mnchen-3ya"},
      {"M\xc3\xbc"
       "nchen",
       "xn--mnchen-3ya"},
      {"b\xc3\xbc"
       "cher",
       "xn--bcher-kva"},
      {"\xc3\xbc", "xn--tda"},
      {"\xd0\xbf\xd1\x80\xd0\xb8\xd0\xbc\xd0\xb5\xd1\x80", "xn--e1afmkfd"},  // пример
      {"\xe4\xb8\xad\xe5\x9b\xbd", "xn--fiqs8s"},                            // 中国
      {"\xe6\x97\xa5\xe6\x9c\xac", "xn--wgv71a"},                            // 日本
      {"\xf0\x9f\x92\xa9", "xn--ls8h"},                                      // U+1F4A9
      // RFC 3492 7.1 (L) "3<nen>B<gumi><kinpachi><sensei>" with ASCII lowercased.
      {"3\xe5\xb9\xb4"
       "b\xe7\xb5\x84\xe9\x87\x91\xe5\x85\xab\xe5\x85\x88\xe7\x94\x9f",
       "xn--3b-ww4c5e180e575a65lsy2b"},
      // RFC 3492 7.1 (B) Chinese (simplified).
      {"\xe4\xbb\x96\xe4\xbb\xac\xe4\xb8\xba\xe4\xbb\x80\xe4\xb9\x88\xe4\xb8\x8d\xe8\xaf\xb4"
       "\xe4\xb8\xad\xe6\x96\x87",
       "xn--ihqwcrb4cv8a8dqg056pqjye"},
  };
  for (const auto& c : cases) {
    auto r = to_ascii_label(c.utf8);
    ASSERT_TRUE(r.ok()) << c.ascii;
    EXPECT_EQ(*r, c.ascii);
  }
}

TEST(ToAsciiLabel, RefusesInvalidUtf8) {
  for (const std::string& bad :
       {std::string("\xff"), std::string("\xc3"), std::string("\xc0\xaf"),  // overlong '/'
        std::string("\xe0\x80\xaf"), std::string("\xed\xa0\x80"),           // surrogate
        std::string("\xf4\x90\x80\x80"),                                    // > U+10FFFF
        std::string("a\x80"
                    "b")}) {
    auto r = to_ascii_label(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "invalid_utf8");
  }
  EXPECT_FALSE(to_ascii_label(std::string(5000, 'a')).ok());
}

// ---------------------------------------------------------------------------------------------
// normalize_host

TEST(NormalizeHost, Names) {
  struct Case {
    std::string input;
    std::string host;
  };
  const std::vector<Case> cases = {
      {"api.example.com", "api.example.com"},
      {"API.EXAMPLE.COM", "api.example.com"},
      {"api.example.com.", "api.example.com"},
      {"localhost", "localhost"},
      {"_dmarc.example.com", "_dmarc.example.com"},
      {"xn--mnchen-3ya.de", "xn--mnchen-3ya.de"},
      {"1e100.net", "1e100.net"},
      {"0x7f.example", "0x7f.example"},  // the last label decides
  };
  for (const auto& c : cases) {
    auto d = normalize_host(c.input);
    ASSERT_TRUE(d.ok()) << c.input << ": " << d.error().message;
    EXPECT_EQ(d->kind, Destination::Kind::kName) << c.input;
    EXPECT_EQ(d->host, c.host) << c.input;
    auto again = normalize_host(d->host);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->host, d->host);
  }
}

TEST(NormalizeHost, EverySpellingOfAnAddressIsAnAddress) {
  struct Case {
    std::string input;
    std::string canonical;
  };
  const std::vector<Case> cases = {
      {"127.0.0.1", "127.0.0.1"},
      {"127.0.0.1.", "127.0.0.1"},
      {"2130706433", "127.0.0.1"},
      {"0x7f000001", "127.0.0.1"},
      {"0X7F000001", "127.0.0.1"},
      {"0177.0.0.1", "127.0.0.1"},
      {"127.1", "127.0.0.1"},
      {"127.0.1", "127.0.0.1"},
      {"0x7f.1", "127.0.0.1"},
      {"0x7f.0.0.0x1", "127.0.0.1"},
      {"0", "0.0.0.0"},
      {"169.254.43518", "169.254.169.254"},
      {"[::1]", "::1"},
      {"::1", "::1"},
      {"[::ffff:127.0.0.1]", "::ffff:127.0.0.1"},
      {"::ffff:127.0.0.1", "::ffff:127.0.0.1"},
      {"::ffff:7f00:1", "::ffff:127.0.0.1"},
      {"[::FFFF:7F00:1]", "::ffff:127.0.0.1"},
      {"[2001:DB8:0::1]", "2001:db8::1"},
      {"[fd00:ec2::254]", "fd00:ec2::254"},
  };
  for (const auto& c : cases) {
    auto d = normalize_host(c.input);
    ASSERT_TRUE(d.ok()) << c.input << ": " << d.error().message;
    EXPECT_EQ(d->kind, Destination::Kind::kAddress) << c.input;
    EXPECT_EQ(d->host, c.canonical) << c.input;
    EXPECT_EQ(d->address.to_string(), c.canonical) << c.input;
    auto again = normalize_host(d->host);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->host, d->host);
  }
}

void expect_host_errors(const std::vector<ErrorCase>& cases) {
  for (const auto& c : cases) {
    auto d = normalize_host(c.input);
    ASSERT_FALSE(d.ok()) << "'" << c.input << "' normalized to " << d->host;
    EXPECT_EQ(d.error().code, c.code) << c.input << ": " << d.error().message;
    EXPECT_EQ(d.error().offset, c.offset) << c.input << ": " << d.error().message;
    if (!c.hint_contains.empty()) {
      EXPECT_NE(d.error().hint.find(c.hint_contains), std::string::npos)
          << c.input << ": hint was '" << d.error().hint << "'";
    }
  }
}

TEST(NormalizeHost, Refuses) {
  const std::string label63(63, 'a');
  const std::string name254 = label63 + "." + label63 + "." + label63 + "." + std::string(62, 'b');
  expect_host_errors({
      {"", "empty_host", 0, ""},
      {".", "empty_label", 0, ""},
      {"example.com..", "trailing_dots", 12, ""},
      {".example.com", "empty_label", 0, ""},
      {"a..example.com", "empty_label", 2, ""},
      {name254, "name_too_long", 253, ""},
      {std::string(64, 'a') + ".com", "label_too_long", 0, ""},
      {"-a.example.com", "label_hyphen", 0, ""},
      {"*.example.com", "invalid_character", 0, ""},
      {std::string("exa\0mple.com", 12), "control_character", 3, ""},
      {"example.com\r\n", "control_character", 11, ""},
      {"exa\x7fmple.com", "control_character", 3, ""},
      {"exa mple.com", "invalid_character", 3, ""},
      {"example%2ecom", "percent_encoding", 7, "percent"},
      {"%31%32%37.0.0.1", "percent_encoding", 0, ""},
      {"user@example.com", "userinfo", 4, ""},
      {"example.com/path", "invalid_character", 11, ""},
      {"example.com\\evil.com", "invalid_character", 11, ""},
      {"example.com:443", "unexpected_port", 11, ""},
      {"m\xc3\xbc"
       "nchen.de",
       "non_ascii", 1, "xn--mnchen-3ya.de"},
      {"ex\xef\xbc\x8e"
       "com",
       "non_ascii", 2, ""},  // fullwidth full stop
      // Numeric last label but not an address: never a name.
      {"1.2.3.4.5", "numeric_name", 8, ""},
      {"256.0.0.1", "numeric_name", 8, ""},
      {"4294967296", "numeric_name", 0, ""},
      {"example.123", "numeric_name", 8, ""},
      {"example.0x1", "numeric_name", 8, ""},
      {"08.0.0.1", "numeric_name", 7, ""},
      {"0x7g.1", "numeric_name", 5, ""},
      // IPv6 trouble.
      {"[::1", "invalid_ipv6", 0, ""},
      {"[1.2.3.4]", "invalid_ipv6", 0, ""},
      {"[example.com]", "invalid_ipv6", 0, ""},
      {"::1::", "invalid_ipv6", 0, ""},
      {"fe80::1%25eth0", "percent_encoding", 7, ""},
  });
}

// ---------------------------------------------------------------------------------------------
// parse_destination

TEST(ParseDestination, Accepts) {
  struct Case {
    std::string input;
    std::uint16_t default_port;
    Destination::Kind kind;
    std::string host;
    std::uint16_t port;
  };
  using K = Destination::Kind;
  const std::vector<Case> cases = {
      {"example.com", 443, K::kName, "example.com", 443},
      {"Example.COM.:8443", 0, K::kName, "example.com", 8443},
      {"example.com:1", 0, K::kName, "example.com", 1},
      {"example.com:65535", 0, K::kName, "example.com", 65535},
      {"example.com:443", 80, K::kName, "example.com", 443},
      {"192.0.2.1:443", 0, K::kAddress, "192.0.2.1", 443},
      {"2130706433:80", 0, K::kAddress, "127.0.0.1", 80},
      {"127.1:22", 0, K::kAddress, "127.0.0.1", 22},
      {"[::1]", 443, K::kAddress, "::1", 443},
      {"[::1]:8080", 0, K::kAddress, "::1", 8080},
      {"[2001:db8::1]:443", 0, K::kAddress, "2001:db8::1", 443},
      {"[::ffff:169.254.169.254]:80", 0, K::kAddress, "::ffff:169.254.169.254", 80},
  };
  for (const auto& c : cases) {
    auto d = parse_destination(c.input, c.default_port);
    ASSERT_TRUE(d.ok()) << c.input << ": " << d.error().message;
    EXPECT_EQ(d->kind, c.kind) << c.input;
    EXPECT_EQ(d->host, c.host) << c.input;
    EXPECT_EQ(d->port, c.port) << c.input;
  }
}

TEST(ParseDestination, Refuses) {
  struct Case {
    std::string input;
    std::uint16_t default_port;
    std::string code;
    std::size_t offset;
    std::string hint_contains;
  };
  const std::vector<Case> cases = {
      {"", 443, "empty_destination", 0, ""},
      {"example.com", 0, "port_required", 11, "host:port"},
      {"[::1]", 0, "port_required", 5, ""},
      {"example.com:", 443, "missing_port", 12, "1 to 65535"},
      {"example.com:0", 443, "port_out_of_range", 12, ""},
      {"example.com:65536", 443, "port_out_of_range", 12, ""},
      {"example.com:99999", 443, "port_out_of_range", 12, ""},
      {"example.com:100000", 443, "port_out_of_range", 12, ""},
      {"example.com:4294967739", 443, "port_out_of_range", 12, ""},  // 443 + 2^32
      {"example.com:0443", 443, "invalid_port", 12, "write 443"},
      {"example.com:00", 443, "invalid_port", 12, ""},
      {"example.com:+443", 443, "invalid_port", 12, ""},
      {"example.com:-1", 443, "invalid_port", 12, ""},
      {"example.com: 443", 443, "invalid_port", 12, ""},
      {"example.com:443 ", 443, "invalid_port", 15, ""},
      {"example.com:0x1bb", 443, "invalid_port", 13, ""},
      {"example.com:https", 443, "invalid_port", 12, ""},
      {"example.com:44.3", 443, "invalid_port", 14, ""},
      {"2001:db8::1", 443, "ambiguous_ipv6", 0, "[2001:db8::1]"},
      {"2001:db8::1:443", 443, "ambiguous_ipv6", 0, ""},
      {"::1:443", 443, "ambiguous_ipv6", 0, ""},
      {"[::1", 443, "unclosed_bracket", 0, ""},
      {"[::1]443", 443, "invalid_destination", 5, ""},
      {"[::1]:", 443, "missing_port", 6, ""},
      {"[::1]:0", 443, "port_out_of_range", 6, ""},
      {"[127.0.0.1]:80", 443, "invalid_ipv6", 0, ""},
      {"exa mple.com:443", 443, "invalid_character", 3, ""},
      {"user@example.com:443", 443, "userinfo", 4, ""},
      {"example.123:443", 443, "numeric_name", 8, ""},
      {":443", 443, "empty_host", 0, ""},
  };
  for (const auto& c : cases) {
    auto d = parse_destination(c.input, c.default_port);
    ASSERT_FALSE(d.ok()) << "'" << c.input << "' parsed as " << d->host << ":" << d->port;
    EXPECT_EQ(d.error().code, c.code) << c.input << ": " << d.error().message;
    EXPECT_EQ(d.error().offset, c.offset) << c.input << ": " << d.error().message;
    if (!c.hint_contains.empty()) {
      EXPECT_NE(d.error().hint.find(c.hint_contains), std::string::npos)
          << c.input << ": hint was '" << d.error().hint << "'";
    }
  }
}

}  // namespace
}  // namespace moat::core::policy

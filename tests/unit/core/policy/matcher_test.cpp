#include "core/policy/matcher.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <initializer_list>
#include <new>
#include <string>
#include <vector>

// Counts every allocation of this test binary, so a test can check that a lookup makes none.
namespace {
std::atomic<std::size_t> g_allocations{0};
}  // namespace

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
// The nothrow forms too: a sanitizer's own versions must never pair with our deletes.
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace moat::core::policy {
namespace {

HostPattern pattern(std::string_view text) {
  auto p = parse_host_pattern(text);
  EXPECT_TRUE(p.ok()) << text;
  return p.ok() ? *p : HostPattern{};
}

Service service(std::string id, std::initializer_list<std::string_view> hosts,
                std::vector<std::uint16_t> ports = {443}) {
  Service s;
  s.id = std::move(id);
  s.name = s.id;
  for (auto h : hosts) s.hosts.push_back(pattern(h));
  s.ports = std::move(ports);
  return s;
}

std::shared_ptr<const Policy> policy(std::string name, std::vector<Service> services) {
  auto p = std::make_shared<Policy>();
  p->metadata.name = std::move(name);
  p->services = std::move(services);
  return p;
}

Destination destination(std::string_view text) {
  auto d = parse_destination(text, 443);
  EXPECT_TRUE(d.ok()) << text;
  return d.ok() ? *d : Destination{};
}

struct Expect {
  std::string destination;
  Verdict verdict;
  std::string service;  // "" when none
  std::string pattern;  // normalized text of the pattern that decided, "" when none
};

void expect_matches(const Matcher& matcher, const std::vector<Expect>& cases) {
  for (const auto& c : cases) {
    const Match m = matcher.match(destination(c.destination));
    EXPECT_STREQ(to_string(m.verdict), to_string(c.verdict)) << c.destination;
    if (c.service.empty()) {
      EXPECT_EQ(m.service, nullptr) << c.destination;
      EXPECT_EQ(m.policy, nullptr) << c.destination;
      EXPECT_EQ(m.pattern, nullptr) << c.destination;
      continue;
    }
    ASSERT_NE(m.service, nullptr) << c.destination;
    ASSERT_NE(m.policy, nullptr) << c.destination;
    ASSERT_NE(m.pattern, nullptr) << c.destination;
    EXPECT_EQ(m.service->id, c.service) << c.destination;
    EXPECT_EQ(m.pattern->text, c.pattern) << c.destination;
  }
}

TEST(Matcher, ExactAndWildcardSemantics) {
  const std::vector<std::shared_ptr<const Policy>> policies = {
      policy("vendor", {service("app", {"*.example.io"}), service("api", {"api.example.com"}),
                        service("srv", {"*._tcp.example.net"})})};
  const Matcher matcher(policies);
  using V = Verdict;
  expect_matches(matcher,
                 {
                     {"api.example.com", V::kAllowed, "api", "api.example.com"},
                     {"API.Example.Com.", V::kAllowed, "api", "api.example.com"},
                     {"api.example.com:443", V::kAllowed, "api", "api.example.com"},
                     {"www.api.example.com", V::kHostNotInPolicy, "", ""},  // exact is exact
                     {"example.com", V::kHostNotInPolicy, "", ""},
                     {"a.example.io", V::kAllowed, "app", "*.example.io"},
                     {"A.EXAMPLE.IO.", V::kAllowed, "app", "*.example.io"},
                     {"a.b.example.io", V::kAllowed, "app", "*.example.io"},
                     {"a.b.c.d.e.example.io", V::kAllowed, "app", "*.example.io"},
                     {"_x.example.io", V::kAllowed, "app", "*.example.io"},
                     {"example.io", V::kHostNotInPolicy, "", ""},  // not the parent itself
                     {"example.io.", V::kHostNotInPolicy, "", ""},
                     {"evilexample.io", V::kHostNotInPolicy, "", ""},  // never a string suffix
                     {"a.evilexample.io", V::kHostNotInPolicy, "", ""},
                     {"example.io.evil.com", V::kHostNotInPolicy, "", ""},
                     {"xexample.io", V::kHostNotInPolicy, "", ""},
                     {"io", V::kHostNotInPolicy, "", ""},
                     {"x._tcp.example.net", V::kAllowed, "srv", "*._tcp.example.net"},
                     {"_tcp.example.net", V::kHostNotInPolicy, "", ""},
                 });
}

TEST(Matcher, MostSpecificPatternListingThePortWins) {
  const std::vector<std::shared_ptr<const Policy>> policies = {
      policy("first", {service("broad", {"*.example.io"}, {443, 80}),
                       service("narrow", {"*.eu.example.io"}, {443}),
                       service("one", {"api.eu.example.io"}, {8443}),
                       service("closed", {"closed.example.io"}, {})}),
  };
  const Matcher matcher(policies);
  using V = Verdict;
  expect_matches(
      matcher,
      {
          // Exact beats every wildcard.
          {"api.eu.example.io:8443", V::kAllowed, "one", "api.eu.example.io"},
          // The exact service does not list 443: the next most specific one that does wins.
          {"api.eu.example.io:443", V::kAllowed, "narrow", "*.eu.example.io"},
          {"api.eu.example.io:80", V::kAllowed, "broad", "*.example.io"},
          // Nobody lists 22: refused, naming the most specific service that matched the host.
          {"api.eu.example.io:22", V::kPortNotAllowed, "one", "api.eu.example.io"},
          {"x.eu.example.io:22", V::kPortNotAllowed, "narrow", "*.eu.example.io"},
          {"x.eu.example.io:443", V::kAllowed, "narrow", "*.eu.example.io"},
          {"x.eu.example.io:80", V::kAllowed, "broad", "*.example.io"},
          {"eu.example.io:443", V::kAllowed, "broad", "*.example.io"},  // not below *.eu
          {"x.us.example.io:8443", V::kPortNotAllowed, "broad", "*.example.io"},
          // A service without ports allows nothing (deny by default).
          {"closed.example.io:443", V::kAllowed, "broad", "*.example.io"},
          {"closed.example.io:22", V::kPortNotAllowed, "closed", "closed.example.io"},
          {"other.com:443", V::kHostNotInPolicy, "", ""},
      });
}

TEST(Matcher, TiesGoToTheEarlierPolicyThenService) {
  const std::vector<std::shared_ptr<const Policy>> policies = {
      policy("a", {service("a1", {"other.net"}), service("a2", {"*.example.io"}),
                   service("a3", {"*.example.io", "api.example.io"})}),
      policy("b", {service("b1", {"api.example.io"}), service("b2", {"*.example.io"}, {80})}),
  };
  const Matcher matcher(policies);
  using V = Verdict;
  expect_matches(matcher,
                 {
                     {"x.example.io", V::kAllowed, "a2", "*.example.io"},  // a2 before a3 before b2
                     {"x.example.io:80", V::kAllowed, "b2", "*.example.io"},
                     {"api.example.io", V::kAllowed, "a3", "api.example.io"},  // policy a before b
                     {"api.example.io:80", V::kAllowed, "b2", "*.example.io"},
                     {"api.example.io:22", V::kPortNotAllowed, "a3", "api.example.io"},
                     {"x.example.io:22", V::kPortNotAllowed, "a2", "*.example.io"},
                 });
  // The match names the policy too.
  const Match m = matcher.match(destination("api.example.io:80"));
  ASSERT_NE(m.policy, nullptr);
  EXPECT_EQ(m.policy->metadata.name, "b");
}

TEST(Matcher, AddressesMatchOnlyAddressPatternsLongestPrefixFirst) {
  const std::vector<std::shared_ptr<const Policy>> policies = {
      policy("p", {service("wide", {"10.0.0.0/8", "2001:db8::/32"}, {443, 80}),
                   service("narrow", {"10.1.0.0/16"}, {443}),
                   service("host", {"10.1.2.3", "2001:db8::1"}, {8443}),
                   service("names", {"localhost", "*.example.io"}), service("v6", {"::1"}, {443})}),
  };
  const Matcher matcher(policies);
  using V = Verdict;
  expect_matches(matcher,
                 {
                     {"10.1.2.3:8443", V::kAllowed, "host", "10.1.2.3"},
                     {"10.1.2.3:443", V::kAllowed, "narrow", "10.1.0.0/16"},
                     {"10.1.2.3:80", V::kAllowed, "wide", "10.0.0.0/8"},
                     {"10.1.2.3:22", V::kPortNotAllowed, "host", "10.1.2.3"},
                     {"10.2.0.1:443", V::kAllowed, "wide", "10.0.0.0/8"},
                     {"10.1.255.255:443", V::kAllowed, "narrow", "10.1.0.0/16"},
                     {"11.0.0.1:443", V::kHostNotInPolicy, "", ""},
                     // Odd spellings are the same address.
                     {"167838211:8443", V::kAllowed, "host", "10.1.2.3"},
                     {"10.1.515:8443", V::kAllowed, "host", "10.1.2.3"},
                     {"012.1.2.3:8443", V::kAllowed, "host", "10.1.2.3"},
                     {"[2001:db8::1]:8443", V::kAllowed, "host", "2001:db8::1"},
                     {"[2001:db8::2]:443", V::kAllowed, "wide", "2001:db8::/32"},
                     {"[2001:db9::1]:443", V::kHostNotInPolicy, "", ""},
                     {"[::1]:443", V::kAllowed, "v6", "::1"},
                     // An IPv4-mapped IPv6 address is not an IPv4 pattern (deny by default).
                     {"[::ffff:10.1.2.3]:8443", V::kHostNotInPolicy, "", ""},
                     // Names never match address patterns and addresses never match names.
                     {"127.0.0.1:443", V::kHostNotInPolicy, "", ""},
                     {"localhost:443", V::kAllowed, "names", "localhost"},
                 });
  EXPECT_EQ(matcher.match_name("10.1.2.3", 8443).verdict, Verdict::kHostNotInPolicy);
  EXPECT_EQ(matcher.match_name("2001:db8::1", 8443).verdict, Verdict::kHostNotInPolicy);
}

TEST(Matcher, CatchAllNetworks) {
  const std::vector<std::shared_ptr<const Policy>> policies = {
      policy("p", {service("any4", {"0.0.0.0/0"}), service("any6", {"::/0"})})};
  const Matcher matcher(policies);
  EXPECT_EQ(matcher.match(destination("203.0.113.7")).service->id, "any4");
  EXPECT_EQ(matcher.match(destination("[2001:db8::7]")).service->id, "any6");
  EXPECT_EQ(matcher.match(destination("example.com")).verdict, Verdict::kHostNotInPolicy);
}

TEST(Matcher, MatchNameTakesNormalizedHosts) {
  const std::vector<std::shared_ptr<const Policy>> policies = {
      policy("p", {service("app", {"*.example.io", "api.example.com"})})};
  const Matcher matcher(policies);
  EXPECT_EQ(matcher.match_name("a.example.io", 443).verdict, Verdict::kAllowed);
  EXPECT_EQ(matcher.match_name("api.example.com", 443).verdict, Verdict::kAllowed);
  EXPECT_EQ(matcher.match_name("api.example.com", 80).verdict, Verdict::kPortNotAllowed);
  EXPECT_EQ(matcher.match_name("", 443).verdict, Verdict::kHostNotInPolicy);
  EXPECT_EQ(matcher.match_name(".", 443).verdict, Verdict::kHostNotInPolicy);
  EXPECT_EQ(matcher.match_name(".example.io", 443).verdict, Verdict::kAllowed);  // not normalized
  EXPECT_EQ(matcher.match_name("a..example.io", 443).verdict, Verdict::kAllowed);
  EXPECT_EQ(matcher.match_name("example.io", 443).verdict, Verdict::kHostNotInPolicy);
  EXPECT_EQ(matcher.match_name("example.io.", 443).verdict, Verdict::kHostNotInPolicy);
}

TEST(Matcher, EmptyMovedAndNullPolicies) {
  const Matcher empty;
  EXPECT_EQ(empty.match(destination("example.com")).verdict, Verdict::kHostNotInPolicy);
  EXPECT_EQ(empty.match_name("example.com", 443).verdict, Verdict::kHostNotInPolicy);

  const std::vector<std::shared_ptr<const Policy>> policies = {
      nullptr, policy("p", {service("s", {"example.com"})}), policy("none", {})};
  Matcher first(policies);
  Matcher second = std::move(first);
  EXPECT_EQ(second.match(destination("example.com")).verdict, Verdict::kAllowed);
  Matcher third;
  third = std::move(second);
  EXPECT_EQ(third.match(destination("example.com")).verdict, Verdict::kAllowed);
}

TEST(Matcher, ServicesWithManyPorts) {
  const std::vector<std::shared_ptr<const Policy>> policies = {policy(
      "p", {service("many", {"*.example.io"}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 65535})})};
  const Matcher matcher(policies);
  for (std::uint16_t port : {1, 6, 7, 9, 65535}) {
    EXPECT_EQ(matcher.match_name("a.example.io", port).verdict, Verdict::kAllowed) << port;
  }
  for (std::uint16_t port : {0, 10, 443, 65534}) {
    EXPECT_EQ(matcher.match_name("a.example.io", port).verdict, Verdict::kPortNotAllowed) << port;
  }
}

TEST(Matcher, VerdictNames) {
  EXPECT_STREQ(to_string(Verdict::kAllowed), "allowed");
  EXPECT_STREQ(to_string(Verdict::kHostNotInPolicy), "host_not_in_policy");
  EXPECT_STREQ(to_string(Verdict::kPortNotAllowed), "port_not_allowed");
}

TEST(Matcher, LookupsDoNotAllocate) {
  const std::vector<std::shared_ptr<const Policy>> policies = {policy(
      "p", {service("app",
                    {"*.example.io", "api.example.com", "10.0.0.0/8", "10.1.2.3", "2001:db8::/32"}),
            service("deep", {"*.a.b.c.example.io"}, {80})})};
  const Matcher matcher(policies);
  // Long names so that no small-string buffer could hide an allocation.
  const std::string long_hit = "a-rather-long-label-that-defeats-sso.x.y.z.a.b.c.example.io";
  const std::string long_miss = "a-rather-long-label-that-defeats-sso.x.y.z.nowhere.invalid";
  const std::vector<Destination> destinations = {destination("api.example.com"),
                                                 destination("x.y.example.io"),
                                                 destination(long_hit + ":80"),
                                                 destination(long_miss),
                                                 destination("api.example.com:22"),
                                                 destination("10.1.2.3"),
                                                 destination("10.9.9.9:80"),
                                                 destination("[2001:db8::5]"),
                                                 destination("[::1]")};
  std::size_t allowed = 0;
  const std::size_t before = g_allocations.load();
  for (int round = 0; round < 100; ++round) {
    for (const auto& d : destinations) allowed += matcher.match(d).verdict == Verdict::kAllowed;
    allowed += matcher.match_name(long_hit, 443).verdict == Verdict::kAllowed;
    allowed += matcher.match_name(long_miss, 443).verdict == Verdict::kAllowed;
  }
  const std::size_t after = g_allocations.load();
  EXPECT_EQ(after - before, 0u);
  EXPECT_EQ(allowed, 100u * 6);
  // The counter works: building a matcher does allocate.
  { const Matcher another(policies); }
  EXPECT_GT(g_allocations.load(), after);
}

TEST(Matcher, ManyServicesScale) {
  // 5,000 services: lookups must still find the right one (and the build must not be slow).
  std::vector<Service> services;
  for (int i = 0; i < 5000; ++i) {
    const std::string n = std::to_string(i);
    services.push_back(
        service("s" + n, {"host" + n + ".example.com", "*.zone" + n + ".example.org"}));
  }
  const std::vector<std::shared_ptr<const Policy>> policies = {policy("big", std::move(services))};
  const Matcher matcher(policies);
  EXPECT_EQ(matcher.match_name("host4321.example.com", 443).service->id, "s4321");
  EXPECT_EQ(matcher.match_name("a.b.zone17.example.org", 443).service->id, "s17");
  EXPECT_EQ(matcher.match_name("zone17.example.org", 443).verdict, Verdict::kHostNotInPolicy);
  EXPECT_EQ(matcher.match_name("host5000.example.com", 443).verdict, Verdict::kHostNotInPolicy);
}

}  // namespace
}  // namespace moat::core::policy

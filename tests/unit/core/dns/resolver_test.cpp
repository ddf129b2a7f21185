#include "core/dns/resolver.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

namespace moat::core::net {
namespace {

IpAddress ip(const char* text) { return *parse_ip_strict(text); }

// An in-process DNS server on 127.0.0.1 (loopback only): answers every A query with 192.0.2.1
// (TTL 300) and every AAAA query with NODATA; counts the queries.
class FakeServer {
 public:
  explicit FakeServer(asio::io_context& context)
      : socket_(context, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    asio::co_spawn(context, serve(), asio::detached);
  }
  asio::ip::udp::endpoint endpoint() const { return socket_.local_endpoint(); }
  int queries() const { return queries_; }
  void stop() {
    asio::error_code ignored;
    socket_.close(ignored);
  }

 private:
  asio::awaitable<void> serve() {
    std::vector<std::uint8_t> buffer(1500);
    for (;;) {
      asio::ip::udp::endpoint peer;
      asio::error_code ec;
      std::size_t n = co_await socket_.async_receive_from(
          asio::buffer(buffer), peer, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      ++queries_;
      // The question ends 4 bytes after the root label that follows offset 12.
      std::size_t end = 12;
      while (end < n && buffer[end] != 0) end += 1 + buffer[end];
      end += 5;
      std::vector<std::uint8_t> out(buffer.begin(), buffer.begin() + static_cast<long>(end));
      const bool is_a = buffer[end - 3] == dns::kTypeA;
      out[2] = 0x81;
      out[3] = 0x80;
      out[7] = is_a ? 1 : 0;  // ANCOUNT
      out[11] = 0;            // ARCOUNT: no OPT back
      if (is_a) {
        for (std::uint8_t b : {0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c, 0x00,
                               0x04, 192, 0, 2, 1}) {
          out.push_back(b);
        }
      }
      co_await socket_.async_send_to(asio::buffer(out), peer,
                                     asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  asio::ip::udp::socket socket_;
  int queries_ = 0;
};

// Runs resolve(name) for each name in order on `context`; returns the results.
std::vector<Result<Resolution>> resolve_all(asio::io_context& context, Resolver& resolver,
                                            std::vector<std::string> names,
                                            FakeServer* server = nullptr) {
  std::vector<Result<Resolution>> results;
  asio::co_spawn(
      context,
      [&]() -> asio::awaitable<void> {
        for (const auto& name : names) results.push_back(co_await resolver.resolve(name));
        if (server) server->stop();
      },
      asio::detached);
  context.run();
  context.restart();
  return results;
}

TEST(ResolvConf, NameserversAndOptions) {
  auto config = parse_resolv_conf(
      "# generated\n; also a comment\nsearch corp.example\nnameserver 10.0.0.53\n"
      "nameserver  fd00::53\t\noptions ndots:2 timeout:3 attempts:9 rotate\n"
      "nameserver 10.0.0.54\nnameserver 10.0.0.55\n",
      "resolv.conf");
  ASSERT_TRUE(config.ok()) << config.error().message;
  ASSERT_EQ(config->nameservers.size(), 3u);  // glibc MAXNS
  EXPECT_EQ(config->nameservers[0].address().to_string(), "10.0.0.53");
  EXPECT_EQ(config->nameservers[0].port(), 53);
  EXPECT_EQ(config->nameservers[1].address().to_string(), "fd00::53");
  EXPECT_EQ(config->timeout, std::chrono::seconds(3));
  EXPECT_EQ(config->attempts, 5);  // clamped like glibc
}

TEST(ResolvConf, Errors) {
  auto none = parse_resolv_conf("search example\n", "rc");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, "resolv_conf_no_nameserver");
  auto bad = parse_resolv_conf("nameserver 10.0.0.300\n", "rc");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, "resolv_conf_bad_nameserver");
  EXPECT_NE(bad.error().message.find("rc:1"), std::string::npos);
  auto missing = system_resolver_config("/nonexistent/resolv.conf");
  EXPECT_FALSE(missing.ok());
}

TEST(Hosts, ParsesAndMerges) {
  auto hosts = parse_hosts(
      "127.0.0.1 localhost # the usual\n::1 localhost ip6-localhost\n"
      "  192.0.2.5\tApp.Example.  app\n# 192.0.2.6 commented.example\n"
      "fe80::1%eth0 zoned.example\n0177.0.0.1 octal.example\n192.0.2.7 bad..name ok.example\n"
      "192.0.2.5 app.example\n");
  EXPECT_EQ(hosts["localhost"], (std::vector<IpAddress>{ip("127.0.0.1"), ip("::1")}));
  EXPECT_EQ(hosts["ip6-localhost"], (std::vector<IpAddress>{ip("::1")}));
  EXPECT_EQ(hosts["app.example"], (std::vector<IpAddress>{ip("192.0.2.5")}));  // deduplicated
  EXPECT_EQ(hosts["ok.example"], (std::vector<IpAddress>{ip("192.0.2.7")}));
  EXPECT_EQ(hosts.count("commented.example"), 0u);
  EXPECT_EQ(hosts.count("zoned.example"), 0u);
  EXPECT_EQ(hosts.count("octal.example"), 0u);  // not a canonical address
}

TEST(Resolver, OverridesThenHostsWithoutDns) {
  char path[] = "/tmp/moat-hosts-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << "192.0.2.1 both.example hosts.example\n";
  asio::io_context context(1);
  ResolverConfig config;
  config.hosts_file = path;
  config.overrides["Both.Example."] = {ip("192.0.2.2")};
  Resolver resolver(context, config);
  auto results = resolve_all(context, resolver, {"both.example", "hosts.example", "dns.example"});
  std::remove(path);
  ASSERT_TRUE(results[0].ok());
  EXPECT_EQ(results[0]->source, Resolution::Source::kOverride);
  EXPECT_EQ(results[0]->addresses, (std::vector<IpAddress>{ip("192.0.2.2")}));
  ASSERT_TRUE(results[1].ok());
  EXPECT_EQ(results[1]->source, Resolution::Source::kHosts);
  ASSERT_FALSE(results[2].ok());
  EXPECT_EQ(results[2].error().code, "dns_no_nameservers");
  EXPECT_FALSE(resolver.hosts_error().has_value());
  EXPECT_EQ(resolver.counters().static_hits, 2u);
}

TEST(Resolver, MissingHostsFileIsReportedNotFatal) {
  asio::io_context context(1);
  ResolverConfig config;
  config.hosts_file = "/nonexistent/hosts";
  Resolver resolver(context, config);
  ASSERT_TRUE(resolver.hosts_error().has_value());
  EXPECT_EQ(resolver.hosts_error()->code, "file_open");
}

TEST(Resolver, BadNameIsRefusedBeforeAnyQuery) {
  asio::io_context context(1);
  FakeServer server(context);
  ResolverConfig config;
  config.hosts_file = "";
  config.nameservers = {server.endpoint()};
  Resolver resolver(context, config);
  auto results = resolve_all(context, resolver, {"a..b"}, &server);
  ASSERT_FALSE(results[0].ok());
  EXPECT_EQ(results[0].error().code, "dns_bad_name");
  EXPECT_EQ(server.queries(), 0);
}

TEST(Resolver, CachesAndStaysBounded) {
  asio::io_context context(1);
  FakeServer server(context);
  ResolverConfig config;
  config.hosts_file = "";
  config.nameservers = {server.endpoint()};
  config.max_cache_entries = 2;
  Resolver resolver(context, config);
  auto results = resolve_all(context, resolver,
                             {"a.example", "a.example", "b.example", "c.example", "a.example"},
                             &server);
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->addresses, (std::vector<IpAddress>{ip("192.0.2.1")}));
  }
  EXPECT_EQ(results[0]->source, Resolution::Source::kDns);
  EXPECT_EQ(results[0]->ttl, std::chrono::seconds(300));
  EXPECT_EQ(results[1]->source, Resolution::Source::kCache);
  // c.example evicted a.example (the oldest), so the last lookup went to DNS again.
  EXPECT_EQ(results[4]->source, Resolution::Source::kDns);
  EXPECT_EQ(resolver.cache_size(), 2u);
  EXPECT_GE(resolver.counters().cache_evictions, 1u);
  EXPECT_EQ(server.queries(), 8);  // A + AAAA for four DNS lookups
  EXPECT_EQ(resolver.counters().queries_sent, 8u);
}

TEST(Resolver, ConcurrentLookupsOfOneNameShareTheQueries) {
  asio::io_context context(1);
  FakeServer server(context);
  ResolverConfig config;
  config.hosts_file = "";
  config.nameservers = {server.endpoint()};
  Resolver resolver(context, config);
  std::vector<Result<Resolution>> results;
  int left = 4;
  for (int i = 0; i < 4; ++i) {
    asio::co_spawn(
        context,
        [&]() -> asio::awaitable<void> {
          results.push_back(co_await resolver.resolve("same.example"));
          if (--left == 0) server.stop();
        },
        asio::detached);
  }
  context.run();
  ASSERT_EQ(results.size(), 4u);
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->addresses, (std::vector<IpAddress>{ip("192.0.2.1")}));
  }
  EXPECT_EQ(server.queries(), 2);
  EXPECT_EQ(resolver.counters().coalesced, 3u);
}

TEST(Resolver, SilentServerTimesOutWithinTheBound) {
  asio::io_context context(1);
  // A bound socket that never answers.
  asio::ip::udp::socket silent(context,
                               asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  ResolverConfig config;
  config.hosts_file = "";
  config.nameservers = {silent.local_endpoint()};
  config.timeout = std::chrono::milliseconds(100);
  config.attempts = 2;
  Resolver resolver(context, config);
  const auto start = std::chrono::steady_clock::now();
  auto results = resolve_all(context, resolver, {"quiet.example"});
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(results[0].ok());
  EXPECT_EQ(results[0].error().code, "dns_timeout");
  EXPECT_TRUE(results[0].error().retryable);
  EXPECT_GE(took, std::chrono::milliseconds(190));
  EXPECT_LT(took, std::chrono::milliseconds(1500));
  EXPECT_EQ(resolver.counters().timeouts, 4u);  // 2 attempts x (A, AAAA)
}

}  // namespace
}  // namespace moat::core::net

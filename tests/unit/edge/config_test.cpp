#include "edge/config.hpp"
#include "edge/h2_session.hpp"

#include <gtest/gtest.h>

#include <string>

namespace moat::edge {
namespace {

const std::string kHead = "moat: gateway/v1\nedge:\n  listen_https: [127.0.0.1:8443]\n"
                          "  certificates: [{cert: a.crt, key: a.key}]\n"
                          "  pools: [{name: app, members: [\"127.0.0.1:9000\"]}]\n";

EdgeConfigLoad load(const std::string& text) {
  return load_edge_config_text(text, "edge.yaml", "/etc/moat");
}

std::string errors(const EdgeConfigLoad& l) {
  std::string out;
  for (const auto& d : l.diagnostics) out += core::config::format(d) + "\n";
  return out;
}

TEST(EdgeConfig, Minimal) {
  auto l = load(kHead + "  routes: [{host: \"*.example.io\", pool: app}]\n");
  ASSERT_TRUE(l.config) << errors(l);
  const auto& c = *l.config;
  EXPECT_EQ(c.certificates.front().cert, "/etc/moat/a.crt");
  EXPECT_EQ(c.pools.front().members.front().port, 9000);
  EXPECT_EQ(c.hsts_value(), "max-age=63072000; includeSubDomains");
  EXPECT_EQ(c.min_tls_version, 0x0303);
  EXPECT_EQ(c.limits.max_body_bytes, 1024u * 1024u);
}

TEST(EdgeConfig, UnknownKeysAreLocated) {
  auto l = load(kHead + "  routes: [{host: a.example.io, pool: app}]\n  limts: {}\n");
  EXPECT_FALSE(l.config);
  EXPECT_NE(errors(l).find("edge.yaml:7:3: error: unknown key 'limts' in edge"), std::string::npos)
      << errors(l);
  EXPECT_NE(errors(l).find("did you mean 'limits'"), std::string::npos);
}

TEST(EdgeConfig, RouteErrors) {
  auto l = load(kHead + "  routes:\n    - {host: a.example.io, pool: nope}\n"
                        "    - {host: \"*..example.io\", pool: app}\n"
                        "    - {host: b.example.io, path_prefix: api, pool: app}\n");
  EXPECT_FALSE(l.config);
  const std::string e = errors(l);
  EXPECT_NE(e.find("unknown pool 'nope'"), std::string::npos) << e;
  EXPECT_NE(e.find("edge.yaml:8:"), std::string::npos) << e;
  EXPECT_NE(e.find("path_prefix 'api' must start with '/'"), std::string::npos) << e;
}

TEST(EdgeConfig, MembersMustBeAddresses) {
  auto l = load("moat: gateway/v1\nedge:\n  listen_https: [127.0.0.1:8443]\n"
                "  certificates: [{cert: a.crt, key: a.key}]\n"
                "  pools: [{name: app, members: [\"app.internal:9000\"]}]\n"
                "  routes: [{pool: app}]\n");
  EXPECT_FALSE(l.config);
  EXPECT_NE(errors(l).find("must be an IP address with a port"), std::string::npos) << errors(l);
}

TEST(EdgeConfig, RouteSelection) {
  auto l = load(kHead + "  routes:\n"
                        "    - {pool: app}\n"
                        "    - {host: \"*.example.io\", pool: app}\n"
                        "    - {host: \"*.api.example.io\", pool: app}\n"
                        "    - {host: www.example.io, pool: app}\n"
                        "    - {host: www.example.io, path_prefix: /api, pool: app}\n");
  ASSERT_TRUE(l.config) << errors(l);
  const auto& c = *l.config;
  auto label = [&](std::string_view host, std::string_view path) {
    const Route* r = c.route_for(host, path);
    return r ? r->label : std::string("none");
  };
  EXPECT_EQ(label("www.example.io", "/"), "www.example.io/");
  EXPECT_EQ(label("www.example.io", "/api/x"), "www.example.io/api");
  EXPECT_EQ(label("www.example.io", "/apix"), "www.example.io/");
  EXPECT_EQ(label("v1.api.example.io", "/"), "*.api.example.io/");
  EXPECT_EQ(label("a.example.io", "/"), "*.example.io/");
  EXPECT_EQ(label("example.io", "/"), "*/");           // a wildcard never covers its parent
  EXPECT_EQ(label("evilexample.io", "/"), "*/");       // nor a string suffix
}

TEST(EdgeConfig, PathPrefix) {
  EXPECT_TRUE(path_has_prefix("/api", "/api"));
  EXPECT_TRUE(path_has_prefix("/api/v1", "/api"));
  EXPECT_FALSE(path_has_prefix("/apix", "/api"));
  EXPECT_FALSE(path_has_prefix("/apix", "/ap/"));
  EXPECT_TRUE(path_has_prefix("/static/x", "/static/"));
  EXPECT_TRUE(path_has_prefix("/anything", "/"));
}

TEST(EdgeConfig, ExampleLoads) {
  auto l = load_edge_config(std::string(MOAT_SOURCE_DIR) + "/examples/edge.yaml");
  ASSERT_TRUE(l.config) << errors(l);
  EXPECT_FALSE(l.config->policy_file.empty());
  EXPECT_EQ(l.config->routes.size(), 2u);
}

}  // namespace
}  // namespace moat::edge

namespace moat::edge {
namespace {

TEST(EdgeConfig, GuardDefaults) {
  auto l = load(kHead + "  routes: [{pool: app}]\n");
  ASSERT_TRUE(l.config) << errors(l);
  const Limits& x = l.config->limits;
  EXPECT_EQ(x.max_connections, 20'000u);
  EXPECT_EQ(x.max_connections_per_client, 256u);
  EXPECT_EQ(x.handshakes_per_second_per_client, 20u);
  EXPECT_EQ(x.handshake_burst_per_client, 40u);
  EXPECT_EQ(x.requests_per_second_per_client, 200u);
  EXPECT_EQ(x.request_burst_per_client, 400u);
  EXPECT_EQ(x.ban_after_trips, 20u);
  EXPECT_EQ(x.ban_window.count(), 10'000);
  EXPECT_EQ(x.ban_time.count(), 10'000);
  EXPECT_EQ(x.ban_time_max.count(), 600'000);
  EXPECT_EQ(x.client_prefix_v4, 24u);
  EXPECT_EQ(x.client_prefix_v6, 64u);
}

TEST(EdgeConfig, GuardKeys) {
  auto l = load(kHead + "  routes: [{pool: app}]\n  limits:\n    max_connections: 10\n" +
                "    max_connections_per_client: 0\n    requests_per_second_per_client: 50\n"
                "    handshakes_per_second_per_client: 3\n    handshake_burst_per_client: 4\n"
                "    ban_after_trips: 5\n    ban_time: 1s\n    ban_time_max: 2s\n"
                "    client_prefix_v4: 32\n    client_prefix_v6: 48\n");
  ASSERT_TRUE(l.config) << errors(l);
  const Limits& x = l.config->limits;
  EXPECT_EQ(x.max_connections, 10u);
  EXPECT_EQ(x.max_connections_per_client, 0u);
  EXPECT_EQ(x.requests_per_second_per_client, 50u);
  EXPECT_EQ(x.request_burst_per_client, 100u);  // twice the rate when not given
  EXPECT_EQ(x.handshake_burst_per_client, 4u);
  EXPECT_EQ(x.ban_after_trips, 5u);
  EXPECT_EQ(x.ban_time.count(), 1'000);
  EXPECT_EQ(x.client_prefix_v4, 32u);
  EXPECT_EQ(x.client_prefix_v6, 48u);
}

TEST(EdgeConfig, GuardErrors) {
  auto bad = [](const std::string& limits) {
    auto l = load(kHead + "  routes: [{pool: app}]\n  limits:\n" + limits);
    EXPECT_FALSE(l.config) << limits;
    return errors(l);
  };
  EXPECT_NE(bad("    client_prefix_v4: 33\n").find("client_prefix_v4"), std::string::npos);
  EXPECT_NE(bad("    ban_time: 20m\n").find("ban_time must not be longer than ban_time_max"),
            std::string::npos);
  EXPECT_NE(bad("    request_burst_per_client: 0\n").find("request_burst_per_client"),
            std::string::npos);
  EXPECT_NE(bad("    ban_window: 0s\n").find("more than zero"), std::string::npos);
  EXPECT_NE(bad("    max_conections: 1\n").find("did you mean 'max_connections'"),
            std::string::npos);
}

}  // namespace
}  // namespace moat::edge

namespace moat::edge {
namespace {

const std::string kPoolsHead = "moat: gateway/v1\nedge:\n  listen_https: [127.0.0.1:8443]\n"
                               "  certificates: [{cert: a.crt, key: a.key}]\n"
                               "  routes: [{pool: app}]\n"
                               "  pools:\n";

TEST(EdgeConfig, PoolDefaults) {
  auto l = load(kPoolsHead + "    - {name: app, members: [\"127.0.0.1:9000\", \"[::1]:9001\"]}\n");
  ASSERT_TRUE(l.config) << errors(l);
  const Pool& p = l.config->pools.front();
  EXPECT_EQ(p.method, BalanceMethod::kRoundRobin);
  ASSERT_EQ(p.members.size(), 2u);
  EXPECT_EQ(p.members[0].weight, 1u);
  EXPECT_EQ(p.members[0].priority, 1u);  // list order
  EXPECT_EQ(p.members[1].priority, 2u);
  EXPECT_EQ(p.members[1].port, 9001);
  EXPECT_FALSE(p.health.enabled);  // passive checks only
  EXPECT_EQ(p.passive.max_fails, 3u);
  EXPECT_EQ(p.passive.fail_timeout.count(), 10'000);
  EXPECT_EQ(p.retry_after.count(), 10'000);
  EXPECT_FALSE(p.state);  // attached by the Server only
}

TEST(EdgeConfig, PoolFullSyntax) {
  auto l = load(kPoolsHead +
                "    - name: app\n"
                "      method: priority\n"
                "      members:\n"
                "        - {address: \"127.0.0.1:9000\", priority: 2, weight: 3}\n"
                "        - \"127.0.0.1:9001\"\n"
                "        - {address: \"127.0.0.1:9002\", priority: 1}\n"
                "      health_check: {path: /ready, interval: 200ms, timeout: 100ms, fall: 2,\n"
                "                     rise: 1, expect_status: \"200,204,300-302\",\n"
                "                     host: app.internal}\n"
                "      passive: {max_fails: 0, fail_timeout: 30s}\n"
                "      retry_after: 5s\n"
                "    - {name: w, method: weighted, members: [\"127.0.0.1:9100\"]}\n"
                "    - {name: l, method: least-connections, members: \"127.0.0.1:9200\"}\n"
                "    - {name: f, method: performance, members: [\"127.0.0.1:9300\"],\n"
                "       health_check: {}}\n");
  ASSERT_TRUE(l.config) << errors(l);
  const Pool& p = l.config->pools[0];
  EXPECT_EQ(p.method, BalanceMethod::kPriority);
  EXPECT_EQ(p.members[0].priority, 2u);
  EXPECT_EQ(p.members[0].weight, 3u);
  EXPECT_EQ(p.members[1].priority, 2u);  // not written: its position
  EXPECT_EQ(p.members[2].priority, 1u);
  EXPECT_TRUE(p.health.enabled);
  EXPECT_EQ(p.health.path, "/ready");
  EXPECT_EQ(p.health.host, "app.internal");
  EXPECT_EQ(p.health.interval.count(), 200);
  EXPECT_EQ(p.health.timeout.count(), 100);
  EXPECT_EQ(p.health.fall, 2u);
  EXPECT_EQ(p.health.rise, 1u);
  EXPECT_TRUE(p.health.expected(204));
  EXPECT_TRUE(p.health.expected(301));
  EXPECT_FALSE(p.health.expected(203));
  EXPECT_FALSE(p.health.expected(303));
  EXPECT_EQ(p.passive.max_fails, 0u);
  EXPECT_EQ(p.passive.fail_timeout.count(), 30'000);
  EXPECT_EQ(p.retry_after.count(), 5'000);
  EXPECT_EQ(l.config->pools[1].method, BalanceMethod::kWeighted);
  EXPECT_EQ(l.config->pools[2].method, BalanceMethod::kLeastConnections);
  EXPECT_EQ(l.config->pools[2].members.size(), 1u);
  const Pool& f = l.config->pools[3];
  EXPECT_EQ(f.method, BalanceMethod::kPerformance);
  EXPECT_TRUE(f.health.enabled);  // an empty map turns the checks on with the defaults
  EXPECT_EQ(f.health.path, "/healthz");
  EXPECT_EQ(f.health.interval.count(), 5'000);
  EXPECT_EQ(f.health.timeout.count(), 2'000);
  EXPECT_EQ(f.health.fall, 3u);
  EXPECT_EQ(f.health.rise, 2u);
  EXPECT_TRUE(f.health.expected(200));
  EXPECT_TRUE(f.health.expected(399));
  EXPECT_FALSE(f.health.expected(404));
}

TEST(EdgeConfig, PoolErrorsAreLocated) {
  auto l = load(kPoolsHead +
                "    - name: app\n"  // line 7
                "      method: fastest\n"  // 8
                "      members:\n"  // 9
                "        - {address: \"127.0.0.1:9000\", weight: 0}\n"  // 10
                "        - {address: \"127.0.0.1:9001\", weight: 1001}\n"  // 11
                "        - {address: \"127.0.0.1:9002\", priority: 0}\n"  // 12
                "        - {adress: \"127.0.0.1:9003\"}\n"  // 13
                "        - \"127.0.0.1:9000\"\n"  // 14
                "        - [1, 2]\n"  // 15
                "      health_check: {path: healthz, interval: 1s, timeout: 2s, fall: 0,\n"  // 16
                "                     expect_status: \"200-99\", rsie: 2}\n"  // 17
                "      passive: {max_fails: -1, fail_timeout: 0s}\n"  // 18
                "      retry_after: 1500ms\n");  // 19
  EXPECT_FALSE(l.config);
  const std::string e = errors(l);
  for (const char* want :
       {"edge.yaml:8:15: error: pool 'app': unknown method 'fastest'",
        "edge.yaml:10:47: error: weight must be between 1 and 1000",
        "edge.yaml:11:47: error: weight must be at most 1000",
        "edge.yaml:12:49: error: priority must be between 1 and 1000",
        "edge.yaml:13:12: error: unknown key 'adress' in pool member", "did you mean 'address'",
        "edge.yaml:13:11: error: a pool member needs 'address'",
        "edge.yaml:14:11: error: duplicate member '127.0.0.1:9000' in pool 'app'",
        "edge.yaml:15:11: error: a pool member must be",
        "edge.yaml:16:28: error: health_check path 'healthz' must start with '/'",
        "edge.yaml:16:60: error: health_check timeout must not be longer than interval",
        "edge.yaml:16:70: error: fall must be between 1 and 100",
        "edge.yaml:17:37: error: expect_status '200-99' must be codes or ranges",
        "edge.yaml:17:47: error: unknown key 'rsie' in health_check",
        "edge.yaml:18:28: error: max_fails must be a whole number",
        "edge.yaml:18:46: error: fail_timeout must be more than zero",
        "edge.yaml:19:20: error: retry_after must be whole seconds"}) {
    EXPECT_NE(e.find(want), std::string::npos) << "missing: " << want << "\n" << e;
  }
}

TEST(EdgeConfig, ShortIntervalBoundsTheDefaultTimeout) {
  auto l = load(kPoolsHead + "    - {name: app, members: [\"127.0.0.1:9000\"], "
                             "health_check: {interval: 500ms}}\n");
  ASSERT_TRUE(l.config) << errors(l);
  EXPECT_EQ(l.config->pools[0].health.timeout.count(), 500);
}

TEST(EdgeConfig, StatusRanges) {
  auto status = [](const std::string& s) {
    return load(kPoolsHead + "    - {name: app, members: [\"127.0.0.1:9000\"], "
                             "health_check: {expect_status: \"" + s + "\"}}\n");
  };
  EXPECT_TRUE(status("200").config);
  EXPECT_TRUE(status("200-299,304").config);
  EXPECT_FALSE(status("").config);
  EXPECT_FALSE(status("200,").config);
  EXPECT_FALSE(status("600").config);
  EXPECT_FALSE(status("2xx").config);
  EXPECT_FALSE(status("200,201,202,203,204,205,206,207,208").config);  // more than 8
}

}  // namespace
}  // namespace moat::edge

namespace moat::edge {
namespace {

TEST(EdgeConfig, CertificateOcspAndLocation) {
  auto l = load("moat: gateway/v1\nedge:\n  listen_https: [127.0.0.1:8443]\n"
                "  certificates:\n"
                "    - {cert: a.crt, key: a.key}\n"
                "    - {cert: a-rsa.crt, key: a-rsa.key, ocsp: a-rsa.ocsp.der}\n"
                "  pools: [{name: app, members: [\"127.0.0.1:9000\"]}]\n"
                "  routes: [{pool: app}]\n");
  ASSERT_TRUE(l.config) << errors(l);
  const auto& certs = l.config->certificates;
  ASSERT_EQ(certs.size(), 2u);
  EXPECT_EQ(certs[0].ocsp, "");
  EXPECT_EQ(certs[1].ocsp, "/etc/moat/a-rsa.ocsp.der");
  // TLS errors found when the files are loaded point at the list item.
  EXPECT_EQ(certs[1].at.file, "edge.yaml");
  EXPECT_EQ(certs[1].at.line, 6);
  EXPECT_EQ(certs[1].at.column, 7);

  auto typo = load("moat: gateway/v1\nedge:\n  listen_https: [127.0.0.1:8443]\n"
                   "  certificates: [{cert: a.crt, key: a.key, oscp: a.der}]\n"
                   "  pools: [{name: app, members: [\"127.0.0.1:9000\"]}]\n"
                   "  routes: [{pool: app}]\n");
  EXPECT_FALSE(typo.config);
  EXPECT_NE(errors(typo).find("did you mean 'ocsp'"), std::string::npos) << errors(typo);
}

TEST(EdgeConfig, H2LimitDefaults) {
  auto l = load(kHead + "  routes: [{pool: app}]\n");
  ASSERT_TRUE(l.config) << errors(l);
  const Limits& x = l.config->limits;
  EXPECT_EQ(x.h2_max_concurrent_streams, 100u);
  EXPECT_EQ(x.h2_initial_window_size, 1u << 20);
  EXPECT_EQ(x.h2_max_continuations, 8u);
  EXPECT_EQ(x.h2_resets_per_second, 10u);
  EXPECT_EQ(x.h2_reset_burst, 100u);
  EXPECT_EQ(x.h2_settings_per_second, 20u);
  EXPECT_EQ(x.h2_pings_per_second, 20u);
}

TEST(EdgeConfig, H2LimitKeys) {
  auto l = load(kHead + "  routes: [{pool: app}]\n  limits:\n    h2_max_concurrent_streams: 7\n" +
                "    h2_initial_window_size: 256KiB\n    h2_max_continuations: 2\n"
                "    h2_resets_per_second: 5\n    h2_reset_burst: 50\n"
                "    h2_settings_per_second: 3\n    h2_pings_per_second: 4\n");
  ASSERT_TRUE(l.config) << errors(l);
  const Limits& x = l.config->limits;
  EXPECT_EQ(x.h2_max_concurrent_streams, 7u);
  EXPECT_EQ(x.h2_initial_window_size, 256u * 1024u);
  EXPECT_EQ(x.h2_max_continuations, 2u);
  EXPECT_EQ(x.h2_resets_per_second, 5u);
  EXPECT_EQ(x.h2_reset_burst, 50u);
  EXPECT_EQ(x.h2_settings_per_second, 3u);
  EXPECT_EQ(x.h2_pings_per_second, 4u);
}

TEST(EdgeConfig, H2LimitErrorsAreLocated) {
  auto bad = [](const std::string& limits) {
    auto l = load(kHead + "  routes: [{pool: app}]\n  limits:\n" + limits);
    EXPECT_FALSE(l.config) << limits;
    return errors(l);
  };
  EXPECT_NE(bad("    h2_max_concurrent_streams: 0\n")
                .find("edge.yaml:8:32: error: h2_max_concurrent_streams must be between 1 and "
                      "10000"),
            std::string::npos)
      << bad("    h2_max_concurrent_streams: 0\n");
  EXPECT_NE(bad("    h2_max_concurrent_streams: 100000\n").find("edge.yaml:8:"),
            std::string::npos);
  EXPECT_NE(bad("    h2_reset_burst: 0\n").find("h2_reset_burst must be between 1"),
            std::string::npos);
  EXPECT_NE(bad("    h2_initial_window_size: 1KiB\n")
                .find("edge.yaml:8:29: error: h2_initial_window_size must be between 65535 "
                      "bytes and 16MiB"),
            std::string::npos)
      << bad("    h2_initial_window_size: 1KiB\n");
  EXPECT_NE(bad("    h2_initial_window_size: 1GiB\n").find("h2_initial_window_size"),
            std::string::npos);
  EXPECT_NE(bad("    h2_max_concurent_streams: 5\n").find("did you mean 'h2_max_concurrent_streams'"),
            std::string::npos);
  EXPECT_NE(bad("    h2_pings_per_second: -1\n").find("h2_pings_per_second"), std::string::npos);
}

TEST(EdgeConfig, H2LimitsReachTheConnection) {
  auto l = load(kHead + "  routes: [{pool: app}]\n  limits:\n    h2_max_concurrent_streams: 7\n" +
                "    h2_resets_per_second: 5\n    max_header_bytes: 16KiB\n");
  ASSERT_TRUE(l.config) << errors(l);
  H2Limits h = h2_limits_for(l.config->limits);
  EXPECT_EQ(h.max_concurrent_streams, 7u);
  EXPECT_EQ(h.resets_per_second, 5u);
  EXPECT_EQ(h.reset_burst, 100u);
  EXPECT_EQ(h.max_header_list_bytes, 16u * 1024u);
}

}  // namespace
}  // namespace moat::edge

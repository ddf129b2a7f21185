#include "edge/config.hpp"

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

#include "core/obs/metrics.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace moat::core::obs {
namespace {

TEST(Metrics, ConcurrentIncrementsFromEveryShardSumExactly) {
  constexpr std::size_t kWorkers = 4;
  constexpr std::uint64_t kIterations = 200'000;
  MetricsRegistry registry(kWorkers);
  auto& requests = registry.counter_family("moat_egress_proxy_requests_total", "Requests.",
                                           {"decision"});
  auto& bytes = registry.counter_family("moat_egress_proxy_bytes_total", "Bytes.");
  auto& active = registry.gauge_family("moat_egress_proxy_active_connections", "Open.");
  auto& latency = registry.histogram_family("moat_egress_dns_resolve_seconds", "DNS.",
                                            latency_buckets_seconds());
  const CounterHandle allow = requests.labels({"allow"});
  const CounterHandle sent = bytes.labels();
  const GaugeHandle open = active.labels();
  const HistogramHandle dns = latency.labels();

  std::atomic<bool> done{false};
  std::thread scraper([&] {
    // Scrapes run concurrently with the writers; they must neither block them nor crash.
    while (!done.load()) EXPECT_FALSE(registry.render_prometheus().empty());
  });
  std::vector<std::thread> workers;
  for (std::size_t w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      for (std::uint64_t i = 0; i < kIterations; ++i) {
        allow.inc(w);
        sent.add(w, 3);
        open.inc(w);
        if (i % 2 == 0) open.dec(w);
        dns.observe(w, 0.002);
      }
    });
  }
  for (auto& t : workers) t.join();
  done = true;
  scraper.join();

  EXPECT_EQ(allow.value(), kWorkers * kIterations);
  EXPECT_EQ(sent.value(), 3 * kWorkers * kIterations);
  EXPECT_EQ(open.value(), static_cast<std::int64_t>(kWorkers * kIterations / 2));
  const auto snap = dns.snapshot();
  EXPECT_EQ(snap.count(), kWorkers * kIterations);
  EXPECT_EQ(snap.cumulative[1], 0u);                      // le=0.001
  EXPECT_EQ(snap.cumulative[2], kWorkers * kIterations);  // le=0.0025
  EXPECT_NEAR(snap.sum, 0.002 * kWorkers * kIterations, 1e-6);

  const std::string text = registry.render_prometheus();
  EXPECT_NE(text.find("moat_egress_proxy_requests_total{decision=\"allow\"} 800000\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("moat_egress_proxy_bytes_total 2400000\n"), std::string::npos) << text;
  EXPECT_NE(text.find("moat_egress_dns_resolve_seconds_count 800000\n"), std::string::npos);
}

TEST(Metrics, NewLabelCombinationsWhileOthersIncrementAndScrape) {
  constexpr std::size_t kWorkers = 3;
  constexpr int kNewServices = 300;
  MetricsRegistry registry(kWorkers + 1);  // the last shard belongs to the "reload" thread
  auto& family = registry.counter_family("moat_egress_policy_decisions_total", "Decisions.",
                                         {"policy", "service", "decision", "reason"});
  const CounterHandle existing = family.labels({"salestim", "web-app", "allow", "allowed"});

  std::atomic<bool> done{false};
  std::vector<std::thread> workers;
  std::vector<std::uint64_t> counts(kWorkers, 0);
  for (std::size_t w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      while (!done.load(std::memory_order_relaxed)) {
        existing.inc(w);
        ++counts[w];
      }
    });
  }
  std::thread scraper([&] {
    while (!done.load()) (void)registry.render_prometheus();
  });
  // Reload: new services appear and are counted from the reload thread's own shard.
  std::vector<CounterHandle> fresh;
  for (int i = 0; i < kNewServices; ++i) {
    fresh.push_back(family.labels({"salestim", "svc-" + std::to_string(i), "deny", "no_rule"}));
    fresh.back().add(kWorkers, static_cast<std::uint64_t>(i + 1));
    // Asking again returns the same series.
    EXPECT_EQ(family.labels({"salestim", "svc-" + std::to_string(i), "deny", "no_rule"}).value(),
              static_cast<std::uint64_t>(i + 1));
  }
  done = true;
  for (auto& t : workers) t.join();
  scraper.join();

  std::uint64_t expected = 0;
  for (auto c : counts) expected += c;
  EXPECT_EQ(existing.value(), expected);
  const std::string text = registry.render_prometheus();
  for (int i = 0; i < kNewServices; ++i) {
    const std::string line =
        "moat_egress_policy_decisions_total{policy=\"salestim\",service=\"svc-" +
        std::to_string(i) + "\",decision=\"deny\",reason=\"no_rule\"} " + std::to_string(i + 1) +
        "\n";
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
}

TEST(Metrics, ExpositionGolden) {
  MetricsRegistry registry(2);
  // Registered out of order on purpose: the output is sorted by family name.
  auto& latency = registry.histogram_family("moat_egress_dns_resolve_seconds",
                                            "Time to resolve a host.", {0.25, 0.5, 4},
                                            {"result"});
  auto& requests = registry.counter_family("moat_egress_proxy_requests_total",
                                           "CONNECT requests by decision.", {"decision", "reason"});
  auto& active = registry.gauge_family("moat_egress_proxy_active_connections",
                                       "Open downstream connections.\nPer process.");
  registry.counter_family("moat_egress_proxy_unused_total", "No series yet.", {"x"});
  auto& plain = registry.histogram_family("moat_egress_upstream_connect_seconds", "Connect.",
                                          {0.1});

  requests.labels({"deny", "no_rule"}).inc(0);
  requests.labels({"allow", "allowed"}).add(0, 2);
  requests.labels({"allow", "allowed"}).add(1, 3);
  active.labels().add(0, 5);
  active.labels().add(1, -7);
  auto ok = latency.labels({"ok"});
  ok.observe(0, 0.125);
  ok.observe(1, 0.25);  // le is inclusive
  ok.observe(1, 0.375);
  ok.observe(0, 7);
  latency.labels({"nxdomain"});
  plain.labels().observe(1, 0.5);

  const std::string expected =
      "# HELP moat_egress_dns_resolve_seconds Time to resolve a host.\n"
      "# TYPE moat_egress_dns_resolve_seconds histogram\n"
      "moat_egress_dns_resolve_seconds_bucket{result=\"nxdomain\",le=\"0.25\"} 0\n"
      "moat_egress_dns_resolve_seconds_bucket{result=\"nxdomain\",le=\"0.5\"} 0\n"
      "moat_egress_dns_resolve_seconds_bucket{result=\"nxdomain\",le=\"4\"} 0\n"
      "moat_egress_dns_resolve_seconds_bucket{result=\"nxdomain\",le=\"+Inf\"} 0\n"
      "moat_egress_dns_resolve_seconds_sum{result=\"nxdomain\"} 0\n"
      "moat_egress_dns_resolve_seconds_count{result=\"nxdomain\"} 0\n"
      "moat_egress_dns_resolve_seconds_bucket{result=\"ok\",le=\"0.25\"} 2\n"
      "moat_egress_dns_resolve_seconds_bucket{result=\"ok\",le=\"0.5\"} 3\n"
      "moat_egress_dns_resolve_seconds_bucket{result=\"ok\",le=\"4\"} 3\n"
      "moat_egress_dns_resolve_seconds_bucket{result=\"ok\",le=\"+Inf\"} 4\n"
      "moat_egress_dns_resolve_seconds_sum{result=\"ok\"} 7.75\n"
      "moat_egress_dns_resolve_seconds_count{result=\"ok\"} 4\n"
      "# HELP moat_egress_proxy_active_connections Open downstream connections.\\nPer process.\n"
      "# TYPE moat_egress_proxy_active_connections gauge\n"
      "moat_egress_proxy_active_connections -2\n"
      "# HELP moat_egress_proxy_requests_total CONNECT requests by decision.\n"
      "# TYPE moat_egress_proxy_requests_total counter\n"
      "moat_egress_proxy_requests_total{decision=\"allow\",reason=\"allowed\"} 5\n"
      "moat_egress_proxy_requests_total{decision=\"deny\",reason=\"no_rule\"} 1\n"
      "# HELP moat_egress_upstream_connect_seconds Connect.\n"
      "# TYPE moat_egress_upstream_connect_seconds histogram\n"
      "moat_egress_upstream_connect_seconds_bucket{le=\"0.1\"} 0\n"
      "moat_egress_upstream_connect_seconds_bucket{le=\"+Inf\"} 1\n"
      "moat_egress_upstream_connect_seconds_sum 0.5\n"
      "moat_egress_upstream_connect_seconds_count 1\n";
  EXPECT_EQ(registry.render_prometheus(), expected);
}

TEST(Metrics, LabelValuesAreEscaped) {
  MetricsRegistry registry(1);
  auto& family = registry.counter_family("moat_edge_route_requests_total", "Help with \\ too.",
                                         {"host"});
  family.labels({"a\\b\"c\nd"}).inc(0);
  family.labels({std::string_view("bad\xC3(\xFF", 6)}).inc(0);
  family.labels({"caf\xC3\xA9"}).inc(0);
  const std::string text = registry.render_prometheus();
  EXPECT_NE(text.find("# HELP moat_edge_route_requests_total Help with \\\\ too.\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("{host=\"a\\\\b\\\"c\\nd\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("{host=\"bad\xEF\xBF\xBD(\xEF\xBF\xBD\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("{host=\"caf\xC3\xA9\"} 1\n"), std::string::npos) << text;

  std::string out;
  append_escaped_label_value(out, std::string_view("\0x", 2));
  EXPECT_EQ(out, std::string_view("\0x", 2));  // NUL is legal in a quoted value
}

TEST(Metrics, DoubleFormatting) {
  auto fmt = [](double v) {
    std::string s;
    append_prometheus_double(s, v);
    return s;
  };
  EXPECT_EQ(fmt(0.0005), "0.0005");
  EXPECT_EQ(fmt(5), "5");
  EXPECT_EQ(fmt(2.5), "2.5");
  EXPECT_EQ(fmt(0), "0");
  EXPECT_EQ(fmt(-0.25), "-0.25");
  EXPECT_EQ(fmt(0.00001), "1e-05");
  EXPECT_EQ(fmt(100000), "100000");
  EXPECT_EQ(fmt(1e6), "1e+06");
  EXPECT_EQ(fmt(123456789), "1.23456789e+08");
  EXPECT_EQ(fmt(1e21), "1e+21");
  EXPECT_EQ(fmt(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(fmt(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(fmt(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(fmt(std::nan("")), "NaN");
}

TEST(Metrics, HistogramBucketsAreInclusiveAndIgnoreNaN) {
  MetricsRegistry registry(1);
  auto h = registry.histogram_family("moat_test_x_seconds", "x", {1, 2}).labels();
  h.observe(0, 1);
  h.observe(0, 1.0000001);
  h.observe(0, 2);
  h.observe(0, 3);
  h.observe(0, std::nan(""));
  const auto snap = h.snapshot();
  ASSERT_EQ(snap.cumulative.size(), 3u);
  EXPECT_EQ(snap.cumulative[0], 1u);
  EXPECT_EQ(snap.cumulative[1], 3u);
  EXPECT_EQ(snap.cumulative[2], 4u);
  EXPECT_FALSE(std::isnan(snap.sum));
}

TEST(Metrics, ShardsSitOnTheirOwnCacheLines) {
  ShardBlock counter(4, 1);
  ShardBlock histogram(4, 16);  // 128 bytes per shard
  for (const ShardBlock* block : {&counter, &histogram}) {
    for (std::size_t s = 0; s < block->shard_count(); ++s) {
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(block->shard(s)) % kCacheLine, 0u);
    }
  }
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(counter.shard(1)) -
                reinterpret_cast<std::uintptr_t>(counter.shard(0)),
            kCacheLine);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(histogram.shard(1)) -
                reinterpret_cast<std::uintptr_t>(histogram.shard(0)),
            2 * kCacheLine);
}

TEST(Metrics, DefaultHandlesIgnoreUpdates) {
  CounterHandle counter;
  GaugeHandle gauge;
  HistogramHandle histogram;
  counter.inc(0);
  gauge.set(0, 4);
  histogram.observe(0, 1);
  EXPECT_FALSE(counter.valid());
  EXPECT_EQ(counter.value(), 0u);
  EXPECT_EQ(gauge.value(), 0);
  EXPECT_EQ(histogram.snapshot().count(), 0u);
}

TEST(Metrics, GaugeSetIsPerShard) {
  MetricsRegistry registry(2);
  auto g = registry.gauge_family("moat_egress_policy_revision", "r").labels();
  g.set(0, 41);
  g.set(0, 42);
  EXPECT_EQ(g.value(), 42);
  g.set(1, -2);
  EXPECT_EQ(g.value(), 40);
}

TEST(Metrics, RegistrationMisuseThrows) {
  MetricsRegistry registry(1);
  EXPECT_THROW(registry.counter_family("moat_x_requests", "no _total"), std::invalid_argument);
  EXPECT_THROW(registry.gauge_family("moat_x_open_total", "gauge with _total"),
               std::invalid_argument);
  EXPECT_THROW(registry.counter_family("other_x_total", "no prefix"), std::invalid_argument);
  EXPECT_THROW(registry.counter_family("moat_x-y_total", "bad char"), std::invalid_argument);
  EXPECT_THROW(registry.counter_family("moat_x_total", "bad label", {"a-b"}),
               std::invalid_argument);
  EXPECT_THROW(registry.counter_family("moat_x_total", "reserved", {"__name"}),
               std::invalid_argument);
  EXPECT_THROW(registry.counter_family("moat_x_total", "duplicate", {"a", "a"}),
               std::invalid_argument);
  EXPECT_THROW(registry.histogram_family("moat_x_seconds", "le", {1}, {"le"}),
               std::invalid_argument);
  EXPECT_THROW(registry.histogram_family("moat_x_seconds", "order", {2, 1}),
               std::invalid_argument);
  EXPECT_THROW(
      registry.histogram_family("moat_x_seconds", "inf", {std::numeric_limits<double>::infinity()}),
      std::invalid_argument);

  auto& family = registry.counter_family("moat_x_total", "ok", {"a", "b"});
  EXPECT_EQ(&registry.counter_family("moat_x_total", "again", {"a", "b"}), &family);
  EXPECT_THROW(registry.counter_family("moat_x_total", "other labels", {"a"}),
               std::invalid_argument);
  EXPECT_THROW(registry.gauge_family("moat_x_total", "other type"), std::invalid_argument);
  EXPECT_THROW(family.labels({"only one"}), std::invalid_argument);
}

}  // namespace
}  // namespace moat::core::obs

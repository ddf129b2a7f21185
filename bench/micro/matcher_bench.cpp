// Matcher lookups against 10,000 services: exact hit, wildcard hit two labels below the
// parent, miss, and a host that matches but on a port no service lists. Fixed seed, so runs
// compare.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/policy/host_pattern.hpp"
#include "core/policy/matcher.hpp"

namespace {

using namespace moat::core::policy;  // NOLINT: benchmark code

constexpr int kServices = 10000;
constexpr int kPolicies = 10;
constexpr std::uint32_t kSeed = 20240601;

struct Fixture {
  std::vector<std::shared_ptr<const Policy>> policies;
  Matcher matcher;
  std::vector<std::string> exact_hits;     // names listed exactly
  std::vector<std::string> wildcard_hits;  // "a.b.<parent>" for a wildcard "*.<parent>"
  std::vector<std::string> misses;
};

std::string random_label(std::mt19937& rng) {
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::uniform_int_distribution<int> length(3, 12);
  std::uniform_int_distribution<int> pick(0, 35);
  std::string s;
  const int n = length(rng);
  s.push_back(kChars[pick(rng) % 26]);  // start with a letter
  for (int i = 1; i < n; ++i) s.push_back(kChars[pick(rng)]);
  return s;
}

// Depth 2..5: "label.label.tld" and so on, over a few realistic top-level domains.
std::string random_name(std::mt19937& rng, int depth) {
  static const char* kTlds[] = {"com", "io", "net", "org", "cloud", "dev"};
  std::string name;
  for (int i = 0; i < depth - 1; ++i) name += random_label(rng) + ".";
  name += kTlds[rng() % 6];
  return name;
}

const Fixture& fixture() {
  static const Fixture* f = [] {
    auto* out = new Fixture;
    std::mt19937 rng(kSeed);
    std::uniform_int_distribution<int> depth(2, 5), hosts(1, 3), percent(0, 99);
    std::vector<std::shared_ptr<Policy>> owned;
    for (int p = 0; p < kPolicies; ++p) {
      owned.push_back(std::make_shared<Policy>());
      owned.back()->metadata.name = "vendor" + std::to_string(p);
    }
    for (int i = 0; i < kServices; ++i) {
      Service s;
      s.id = "svc" + std::to_string(i);
      s.ports =
          percent(rng) < 20 ? std::vector<std::uint16_t>{443, 80} : std::vector<std::uint16_t>{443};
      const int n = hosts(rng);
      for (int h = 0; h < n; ++h) {
        const std::string name = random_name(rng, depth(rng));
        const bool wildcard = percent(rng) < 40;
        auto pattern = parse_host_pattern(wildcard ? "*." + name : name);
        if (!pattern.ok()) continue;
        if (wildcard) {
          out->wildcard_hits.push_back("a." + random_label(rng) + "." + name);
        } else {
          out->exact_hits.push_back(name);
        }
        s.hosts.push_back(std::move(*pattern));
      }
      owned[static_cast<std::size_t>(i % kPolicies)]->services.push_back(std::move(s));
    }
    for (int i = 0; i < 4096; ++i)
      out->misses.push_back(random_name(rng, depth(rng) + 1) + ".invalid");
    for (auto& p : owned) out->policies.push_back(p);
    out->matcher = Matcher(out->policies);
    return out;
  }();
  return *f;
}

void run(benchmark::State& state, const std::vector<std::string>& hosts, std::uint16_t port,
         Verdict expected) {
  const Matcher& matcher = fixture().matcher;
  std::size_t i = 0, wrong = 0;
  for (auto _ : state) {
    const Match m = matcher.match_name(hosts[i], port);
    wrong += m.verdict != expected;
    benchmark::DoNotOptimize(m);
    if (++i == hosts.size()) i = 0;
  }
  if (wrong != 0) state.SkipWithError("unexpected verdict");
  state.SetItemsProcessed(state.iterations());
}

void BM_ExactHit(benchmark::State& state) {
  run(state, fixture().exact_hits, 443, Verdict::kAllowed);
}
void BM_WildcardHitDepth2(benchmark::State& state) {
  run(state, fixture().wildcard_hits, 443, Verdict::kAllowed);
}
void BM_Miss(benchmark::State& state) {
  run(state, fixture().misses, 443, Verdict::kHostNotInPolicy);
}
void BM_PortNotAllowed(benchmark::State& state) {
  run(state, fixture().exact_hits, 8443, Verdict::kPortNotAllowed);
}
// The whole path a CONNECT target takes: parse, normalize, match.
void BM_ParseAndMatch(benchmark::State& state) {
  const auto& f = fixture();
  std::size_t i = 0;
  for (auto _ : state) {
    auto d = parse_destination(f.wildcard_hits[i], 443);
    benchmark::DoNotOptimize(f.matcher.match(*d));
    if (++i == f.wildcard_hits.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
void BM_BuildMatcher(benchmark::State& state) {
  const auto& f = fixture();
  for (auto _ : state) {
    Matcher m(f.policies);
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(state.iterations() * kServices);
}

BENCHMARK(BM_ExactHit);
BENCHMARK(BM_WildcardHitDepth2);
BENCHMARK(BM_Miss);
BENCHMARK(BM_PortNotAllowed);
BENCHMARK(BM_ParseAndMatch);
BENCHMARK(BM_BuildMatcher)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

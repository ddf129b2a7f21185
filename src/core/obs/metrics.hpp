// core/obs: Prometheus metrics with per-worker shards. Each worker (shard index) writes only its
// own 64-byte-aligned slots, so an increment is a relaxed load plus a relaxed store: no lock, no
// locked instruction, no allocation, no false sharing. A scrape sums the shards. Registration
// (families, label combinations) and scraping take a mutex; the increment path never does.
// Naming rules and exposition details: docs/observability.md.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moat::core::obs {

inline constexpr std::size_t kCacheLine = 64;

// Storage for one time series: `shard_count` shards of `slots` 64-bit atomics each, every shard
// starting on its own cache line. Allocated once, never moved, freed with its family.
class ShardBlock {
 public:
  ShardBlock(std::size_t shard_count, std::size_t slots);
  ~ShardBlock();
  ShardBlock(const ShardBlock&) = delete;
  ShardBlock& operator=(const ShardBlock&) = delete;

  std::size_t shard_count() const { return shard_count_; }
  std::size_t slots() const { return slots_; }
  std::atomic<std::uint64_t>* shard(std::size_t index) const {
    return reinterpret_cast<std::atomic<std::uint64_t>*>(base_ + index * stride_);
  }

 private:
  std::size_t shard_count_;
  std::size_t slots_;
  std::size_t stride_;  // bytes between shards: slots * 8 rounded up to a cache line
  std::byte* base_;
};

namespace detail {
// Single-writer update: only the owning worker writes its slot, so a plain read-modify-write of
// two relaxed operations is exact; readers (the scrape) see either the old or the new value.
inline void add_slot(std::atomic<std::uint64_t>& slot, std::uint64_t n) {
  slot.store(slot.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
}  // namespace detail

// A monotonically increasing counter, one label combination. Cheap to copy; obtain it once
// (Family::labels) and keep it. A default-constructed handle ignores updates.
class CounterHandle {
 public:
  CounterHandle() = default;
  explicit CounterHandle(const ShardBlock* block) : block_(block) {}

  // `worker` is the caller's shard index; only that thread may use it.
  void inc(std::size_t worker) const { add(worker, 1); }
  void add(std::size_t worker, std::uint64_t n) const {
    assert(block_ == nullptr || worker < block_->shard_count());
    if (block_ == nullptr || worker >= block_->shard_count()) return;
    detail::add_slot(block_->shard(worker)[0], n);
  }
  // Sum over shards (for tests and in-process readers; the scrape does the same).
  std::uint64_t value() const;
  bool valid() const { return block_ != nullptr; }

 private:
  const ShardBlock* block_ = nullptr;
};

// A value that goes up and down (active connections). Each shard holds the worker's
// contribution; the scrape reports the sum. `set` sets the calling worker's contribution only: for
// a process-wide value, write it from a single shard.
class GaugeHandle {
 public:
  GaugeHandle() = default;
  explicit GaugeHandle(const ShardBlock* block) : block_(block) {}

  void add(std::size_t worker, std::int64_t delta) const {
    assert(block_ == nullptr || worker < block_->shard_count());
    if (block_ == nullptr || worker >= block_->shard_count()) return;
    // Two's complement wrap-around in uint64 is well defined, and sums back exactly.
    detail::add_slot(block_->shard(worker)[0], static_cast<std::uint64_t>(delta));
  }
  void inc(std::size_t worker) const { add(worker, 1); }
  void dec(std::size_t worker) const { add(worker, -1); }
  void set(std::size_t worker, std::int64_t value) const {
    assert(block_ == nullptr || worker < block_->shard_count());
    if (block_ == nullptr || worker >= block_->shard_count()) return;
    block_->shard(worker)[0].store(static_cast<std::uint64_t>(value), std::memory_order_relaxed);
  }
  std::int64_t value() const;
  bool valid() const { return block_ != nullptr; }

 private:
  const ShardBlock* block_ = nullptr;
};

// Fixed upper bounds (le), shared by every series of a histogram family. Slots of a shard:
// [0, bounds) non-cumulative bucket counts, [bounds] the +Inf bucket, [bounds + 1] the sum (the
// bits of a double).
class HistogramHandle {
 public:
  HistogramHandle() = default;
  HistogramHandle(const ShardBlock* block, std::span<const double> bounds)
      : block_(block), bounds_(bounds) {}

  // Observes one value (seconds, bytes). NaN is ignored: it would poison _sum forever.
  void observe(std::size_t worker, double value) const {
    assert(block_ == nullptr || worker < block_->shard_count());
    if (block_ == nullptr || worker >= block_->shard_count() || value != value) return;
    std::size_t bucket = 0;
    while (bucket < bounds_.size() && value > bounds_[bucket]) ++bucket;  // few buckets: linear
    auto* slots = block_->shard(worker);
    detail::add_slot(slots[bucket], 1);
    auto& sum = slots[bounds_.size() + 1];
    double total = std::bit_cast<double>(sum.load(std::memory_order_relaxed)) + value;
    sum.store(std::bit_cast<std::uint64_t>(total), std::memory_order_relaxed);
  }
  bool valid() const { return block_ != nullptr; }

  struct Snapshot {
    std::vector<std::uint64_t> cumulative;  // one per bound, then +Inf (= count)
    double sum = 0;
    std::uint64_t count() const { return cumulative.empty() ? 0 : cumulative.back(); }
  };
  Snapshot snapshot() const;

 private:
  const ShardBlock* block_ = nullptr;
  std::span<const double> bounds_;
};

enum class MetricType { kCounter, kGauge, kHistogram };

using LabelValues = std::vector<std::string>;

// Orders label value lists, and compares them with a list of views so that finding an existing
// series allocates nothing (the per-request path).
struct LabelValuesLess {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return std::lexicographical_compare(
        a.begin(), a.end(), b.begin(), b.end(),
        [](std::string_view x, std::string_view y) { return x < y; });
  }
};

// Registration-time misuse (bad metric or label name, conflicting re-registration, wrong number
// of label values) is a programming error found by tests; it throws std::invalid_argument. These
// calls run at start-up or reload, never on the data path.
class FamilyBase {
 public:
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

  // Appends this family in text exposition format 0.0.4.
  void render(std::string& out) const;

 protected:
  FamilyBase(std::string name, std::string help, MetricType type,
             std::vector<std::string> label_names, std::vector<double> bounds,
             std::size_t shard_count);
  // Finds or creates the series; the block never moves afterwards.
  const ShardBlock* series(std::span<const std::string_view> values);
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::string name_;
  std::string help_;
  MetricType type_;
  std::vector<std::string> label_names_;
  std::vector<double> bounds_;  // histograms only
  std::size_t shard_count_;
  mutable std::mutex mutex_;  // guards series_ (insertions vs scrape), never the update path
  std::map<LabelValues, std::unique_ptr<ShardBlock>, LabelValuesLess> series_;  // sorted: stable output
};

template <typename Handle, MetricType kType>
class Family final : public FamilyBase {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bounds, std::size_t shard_count)
      : FamilyBase(std::move(name), std::move(help), kType, std::move(label_names),
                   std::move(bounds), shard_count) {}

  // The handle for one label combination, in the order of label_names(). May allocate; call
  // once and cache the handle. Safe while other threads update or scrape.
  Handle labels() { return labels(std::span<const std::string_view>()); }
  Handle labels(std::initializer_list<std::string_view> values) {
    return labels(std::span<const std::string_view>(values.begin(), values.size()));
  }
  Handle labels(std::span<const std::string_view> values) {
    const ShardBlock* block = series(values);
    if constexpr (kType == MetricType::kHistogram) {
      return Handle(block, std::span<const double>(bounds()));
    } else {
      return Handle(block);
    }
  }
};

using CounterFamily = Family<CounterHandle, MetricType::kCounter>;
using GaugeFamily = Family<GaugeHandle, MetricType::kGauge>;
using HistogramFamily = Family<HistogramHandle, MetricType::kHistogram>;

// Default buckets for latencies in seconds: 0.5 ms .. 5 s (DNS, connect, handshake).
std::vector<double> latency_buckets_seconds();

class MetricsRegistry {
 public:
  // `shard_count`: one per thread that updates metrics (the workers; add one if the control
  // thread writes too and give it the last index).
  explicit MetricsRegistry(std::size_t shard_count);

  std::size_t shard_count() const { return shard_count_; }

  // Returns the family, creating it on first call. A second call with the same name must agree
  // on type and label names (the help text of the first call wins). Names follow
  // moat_<mode>_<component>_<name>; counters end in _total.
  CounterFamily& counter_family(std::string_view name, std::string_view help,
                                std::initializer_list<std::string_view> label_names = {});
  GaugeFamily& gauge_family(std::string_view name, std::string_view help,
                            std::initializer_list<std::string_view> label_names = {});
  // `bounds`: strictly increasing finite upper bounds; +Inf is implicit.
  HistogramFamily& histogram_family(std::string_view name, std::string_view help,
                                    std::vector<double> bounds,
                                    std::initializer_list<std::string_view> label_names = {});

  // Text exposition format 0.0.4, families sorted by name, series by label values.
  std::string render_prometheus() const;

  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

 private:
  FamilyBase& find_or_add(std::string_view name, std::string_view help, MetricType type,
                          std::initializer_list<std::string_view> label_names,
                          std::vector<double> bounds);

  std::size_t shard_count_;
  mutable std::mutex mutex_;  // guards families_
  std::map<std::string, std::unique_ptr<FamilyBase>, std::less<>> families_;
};

// Exposition escaping, exposed for tests. Label values: backslash, double quote and newline are
// escaped and invalid UTF-8 becomes U+FFFD. Help text: backslash and newline.
void append_escaped_label_value(std::string& out, std::string_view value);
void append_escaped_help(std::string& out, std::string_view help);
// Prometheus float syntax: shortest round-trip form, "+Inf", "-Inf", "NaN".
void append_prometheus_double(std::string& out, double value);

}  // namespace moat::core::obs

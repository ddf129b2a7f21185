#include "core/obs/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <new>
#include <stdexcept>
#include <system_error>

#include "core/obs/utf8.hpp"

namespace moat::core::obs {

// ---------------------------------------------------------------------------------------------
// Storage

ShardBlock::ShardBlock(std::size_t shard_count, std::size_t slots)
    : shard_count_(shard_count),
      slots_(slots),
      stride_((slots * sizeof(std::uint64_t) + kCacheLine - 1) / kCacheLine * kCacheLine),
      base_(static_cast<std::byte*>(
          ::operator new(stride_ * shard_count, std::align_val_t{kCacheLine}))) {
  static_assert(sizeof(std::atomic<std::uint64_t>) == sizeof(std::uint64_t));
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
  for (std::size_t s = 0; s < shard_count_; ++s) {
    auto* slot = reinterpret_cast<std::atomic<std::uint64_t>*>(base_ + s * stride_);
    for (std::size_t k = 0; k < slots_; ++k) new (slot + k) std::atomic<std::uint64_t>(0);
  }
}

ShardBlock::~ShardBlock() {
  // std::atomic<uint64_t> is trivially destructible: releasing the storage is enough.
  ::operator delete(base_, std::align_val_t{kCacheLine});
}

std::uint64_t CounterHandle::value() const {
  if (block_ == nullptr) return 0;
  std::uint64_t total = 0;
  for (std::size_t s = 0; s < block_->shard_count(); ++s) {
    total += block_->shard(s)[0].load(std::memory_order_relaxed);
  }
  return total;
}

std::int64_t GaugeHandle::value() const {
  if (block_ == nullptr) return 0;
  std::uint64_t total = 0;
  for (std::size_t s = 0; s < block_->shard_count(); ++s) {
    total += block_->shard(s)[0].load(std::memory_order_relaxed);
  }
  return static_cast<std::int64_t>(total);
}

namespace {

HistogramHandle::Snapshot read_histogram(const ShardBlock& block, std::size_t bound_count) {
  HistogramHandle::Snapshot snap;
  snap.cumulative.assign(bound_count + 1, 0);
  for (std::size_t s = 0; s < block.shard_count(); ++s) {
    const auto* slots = block.shard(s);
    for (std::size_t b = 0; b <= bound_count; ++b) {
      snap.cumulative[b] += slots[b].load(std::memory_order_relaxed);
    }
    snap.sum += std::bit_cast<double>(slots[bound_count + 1].load(std::memory_order_relaxed));
  }
  // Buckets are stored per range; the exposition wants cumulative counts (le = "up to").
  for (std::size_t b = 1; b < snap.cumulative.size(); ++b) {
    snap.cumulative[b] += snap.cumulative[b - 1];
  }
  return snap;
}

}  // namespace

HistogramHandle::Snapshot HistogramHandle::snapshot() const {
  if (block_ == nullptr) return {};
  return read_histogram(*block_, bounds_.size());
}

// ---------------------------------------------------------------------------------------------
// Names

namespace {

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool valid_metric_name(std::string_view name) {
  if (name.empty() || !(is_alpha(name[0]) || name[0] == '_' || name[0] == ':')) return false;
  for (char c : name) {
    if (!(is_alpha(c) || is_digit(c) || c == '_' || c == ':')) return false;
  }
  return true;
}

bool valid_label_name(std::string_view name) {
  if (name.empty() || !(is_alpha(name[0]) || name[0] == '_')) return false;
  if (name.starts_with("__")) return false;  // reserved for Prometheus internals
  for (char c : name) {
    if (!(is_alpha(c) || is_digit(c) || c == '_')) return false;
  }
  return true;
}

[[noreturn]] void misuse(const std::string& what) { throw std::invalid_argument(what); }

void validate(std::string_view name, MetricType type,
              std::initializer_list<std::string_view> label_names,
              const std::vector<double>& bounds) {
  const std::string n(name);
  if (!valid_metric_name(name)) misuse("metric name '" + n + "' is not a Prometheus name");
  if (!name.starts_with("moat_")) misuse("metric name '" + n + "' must start with moat_");
  const bool total = name.ends_with("_total");
  if (type == MetricType::kCounter && !total) misuse("counter '" + n + "' must end in _total");
  if (type != MetricType::kCounter && total) misuse("only counters end in _total: '" + n + "'");
  for (auto it = label_names.begin(); it != label_names.end(); ++it) {
    if (!valid_label_name(*it)) misuse("label name '" + std::string(*it) + "' of " + n);
    if (type == MetricType::kHistogram && *it == "le") misuse("histogram label 'le' of " + n);
    for (auto other = label_names.begin(); other != it; ++other) {
      if (*other == *it) misuse("duplicate label name '" + std::string(*it) + "' of " + n);
    }
  }
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
      misuse("histogram '" + n + "': bounds must be finite and strictly increasing");
    }
  }
}

const char* type_name(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

template <typename T>
void append_integer(std::string& out, T value) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, end);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Exposition

void append_escaped_label_value(std::string& out, std::string_view value) {
  for (std::size_t i = 0; i < value.size();) {
    const char c = value[i];
    if (static_cast<unsigned char>(c) >= 0x80) {
      // The format is UTF-8; one bad byte in a label would make the scraper drop the whole page.
      if (std::size_t n = detail::utf8_sequence_length(value, i); n != 0) {
        out.append(value.substr(i, n));
        i += n;
      } else {
        out.append(detail::kReplacementCharacter);
        ++i;
      }
      continue;
    }
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
    ++i;
  }
}

void append_escaped_help(std::string& out, std::string_view help) {
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void append_prometheus_double(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else {
    // Shortest round-trip digits, laid out like Go's strconv.FormatFloat(v, 'g', -1, 64), which
    // Prometheus' own client prints: plain decimals unless the exponent is below -4 or at least
    // 6. So buckets read le="0.0005" (not "5e-04"), the same as other exporters' le labels.
    char buffer[64];
    auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value,
                                   std::chars_format::scientific);
    const std::string_view sci(buffer, static_cast<std::size_t>(end - buffer));
    const auto e = sci.find('e');
    int exponent = 0;
    std::from_chars(sci.data() + e + (sci[e + 1] == '+' ? 2 : 1), sci.data() + sci.size(),
                    exponent);
    if (exponent < -4 || exponent >= 6) {
      out.append(sci);
    } else {
      auto [fixed_end, fixed_ec] = std::to_chars(buffer, buffer + sizeof buffer, value,
                                                 std::chars_format::fixed);
      out.append(buffer, fixed_end);
    }
  }
}

FamilyBase::FamilyBase(std::string name, std::string help, MetricType type,
                       std::vector<std::string> label_names, std::vector<double> bounds,
                       std::size_t shard_count)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)),
      bounds_(std::move(bounds)),
      shard_count_(shard_count) {
  // A family without labels has exactly one series: create it so it is exported as 0 at once.
  if (label_names_.empty()) series({});
}

const ShardBlock* FamilyBase::series(std::span<const std::string_view> values) {
  if (values.size() != label_names_.size()) {
    misuse("metric " + name_ + " takes " + std::to_string(label_names_.size()) +
           " label values, got " + std::to_string(values.size()));
  }
  std::lock_guard lock(mutex_);
  if (auto it = series_.find(values); it != series_.end()) return it->second.get();
  auto& block = series_[LabelValues(values.begin(), values.end())];
  if (!block) {
    const std::size_t slots = type_ == MetricType::kHistogram ? bounds_.size() + 2 : 1;
    block = std::make_unique<ShardBlock>(shard_count_, slots);
  }
  return block.get();
}

void FamilyBase::render(std::string& out) const {
  std::lock_guard lock(mutex_);
  if (series_.empty()) return;  // a labelled family with no series yet: nothing to say
  out += "# HELP ";
  out += name_;
  out += ' ';
  append_escaped_help(out, help_);
  out += "\n# TYPE ";
  out += name_;
  out += ' ';
  out += type_name(type_);
  out += '\n';

  // Writes `{a="x",b="y"` (no closing brace) or nothing; the caller may append `le`.
  auto open_labels = [&](const LabelValues& values) {
    for (std::size_t i = 0; i < values.size(); ++i) {
      out += i == 0 ? '{' : ',';
      out += label_names_[i];
      out += "=\"";
      append_escaped_label_value(out, values[i]);
      out += '"';
    }
  };
  auto labels = [&](const LabelValues& values) {
    open_labels(values);
    if (!values.empty()) out += '}';
  };

  for (const auto& [values, block] : series_) {
    switch (type_) {
      case MetricType::kCounter:
        out += name_;
        labels(values);
        out += ' ';
        append_integer(out, CounterHandle(block.get()).value());
        out += '\n';
        break;
      case MetricType::kGauge:
        out += name_;
        labels(values);
        out += ' ';
        append_integer(out, GaugeHandle(block.get()).value());
        out += '\n';
        break;
      case MetricType::kHistogram: {
        auto snap = read_histogram(*block, bounds_.size());
        for (std::size_t b = 0; b <= bounds_.size(); ++b) {
          out += name_;
          out += "_bucket";
          open_labels(values);
          out += values.empty() ? "{le=\"" : ",le=\"";
          if (b < bounds_.size()) {
            append_prometheus_double(out, bounds_[b]);
          } else {
            out += "+Inf";
          }
          out += "\"} ";
          append_integer(out, snap.cumulative[b]);
          out += '\n';
        }
        out += name_;
        out += "_sum";
        labels(values);
        out += ' ';
        append_prometheus_double(out, snap.sum);
        out += '\n';
        out += name_;
        out += "_count";
        labels(values);
        out += ' ';
        append_integer(out, snap.count());
        out += '\n';
        break;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Registry

std::vector<double> latency_buckets_seconds() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
}

MetricsRegistry::MetricsRegistry(std::size_t shard_count)
    : shard_count_(shard_count == 0 ? 1 : shard_count) {}

FamilyBase& MetricsRegistry::find_or_add(std::string_view name, std::string_view help,
                                         MetricType type,
                                         std::initializer_list<std::string_view> label_names,
                                         std::vector<double> bounds) {
  validate(name, type, label_names, bounds);
  std::lock_guard lock(mutex_);
  if (auto it = families_.find(name); it != families_.end()) {
    FamilyBase& existing = *it->second;
    const bool same_labels =
        std::equal(existing.label_names().begin(), existing.label_names().end(),
                   label_names.begin(), label_names.end());
    if (existing.type() != type || !same_labels) {
      misuse("metric " + std::string(name) + " registered twice with different type or labels");
    }
    return existing;
  }
  std::vector<std::string> names(label_names.begin(), label_names.end());
  std::unique_ptr<FamilyBase> family;
  switch (type) {
    case MetricType::kCounter:
      family = std::make_unique<CounterFamily>(std::string(name), std::string(help),
                                               std::move(names), std::vector<double>{},
                                               shard_count_);
      break;
    case MetricType::kGauge:
      family = std::make_unique<GaugeFamily>(std::string(name), std::string(help),
                                             std::move(names), std::vector<double>{},
                                             shard_count_);
      break;
    case MetricType::kHistogram:
      family = std::make_unique<HistogramFamily>(std::string(name), std::string(help),
                                                 std::move(names), std::move(bounds),
                                                 shard_count_);
      break;
  }
  FamilyBase& result = *family;
  families_.emplace(std::string(name), std::move(family));
  return result;
}

CounterFamily& MetricsRegistry::counter_family(
    std::string_view name, std::string_view help,
    std::initializer_list<std::string_view> label_names) {
  return static_cast<CounterFamily&>(
      find_or_add(name, help, MetricType::kCounter, label_names, {}));
}

GaugeFamily& MetricsRegistry::gauge_family(std::string_view name, std::string_view help,
                                           std::initializer_list<std::string_view> label_names) {
  return static_cast<GaugeFamily&>(find_or_add(name, help, MetricType::kGauge, label_names, {}));
}

HistogramFamily& MetricsRegistry::histogram_family(
    std::string_view name, std::string_view help, std::vector<double> bounds,
    std::initializer_list<std::string_view> label_names) {
  return static_cast<HistogramFamily&>(
      find_or_add(name, help, MetricType::kHistogram, label_names, std::move(bounds)));
}

std::string MetricsRegistry::render_prometheus() const {
  std::string out;
  out.reserve(4096);
  std::lock_guard lock(mutex_);
  for (const auto& [name, family] : families_) family->render(out);
  return out;
}

}  // namespace moat::core::obs

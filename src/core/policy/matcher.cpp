// The matcher: hash maps keyed by name (exact patterns) and by parent name (wildcards). A lookup
// walks the destination's label boundaries from the left, so it tries the host itself and then
// each parent from the longest (most specific) to the shortest: at most one hash probe per
// label, never a loop over the patterns. Keys are looked up as string_views (transparent hash),
// so a lookup allocates nothing.
#include "core/policy/matcher.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>

namespace moat::core::policy {
namespace {

// One (policy, service, pattern). The service's ports are copied in, so that deciding a
// lookup touches the hash node and nothing else in the common case.
struct Entry {
  static constexpr std::size_t kInlinePorts = 6;
  const Policy* policy = nullptr;
  const Service* service = nullptr;
  const HostPattern* pattern = nullptr;
  std::array<std::uint16_t, kInlinePorts> ports{};
  std::uint8_t port_count = 0;  // valid entries of `ports`
  bool more_ports = false;      // the service lists more: look at service->ports

  Entry() = default;
  Entry(const Policy* p, const Service* s, const HostPattern* h)
      : policy(p), service(s), pattern(h) {
    more_ports = s->ports.size() > kInlinePorts;
    port_count = static_cast<std::uint8_t>(std::min(s->ports.size(), kInlinePorts));
    std::copy_n(s->ports.begin(), port_count, ports.begin());
  }

  bool lists(std::uint16_t port) const {
    if (std::find(ports.begin(), ports.begin() + port_count, port) != ports.begin() + port_count) {
      return true;
    }
    return more_ports &&
           std::find(service->ports.begin(), service->ports.end(), port) != service->ports.end();
  }
};

// The entries of one key, in load order (policy, then service, then host), which is the
// tie-break. Nearly every key has one entry, so it is stored inline.
struct Bucket {
  Entry first;
  std::vector<Entry> more;

  void add(const Entry& e) {
    if (first.service == nullptr) {
      first = e;
    } else {
      more.push_back(e);
    }
  }
};

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};
using NameMap = std::unordered_map<std::string, Bucket, StringHash, std::equal_to<>>;

using AddressBytes = std::array<std::uint8_t, 16>;
struct BytesHash {
  std::size_t operator()(const AddressBytes& b) const noexcept {
    std::uint64_t lo = 0, hi = 0;
    std::memcpy(&lo, b.data(), 8);
    std::memcpy(&hi, b.data() + 8, 8);
    return std::hash<std::uint64_t>{}(lo ^ (hi * 0x9e3779b97f4a7c15ULL));
  }
};
// All networks of one family and one prefix length, keyed by their base address.
struct PrefixGroup {
  std::uint8_t prefix_length = 0;
  std::unordered_map<AddressBytes, Bucket, BytesHash> by_base;
};

// Offers the candidates of one specificity level. Returns true once one lists the port; the
// first candidate seen at all is remembered for kPortNotAllowed.
bool offer_one(const Entry& e, std::uint16_t port, Match& result, Match& first_host_match) {
  if (first_host_match.service == nullptr) {
    first_host_match = Match{Verdict::kPortNotAllowed, e.policy, e.service, e.pattern};
  }
  if (!e.lists(port)) return false;
  result = Match{Verdict::kAllowed, e.policy, e.service, e.pattern};
  return true;
}

bool offer(const Bucket& bucket, std::uint16_t port, Match& result, Match& first_host_match) {
  if (offer_one(bucket.first, port, result, first_host_match)) return true;
  for (const Entry& e : bucket.more) {
    if (offer_one(e, port, result, first_host_match)) return true;
  }
  return false;
}

}  // namespace

struct Matcher::Impl {
  NameMap exact;
  NameMap wildcard;             // keyed by the parent name: "*.example.io" under "example.io"
  std::vector<PrefixGroup> v4;  // longest prefix first
  std::vector<PrefixGroup> v6;

  Match lookup_name(std::string_view host, std::uint16_t port) const {
    Match result, first;
    if (auto it = exact.find(host); it != exact.end() && offer(it->second, port, result, first)) {
      return result;
    }
    // Each parent below which `host` lies, longest first: for a.b.example.io that is
    // b.example.io, example.io, io. Only whole labels are tried, so "evilexample.io" never
    // reaches "example.io".
    for (std::size_t dot = host.find('.'); dot != std::string_view::npos;
         dot = host.find('.', dot + 1)) {
      auto it = wildcard.find(host.substr(dot + 1));
      if (it != wildcard.end() && offer(it->second, port, result, first)) return result;
    }
    return first;  // kPortNotAllowed with the most specific host match, or kHostNotInPolicy
  }

  Match lookup_address(const net::IpAddress& address, std::uint16_t port) const {
    Match result, first;
    for (const PrefixGroup& group : address.is_v4() ? v4 : v6) {
      const net::IpAddress base = net::mask_address(address, group.prefix_length);
      auto it = group.by_base.find(base.bytes);
      if (it != group.by_base.end() && offer(it->second, port, result, first)) return result;
    }
    return first;
  }
};

const char* to_string(Verdict v) {
  switch (v) {
    case Verdict::kAllowed:
      return "allowed";
    case Verdict::kHostNotInPolicy:
      return "host_not_in_policy";
    case Verdict::kPortNotAllowed:
      return "port_not_allowed";
  }
  return "unknown";
}

Matcher::Matcher(std::span<const std::shared_ptr<const Policy>> policies)
    : impl_(std::make_unique<Impl>()) {
  std::map<std::uint8_t, std::unordered_map<AddressBytes, Bucket, BytesHash>, std::greater<>> v4,
      v6;
  for (const auto& policy : policies) {
    if (!policy) continue;
    for (const Service& service : policy->services) {
      for (const HostPattern& pattern : service.hosts) {
        const Entry entry{policy.get(), &service, &pattern};
        switch (pattern.kind) {
          case HostPattern::Kind::kExact:
            impl_->exact[pattern.name].add(entry);
            break;
          case HostPattern::Kind::kWildcard:
            impl_->wildcard[pattern.name].add(entry);
            break;
          case HostPattern::Kind::kAddress:
          case HostPattern::Kind::kNetwork: {
            auto& groups = pattern.network.base.is_v4() ? v4 : v6;
            // Mask again so that a hand-built pattern with host bits still matches its network.
            const auto base =
                net::mask_address(pattern.network.base, pattern.network.prefix_length);
            groups[pattern.network.prefix_length][base.bytes].add(entry);
            break;
          }
        }
      }
    }
  }
  for (auto& [length, by_base] : v4) impl_->v4.push_back(PrefixGroup{length, std::move(by_base)});
  for (auto& [length, by_base] : v6) impl_->v6.push_back(PrefixGroup{length, std::move(by_base)});
}

Match Matcher::match(const Destination& destination) const {
  if (!impl_) return {};
  if (destination.kind == Destination::Kind::kAddress) {
    return impl_->lookup_address(destination.address, destination.port);
  }
  return impl_->lookup_name(destination.host, destination.port);
}

Match Matcher::match_name(std::string_view normalized_host, std::uint16_t port) const {
  if (!impl_) return {};
  return impl_->lookup_name(normalized_host, port);
}

Matcher::Matcher() = default;
Matcher::~Matcher() = default;
Matcher::Matcher(Matcher&&) noexcept = default;
Matcher& Matcher::operator=(Matcher&&) noexcept = default;

}  // namespace moat::core::policy

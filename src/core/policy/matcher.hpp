// core/policy: the matcher: which service of which loaded policy allows a destination.
// Built once per policy snapshot: hash maps keyed by exact name and by wildcard parent name,
// probed at each label boundary of the destination (one probe per label, whatever the number of
// patterns); addresses by prefix length, longest first. Lookups do not allocate.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "core/policy/host_pattern.hpp"
#include "core/policy/model.hpp"

namespace moat::core::policy {

enum class Verdict : std::uint8_t {
  kAllowed,
  kHostNotInPolicy,  // no pattern matches the host
  kPortNotAllowed,   // a pattern matches the host, but none of those services lists the port
};

const char* to_string(Verdict v);

struct Match {
  Verdict verdict = Verdict::kHostNotInPolicy;
  // For kAllowed: the service that allows it. For kPortNotAllowed: the most specific service
  // whose pattern matched the host. Null for kHostNotInPolicy.
  const Policy* policy = nullptr;
  const Service* service = nullptr;
  const HostPattern* pattern = nullptr;
};

class Matcher {
 public:
  // Matches nothing. Defined out of line: unique_ptr<Impl> needs the complete Impl to destroy.
  Matcher();
  // The policies must outlive the matcher (a snapshot owns both).
  explicit Matcher(std::span<const std::shared_ptr<const Policy>> policies);

  // Precedence: the most specific matching pattern whose service lists the port wins (an exact
  // name, then the longest wildcard parent); ties go to the earlier policy, then service.
  Match match(const Destination& destination) const;

  // Same, for a host that is already normalized and a port (names only; no IP parsing).
  Match match_name(std::string_view normalized_host, std::uint16_t port) const;

  ~Matcher();
  Matcher(Matcher&&) noexcept;
  Matcher& operator=(Matcher&&) noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moat::core::policy

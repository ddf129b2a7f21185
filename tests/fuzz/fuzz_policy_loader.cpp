// Fuzzes the policy loader: any bytes must give a policy or located diagnostics, never a crash,
// a hang or unbounded memory; a loaded policy must build a matcher and survive the set checks.
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "core/policy/loader.hpp"
#include "core/policy/matcher.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace moat::core::policy;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  LoadResult r = load_policy_text(text, "fuzz.yaml");
  if (r.policy == nullptr && r.diagnostics.empty()) __builtin_trap();  // must say why
  for (const auto& d : r.diagnostics) {
    if (d.message.empty()) __builtin_trap();
    (void)format(d);
  }
  if (r.policy) {
    std::vector<std::shared_ptr<const Policy>> set{r.policy, r.policy};
    (void)check_policy_set(set);
    Matcher matcher(std::vector<std::shared_ptr<const Policy>>{r.policy});
    for (const auto& s : r.policy->services) {
      for (const auto& h : s.hosts) {
        if (h.kind != HostPattern::Kind::kExact) continue;
        Match m = matcher.match_name(h.name, s.ports.empty() ? 443 : s.ports[0]);
        if (m.verdict != Verdict::kAllowed) __builtin_trap();  // its own host must match
      }
    }
  }
  return 0;
}

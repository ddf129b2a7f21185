#include "core/policy/policy_set.hpp"

namespace moat::core::policy {

PolicySetLoad load_policy_set(std::span<const std::string> files) {
  PolicySetLoad out;
  std::vector<std::shared_ptr<const Policy>> policies;
  bool failed = false;
  for (const auto& file : files) {
    LoadResult r = load_policy_file(file);
    out.unreadable = out.unreadable || r.unreadable;
    out.diagnostics.insert(out.diagnostics.end(), r.diagnostics.begin(), r.diagnostics.end());
    if (r.policy) {
      policies.push_back(std::move(r.policy));
    } else {
      failed = true;
    }
  }
  auto cross = check_policy_set(policies);
  out.diagnostics.insert(out.diagnostics.end(), cross.begin(), cross.end());
  if (failed || has_errors(cross)) return out;
  // The matcher points into the policies, which the shared_ptrs keep in place across the move.
  Matcher matcher(policies);
  out.set = std::make_shared<PolicySet>(PolicySet{std::move(policies), std::move(matcher)});
  return out;
}

}  // namespace moat::core::policy

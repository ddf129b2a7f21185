// core/policy: a loaded set of policies plus the matcher built over them: the immutable snapshot
// every mode queries. Gateways swap a shared_ptr to it on reload.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/policy/loader.hpp"
#include "core/policy/matcher.hpp"

namespace moat::core::policy {

struct PolicySet {
  std::vector<std::shared_ptr<const Policy>> policies;  // load order = precedence on ties
  Matcher matcher;
};

struct PolicySetLoad {
  std::shared_ptr<const PolicySet> set;  // null when any file has errors
  std::vector<Diagnostic> diagnostics;   // every file's, then the cross-file checks
  bool unreadable = false;               // some file could not be read at all (missing, dir, ...)
};

PolicySetLoad load_policy_set(std::span<const std::string> files);

}  // namespace moat::core::policy

// core/policy: loading and validating policy YAML, with file:line:column diagnostics.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/diagnostic.hpp"
#include "core/policy/model.hpp"

namespace moat::core::policy {

using config::Diagnostic;
using config::format;
using config::has_errors;
using config::Severity;

struct LoadResult {
  std::shared_ptr<const Policy> policy;  // null when there is any error
  std::vector<Diagnostic> diagnostics;   // errors and warnings, in file order
  bool unreadable = false;               // the file itself could not be read (missing, dir, ...)
};

// Files over this size are refused before reading.
inline constexpr std::size_t kMaxPolicyBytes = 4 * 1024 * 1024;

LoadResult load_policy_file(const std::string& path);
// `name` is used as the file in diagnostics.
LoadResult load_policy_text(std::string_view text, const std::string& name);

// Checks across several loaded policies: duplicate policy names, and patterns of one policy
// that overlap or shadow another's (warnings).
std::vector<Diagnostic> check_policy_set(std::span<const std::shared_ptr<const Policy>> policies);

// The revision of `current` must be higher than `previous`'s (same policy name).
std::vector<Diagnostic> check_revision(const Policy& previous, const Policy& current);

}  // namespace moat::core::policy

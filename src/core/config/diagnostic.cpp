#include "core/config/diagnostic.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace moat::core::config {

std::string format(const Diagnostic& d) {
  std::string out;
  if (d.where.line > 0) {
    out = fmt::format("{}:{}:{}: ", d.where.file, d.where.line, d.where.column);
  } else if (!d.where.file.empty()) {
    out = d.where.file + ": ";
  }
  out += d.severity == Severity::kError ? "error: " : "warning: ";
  out += d.message;
  if (!d.hint.empty()) out += "\n  hint: " + d.hint;
  return out;
}

bool has_errors(std::span<const Diagnostic> diagnostics) {
  return std::any_of(diagnostics.begin(), diagnostics.end(),
                     [](const Diagnostic& d) { return d.severity == Severity::kError; });
}

}  // namespace moat::core::config

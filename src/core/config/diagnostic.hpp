// core/config: located diagnostics for every configuration input (policies, gateway configs).
#pragma once

#include <span>
#include <string>

namespace moat::core::config {

// Where a value came from. 1-based; line 0 means "the whole file".
struct Location {
  std::string file;
  int line = 0;
  int column = 0;
};

enum class Severity { kError, kWarning };

struct Diagnostic {
  Severity severity = Severity::kError;
  Location where;
  std::string message;
  std::string hint;
};

// "file:line:column: error: message" and, on the next line, "  hint: ..." when there is one.
std::string format(const Diagnostic& d);
bool has_errors(std::span<const Diagnostic> diagnostics);

}  // namespace moat::core::config

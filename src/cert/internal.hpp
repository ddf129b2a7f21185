// cert: helpers shared by the mode's commands (not part of its interface).
#pragma once

#include <ostream>

#include "core/base/result.hpp"

namespace moat::cert {

// "moat: error: message" and, when there is one, "  hint: ..." on the next line.
inline void print_error(std::ostream& err, const core::Error& e) {
  err << "moat: error: " << e.message << '\n';
  if (!e.hint.empty()) err << "  hint: " << e.hint << '\n';
}

}  // namespace moat::cert

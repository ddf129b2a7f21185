// policy mode: `moat policy check` and `moat policy match`, thin layers over core/policy.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace moat::policy {

struct CheckOptions {
  std::vector<std::string> files;
  std::string previous;  // --previous FILE: the last published edition, for the revision check
  bool strict = false;   // warnings count as errors
};

// Prints every diagnostic (stderr) and a summary per file (stdout). Exit code per
// core/base/exit_code.hpp: 0 valid, 1 any error (or warning with strict), 2 unreadable input.
int run_check(const CheckOptions& options, std::ostream& out, std::ostream& err);

struct MatchOptions {
  std::vector<std::string> files;
  std::string destination;  // HOST[:PORT]
  bool json = false;
};

// Says which service allows the destination and why, or why nothing does.
// Exit: 0 allowed, 1 denied, 2 invalid policy or destination.
int run_match(const MatchOptions& options, std::ostream& out, std::ostream& err);

}  // namespace moat::policy

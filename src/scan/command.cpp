// `moat scan`: scan, render, exit code (0 ok, 1 below --fail-under, 2 usage or unreachable).
#include <unistd.h>

#include <ostream>

#include "core/base/exit_code.hpp"
#include "scan/scan.hpp"

namespace moat::scan {

int run(const ScanOptions& options, std::ostream& out, std::ostream& err) {
  if (!options.fail_under.empty() && grade_rank(options.fail_under) < 0) {
    err << "moat: error: --fail-under " << options.fail_under
        << ": not a grade (A+ A A- B C D E F)\n";
    return kExitUsage;
  }
  auto result = scan(options);
  if (!result) {
    err << "moat: error: " << result.error().message << '\n';
    if (!result.error().hint.empty()) err << "  hint: " << result.error().hint << '\n';
    return kExitUsage;
  }
  bool color = options.color == ScanOptions::Color::kAlways ||
               (options.color == ScanOptions::Color::kAuto && !options.json && ::isatty(1) == 1);
  out << (options.json ? render_json(*result) : render_text(*result, color));
  out.flush();
  if (!result->error.empty()) {
    err << "moat: error: " << result->error << '\n';
    return kExitUsage;
  }
  if (!options.fail_under.empty() &&
      grade_rank(result->grade.grade) < grade_rank(options.fail_under)) {
    err << "moat: grade " << result->grade.grade << " is below " << options.fail_under << '\n';
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace moat::scan

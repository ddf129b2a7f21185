// core/base: process exit codes shared by every subcommand.
#pragma once

namespace moat {

enum ExitCode : int {
  kExitOk = 0,      // the command did what was asked and the checked thing holds
  kExitFailed = 1,  // the checked thing does not hold (denied, invalid policy, pin mismatch, ...)
  kExitUsage = 2,   // bad arguments or unreadable input
};

}  // namespace moat

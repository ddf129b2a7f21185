// egress mode entry point: load the config, then serve (or only check it).
#pragma once

#include <cstddef>
#include <iosfwd>
#include <string>

namespace moat::egress {

struct RunOptions {
  std::string config_path;
  std::size_t workers = 0;  // 0: the config's value, else one per core
  bool check_only = false;  // validate the config and its policies, then exit (like nginx -t)
};

// Exit code: 0 after a clean stop (or a valid config with check_only), 1 invalid config,
// 2 unreadable config or a listener that cannot be opened.
int run(const RunOptions& options, std::ostream& out, std::ostream& err);

}  // namespace moat::egress

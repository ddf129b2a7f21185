// edge mode entry point: load the config, then serve (or only check it).
#pragma once

#include <cstddef>
#include <iosfwd>
#include <string>

namespace moat::edge {

struct RunOptions {
  std::string config_path;
  std::size_t workers = 0;  // 0: the config's value, else one per core
  bool check_only = false;  // validate the config, its policy and its certificates, then exit
};

// Exit code: 0 after a clean stop (or a valid config with check_only), 1 invalid config or
// certificates, 2 unreadable config or a listener that cannot be opened.
int run(const RunOptions& options, std::ostream& out, std::ostream& err);

}  // namespace moat::edge

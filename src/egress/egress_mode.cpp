#include "egress/egress_mode.hpp"

#include <ostream>

#include <fmt/format.h>

#include "core/base/exit_code.hpp"
#include "egress/server.hpp"

namespace moat::egress {

int run(const RunOptions& options, std::ostream& out, std::ostream& err) {
  EgressConfigLoad load = load_egress_config(options.config_path);
  for (const auto& d : load.diagnostics) err << core::config::format(d) << '\n';
  if (!load.config) return load.unreadable ? kExitUsage : kExitFailed;
  if (options.check_only) {
    const auto& c = *load.config;
    std::size_t services = 0;
    for (const auto& p : c.policies->policies) services += p->services.size();
    out << fmt::format("{}: egress config ok: {} listener{}, {} polic{} ({} services), {} group{}\n",
                       options.config_path, c.listeners.size(), c.listeners.size() == 1 ? "" : "s",
                       c.policies->policies.size(), c.policies->policies.size() == 1 ? "y" : "ies",
                       services, c.groups.size(), c.groups.size() == 1 ? "" : "s");
    return kExitOk;
  }
  Server server({options.config_path, options.workers}, load.config);
  return server.run();
}

}  // namespace moat::egress

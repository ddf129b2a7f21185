#include "edge/edge_mode.hpp"

#include <ostream>

#include <fmt/format.h>

#include "core/base/exit_code.hpp"
#include "edge/server.hpp"

namespace moat::edge {

int run(const RunOptions& options, std::ostream& out, std::ostream& err) {
  EdgeConfigLoad load = load_edge_config(options.config_path);
  for (const auto& d : load.diagnostics) err << core::config::format(d) << '\n';
  if (!load.config) return load.unreadable ? kExitUsage : kExitFailed;
  // Certificates and keys are part of the config: a check that skipped them would pass a
  // config the server then refuses to start with.
  auto snapshot = make_snapshot(load.config);
  if (!snapshot) {
    // A certificate's error points at its list item; others at the config file.
    const core::Error& e = snapshot.error();
    err << fmt::format("{}: error: {}\n", e.where.empty() ? options.config_path : e.where,
                       e.message);
    return kExitFailed;
  }
  if (options.check_only) {
    const auto& c = *load.config;
    out << fmt::format("{}: edge config ok: {} HTTPS listener{}, {} HTTP listener{}, "
                       "{} certificate{}, {} route{}, {} pool{}\n",
                       options.config_path, c.listen_https.size(),
                       c.listen_https.size() == 1 ? "" : "s", c.listen_http.size(),
                       c.listen_http.size() == 1 ? "" : "s", c.certificates.size(),
                       c.certificates.size() == 1 ? "" : "s", c.routes.size(),
                       c.routes.size() == 1 ? "" : "s", c.pools.size(),
                       c.pools.size() == 1 ? "" : "s");
    return kExitOk;
  }
  Server server({options.config_path, options.workers}, *snapshot);
  return server.run();
}

}  // namespace moat::edge

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
    // Certificate errors already carry their file:line:column; others get the config's name.
    const std::string& message = snapshot.error().message;
    const std::string located = options.config_path + ":";
    if (message.rfind(located, 0) == 0) {
      const std::size_t end = message.find(": ", located.size());
      err << (end == std::string::npos
                  ? message
                  : fmt::format("{}: error: {}", message.substr(0, end), message.substr(end + 2)))
          << '\n';
    } else {
      err << fmt::format("{}: error: {}\n", options.config_path, message);
    }
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

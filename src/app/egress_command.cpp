// `moat egress`: the allowlisting HTTPS forward proxy (HTTP CONNECT and transparent TLS).
#include <iostream>
#include <memory>

#include <spdlog/spdlog.h>

#include "app/commands.hpp"
#include "egress/egress_mode.hpp"

namespace moat::app {

void add_egress_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<moat::egress::RunOptions>();
  auto* egress = app.add_subcommand(
      "egress", "Run the egress proxy: only the policy's hosts and ports, TLS checked (SIGHUP "
                "reloads, SIGUSR1 reopens the audit log, SIGTERM stops)");
  egress->add_option("-c,--config", options->config_path, "Gateway config (YAML) with an egress: section")
      ->required();
  egress->add_option("--workers", options->workers, "Worker threads (default: config, else one per core)");
  egress->add_flag("--check", options->check_only, "Validate the config and its policies, then exit");
  egress->callback([options, &exit_code] {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    exit_code = moat::egress::run(*options, std::cout, std::cerr);
  });
}

}  // namespace moat::app

// `moat edge`: the platform's HTTPS front door (TLS termination, HTTP to HTTPS redirect, HSTS,
// reverse proxying by host and path to upstream pools).
#include <iostream>
#include <memory>

#include <spdlog/spdlog.h>

#include "app/commands.hpp"
#include "edge/edge_mode.hpp"

namespace moat::app {

void add_edge_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<moat::edge::RunOptions>();
  auto* edge = app.add_subcommand(
      "edge", "Run the HTTPS front door: TLS 1.2+, HSTS, HTTP->HTTPS redirect, reverse proxy to "
              "upstream pools (SIGHUP reloads, SIGUSR1 reopens the access log, SIGTERM drains)");
  edge->add_option("-c,--config", options->config_path, "Gateway config (YAML) with an edge: section")
      ->required();
  edge->add_option("--workers", options->workers, "Worker threads (default: config, else one per core)");
  edge->add_flag("--check", options->check_only,
                 "Validate the config, its policy and its certificates, then exit");
  edge->callback([options, &exit_code] {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    exit_code = moat::edge::run(*options, std::cout, std::cerr);
  });
}

}  // namespace moat::app

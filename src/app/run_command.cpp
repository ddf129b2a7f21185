// `moat run --config FILE`: starts the mode whose section the gateway config has (egress: or
// edge:), so one service unit works for either.
#include <iostream>
#include <memory>

#include <spdlog/spdlog.h>

#include "app/commands.hpp"
#include "core/base/exit_code.hpp"
#include "core/config/yaml_reader.hpp"
#include "edge/edge_mode.hpp"
#include "egress/egress_mode.hpp"

namespace moat::app {

namespace {

struct RunCommandOptions {
  std::string config_path;
  std::size_t workers = 0;
  bool check_only = false;
};

int run_config(const RunCommandOptions& o) {
  auto doc = core::config::read_yaml_file(o.config_path, 4 * 1024 * 1024);
  for (const auto& d : doc.diagnostics) std::cerr << core::config::format(d) << '\n';
  if (!doc.ok()) return doc.unreadable ? kExitUsage : kExitFailed;
  bool egress = doc.root.IsMap() && core::config::YamlReader::present(doc.root["egress"]);
  bool edge = doc.root.IsMap() && core::config::YamlReader::present(doc.root["edge"]);
  if (egress && edge) {
    std::cerr << "moat: error: " << o.config_path
              << " has both an egress: and an edge: section; run them as two processes:\n"
              << "  moat egress --config " << o.config_path << "\n"
              << "  moat edge --config " << o.config_path << '\n';
    return kExitUsage;
  }
  if (egress) return egress::run({o.config_path, o.workers, o.check_only}, std::cout, std::cerr);
  if (edge) return edge::run({o.config_path, o.workers, o.check_only}, std::cout, std::cerr);
  std::cerr << "moat: error: " << o.config_path
            << " has neither an egress: nor an edge: section (see docs/egress.md, docs/edge.md)\n";
  return kExitFailed;
}

}  // namespace

void add_run_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<RunCommandOptions>();
  auto* run = app.add_subcommand(
      "run", "Run the gateway the config describes (its egress: or edge: section)");
  run->add_option("-c,--config", options->config_path, "Gateway config (YAML)")->required();
  run->add_option("--workers", options->workers, "Worker threads (default: config, else one per core)");
  run->add_flag("--check", options->check_only, "Validate the config, then exit");
  run->callback([options, &exit_code] {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    exit_code = run_config(*options);
  });
}

}  // namespace moat::app

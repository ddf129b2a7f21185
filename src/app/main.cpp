// moat: one binary, one subcommand per mode. Exit codes: 0 ok, 1 the checked thing failed,
// 2 usage or input error (core/base/exit_code.hpp). Errors go to stderr.
#include <csignal>
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "app/commands.hpp"
#include "core/base/exit_code.hpp"

int main(int argc, char** argv) {
  // A peer that closes early must give EPIPE to the writer, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  // Operational logs go to stderr: stdout belongs to reports and to access/audit logs ("-").
  spdlog::set_default_logger(spdlog::stderr_color_mt("moat"));
  CLI::App app{"moat: one policy for a SaaS platform's network security, enforced at both ends"};
  app.set_version_flag("--version", std::string("moat ") + MOAT_VERSION);
  app.require_subcommand(1);
  app.fallthrough(false);

  int exit_code = moat::kExitOk;
  moat::app::add_policy_command(app, exit_code);
  moat::app::add_cert_command(app, exit_code);
  moat::app::add_egress_command(app, exit_code);
  moat::app::add_edge_command(app, exit_code);
  moat::app::add_scan_command(app, exit_code);
  moat::app::add_run_command(app, exit_code);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with exit code 0 in CLI11.
    int code = app.exit(e);
    return code == 0 ? moat::kExitOk : moat::kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moat: error: %s\n", e.what());
    return moat::kExitUsage;
  }
  return exit_code;
}

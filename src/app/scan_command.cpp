// `moat scan HOST[:PORT]`: argument parsing only; the work is in src/scan/.
#include <iostream>
#include <map>
#include <memory>

#include "app/commands.hpp"
#include "scan/scan.hpp"

namespace moat::app {

void add_scan_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<scan::ScanOptions>();
  auto* cmd = app.add_subcommand(
      "scan", "Audit a TLS server: protocols, cipher suites, groups, weaknesses, certificate, "
              "HSTS, and an SSL Labs-style grade (exit 1 below --fail-under)");
  cmd->add_option("target", options->target, "HOST[:PORT] or [V6]:PORT (port 443 by default)")
      ->required();
  cmd->add_option("--sni", options->sni, "Server name to send (default: HOST, unless an IP)");
  cmd->add_option("--connect", options->connect, "IP address to connect to instead of resolving HOST");
  cmd->add_option("--ca", options->ca_file, "Trust anchors (PEM) instead of the system store")
      ->check(CLI::ExistingFile);
  cmd->add_option("--timeout", options->timeout_seconds,
                  "Seconds per connection (connect and the server's first flight)")
      ->default_val(5)
      ->check(CLI::Range(0.001, 3600.0));
  cmd->add_option("--deadline", options->deadline_seconds, "Seconds for the whole scan")
      ->default_val(30)
      ->check(CLI::Range(0.001, 86400.0));
  cmd->add_option("--connections", options->max_connections, "Connections in flight at once")
      ->default_val(8)
      ->check(CLI::Range(1, 64));
  cmd->add_flag("--json", options->json, "JSON output (schema moat.scan/v1, docs/scan.md)");
  cmd->add_option("--fail-under", options->fail_under,
                  "Exit 1 when the grade is below this one (A+ A A- B C D E F)");
  cmd->add_option("--color", options->color, "auto, always or never")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, scan::ScanOptions::Color>{{"auto", scan::ScanOptions::Color::kAuto},
                                                          {"always", scan::ScanOptions::Color::kAlways},
                                                          {"never", scan::ScanOptions::Color::kNever}},
          CLI::ignore_case))
      ->default_str("auto");
  cmd->callback([options, &exit_code] { exit_code = scan::run(*options, std::cout, std::cerr); });
}

}  // namespace moat::app

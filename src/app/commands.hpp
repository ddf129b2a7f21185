// app: the CLI. main() builds the CLI11 tree; each mode adds its own subcommand in its own file
// (app/<mode>_command.cpp), whose callback runs the mode and stores the process exit code.
#pragma once

#include <CLI/CLI.hpp>

namespace moat::app {

void add_policy_command(CLI::App& app, int& exit_code);
void add_cert_command(CLI::App& app, int& exit_code);
void add_egress_command(CLI::App& app, int& exit_code);
void add_edge_command(CLI::App& app, int& exit_code);
void add_scan_command(CLI::App& app, int& exit_code);
void add_run_command(CLI::App& app, int& exit_code);

}  // namespace moat::app

// Placeholder: the scan mode registers its subcommand here (being built).
#include "app/commands.hpp"

namespace moat::app {

void add_scan_command(CLI::App& /*app*/, int& /*exit_code*/) {}

}  // namespace moat::app

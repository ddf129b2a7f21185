// Placeholder: the edge mode registers its subcommand here (being built).
#include "app/commands.hpp"

namespace moat::app {

void add_edge_command(CLI::App& /*app*/, int& /*exit_code*/) {}

}  // namespace moat::app

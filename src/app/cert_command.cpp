#include "app/commands.hpp"

namespace moat::app {

void add_cert_command(CLI::App& app, int& exit_code) {
  auto* cert = app.add_subcommand("cert", "Certificate reports and pin checks");
  cert->require_subcommand(1);
  (void)exit_code;
}

}  // namespace moat::app

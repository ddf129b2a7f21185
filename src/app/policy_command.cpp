#include "app/commands.hpp"

namespace moat::app {

void add_policy_command(CLI::App& app, int& exit_code) {
  auto* policy = app.add_subcommand("policy", "Validate, query and publish policies");
  policy->require_subcommand(1);
  (void)exit_code;
}

}  // namespace moat::app

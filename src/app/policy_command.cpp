// `moat policy ...`: check and match (publishing comes with the exporters).
#include <iostream>
#include <memory>

#include "app/commands.hpp"
#include "core/base/exit_code.hpp"
#include "policy/policy_mode.hpp"

namespace moat::app {

void add_policy_command(CLI::App& app, int& exit_code) {
  auto* policy = app.add_subcommand("policy", "Validate and query policies");
  policy->require_subcommand(1);

  auto check_options = std::make_shared<moat::policy::CheckOptions>();
  auto* check = policy->add_subcommand(
      "check", "Validate policies; print every problem as file:line:column (exit 1 on errors)");
  check->add_option("files", check_options->files, "Policy files (YAML)")->required();
  check->add_option("--previous", check_options->previous,
                    "The last published edition: its revision must not be higher");
  check->add_flag("--strict", check_options->strict, "Treat warnings as errors");
  check->callback([check_options, &exit_code] {
    exit_code = moat::policy::run_check(*check_options, std::cout, std::cerr);
  });

  auto match_options = std::make_shared<moat::policy::MatchOptions>();
  auto match_args = std::make_shared<std::vector<std::string>>();
  auto* match = policy->add_subcommand(
      "match", "Which service allows HOST[:PORT] (port 443 if omitted); exit 0 allowed, 1 denied");
  match->add_option("args", *match_args, "FILE... HOST[:PORT]")->required()->expected(2, -1);
  match->add_flag("--json", match_options->json, "Print the decision as JSON");
  match->callback([match_options, match_args, &exit_code] {
    match_options->files.assign(match_args->begin(), match_args->end() - 1);
    match_options->destination = match_args->back();
    exit_code = moat::policy::run_match(*match_options, std::cout, std::cerr);
  });
}

}  // namespace moat::app

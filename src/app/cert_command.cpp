// `moat cert show|pin|verify`: argument parsing only; the work is in src/cert/.
#include <csignal>
#include <iostream>
#include <map>
#include <memory>

#include "app/commands.hpp"
#include "cert/cert.hpp"

namespace moat::app {
namespace {

const std::map<std::string, cert::Format> kFormats = {{"text", cert::Format::kText},
                                                      {"markdown", cert::Format::kMarkdown},
                                                      {"json", cert::Format::kJson}};

void add_target_options(CLI::App* cmd, cert::TargetOptions& target) {
  cmd->add_option("target", target.target,
                  "PEM or DER file (one certificate or a chain), or HOST:PORT / [V6]:PORT")
      ->required();
  cmd->add_option("--sni", target.sni, "Server name to send (default: HOST, unless an IP)");
  cmd->add_option("--connect", target.connect,
                  "IP address to connect to instead of resolving HOST");
  cmd->add_option("--timeout", target.timeout_seconds,
                  "Seconds for resolve, connect and TLS handshake in total")
      ->default_val(10)
      ->check(CLI::Range(0.001, 3600.0));
}

// A peer that closes mid-handshake must give an error, not kill us with SIGPIPE.
void ignore_sigpipe() { std::signal(SIGPIPE, SIG_IGN); }

}  // namespace

void add_cert_command(CLI::App& app, int& exit_code) {
  auto* cert = app.add_subcommand("cert", "Certificate reports and pin checks");
  cert->require_subcommand(1);

  auto show = std::make_shared<cert::ShowOptions>();
  auto* show_cmd = cert->add_subcommand(
      "show", "Print the certificate table (domain, fingerprint, pin, names, key, issuer, ...)");
  add_target_options(show_cmd, show->target);
  show_cmd->add_flag("--chain", show->chain, "Every certificate of the chain, not only the leaf");
  show_cmd->add_option("--format", show->format, "text, markdown (the page's table) or json")
      ->transform(CLI::CheckedTransformer(kFormats, CLI::ignore_case))
      ->default_str("text");
  show_cmd->callback([show, &exit_code] {
    ignore_sigpipe();
    exit_code = cert::show(*show, std::cout, std::cerr);
  });

  auto pin = std::make_shared<cert::PinOptions>();
  auto* pin_cmd = cert->add_subcommand("pin", "Print the RFC 7469 SPKI pin (base64 SHA-256)");
  add_target_options(pin_cmd, pin->target);
  pin_cmd->add_flag("--chain", pin->chain, "One line per certificate: pin and subject");
  pin_cmd->callback([pin, &exit_code] {
    ignore_sigpipe();
    exit_code = cert::pin(*pin, std::cout, std::cerr);
  });

  auto verify = std::make_shared<cert::VerifyOptions>();
  auto* verify_cmd = cert->add_subcommand(
      "verify", "Check pins, names and dates against a policy (exit 0 ok, 1 failed, 2 error)");
  add_target_options(verify_cmd, verify->target);
  verify_cmd->add_option("--policy", verify->policies, "Policy file (repeatable)")->required();
  verify_cmd->add_option("--host", verify->host,
                         "Name the certificate must cover (default: --sni, else HOST)");
  verify_cmd->add_option("--min-days", verify->min_days, "Fail with fewer days left than this")
      ->default_val(0)
      ->check(CLI::NonNegativeNumber);
  verify_cmd->add_flag("--allow-unpinned", verify->allow_unpinned,
                       "Accept a matching service that lists no pins");
  verify_cmd->add_option("--format", verify->format, "text or json")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, cert::Format>{{"text", cert::Format::kText},
                                              {"json", cert::Format::kJson}},
          CLI::ignore_case))
      ->default_str("text");
  verify_cmd->callback([verify, &exit_code] {
    ignore_sigpipe();
    exit_code = cert::verify(*verify, std::cout, std::cerr);
  });
}

}  // namespace moat::app

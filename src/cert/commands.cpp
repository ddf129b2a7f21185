// `moat cert show` and `moat cert pin`.
#include <ostream>

#include "cert/cert.hpp"
#include "cert/internal.hpp"
#include "core/base/exit_code.hpp"

namespace moat::cert {

int show(const ShowOptions& options, std::ostream& out, std::ostream& err) {
  auto source = load_source(options.target);
  if (!source) {
    print_error(err, source.error());
    return kExitUsage;
  }
  Report report;
  report.source = &source.value();
  report.chain_length = source->chain.size();
  report.now = std::chrono::system_clock::now();
  std::size_t count = options.chain ? source->chain.size() : 1;
  for (std::size_t i = 0; i < count; ++i) {
    report.certificates.push_back(core::tls::inspect(source->chain[i].get(), report.now));
  }
  switch (options.format) {
    case Format::kText: out << render_text(report); break;
    case Format::kMarkdown: out << render_markdown(report); break;
    case Format::kJson: out << render_json(report); break;
  }
  return kExitOk;
}

int pin(const PinOptions& options, std::ostream& out, std::ostream& err) {
  auto source = load_source(options.target);
  if (!source) {
    print_error(err, source.error());
    return kExitUsage;
  }
  if (!options.chain) {
    out << core::tls::spki_pin(source->chain.front().get()) << '\n';
    return kExitOk;
  }
  for (const auto& cert : source->chain) {
    auto info = core::tls::inspect(cert.get());
    out << info.pin_sha256 << ' ' << printable(info.subject.dn) << '\n';
  }
  return kExitOk;
}

}  // namespace moat::cert

// `moat cert verify`: the presented chain against the policy service of the host. Checks, in
// order: policy (a service matches the host), pin (RFC 7469: some certificate of the chain has
// a listed pin), name (RFC 6125: the leaf covers the host), validity, days-left.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <memory>
#include <ostream>

#include <fmt/format.h>

#include "cert/cert.hpp"
#include "cert/internal.hpp"
#include "core/base/exit_code.hpp"
#include "core/policy/loader.hpp"
#include "core/policy/matcher.hpp"

namespace moat::cert {
namespace {

namespace cp = core::policy;
namespace ct = core::tls;

std::string cert_label(const ct::CertificateInfo& info, std::size_t index) {
  std::string who = !info.subject.common_names.empty() ? "CN=" + info.subject.common_names.back()
                                                       : info.subject.dn;
  return fmt::format("certificate {} ({}{})", index + 1, index == 0 ? "leaf, " : "",
                     printable(who));
}

Check check_pins(const cp::Service* service, const std::vector<ct::CertificateInfo>& chain,
                 bool allow_unpinned) {
  Check c{"pin", false, {}};
  if (service == nullptr) {
    c.detail = "no policy service matches the host, so there are no pins to compare";
    return c;
  }
  if (service->pins.empty()) {
    c.ok = allow_unpinned;
    c.detail = allow_unpinned ? fmt::format("service {} lists no pins (accepted: --allow-unpinned)",
                                            service->id)
                              : fmt::format(
                                    "service {} lists no pins; nothing ties it to a key "
                                    "(--allow-unpinned accepts that)",
                                    service->id);
    return c;
  }
  for (std::size_t i = 0; i < chain.size(); ++i) {
    for (const auto& pin : service->pins) {
      if (!chain[i].pin_sha256.empty() && pin.sha256 == chain[i].pin_raw) {
        c.ok = true;
        c.detail = fmt::format("{} has pin {}, listed by service {}", cert_label(chain[i], i),
                               chain[i].pin_sha256, service->id);
        return c;
      }
    }
  }
  std::string presented;
  for (std::size_t i = 0; i < chain.size(); ++i) {
    presented += fmt::format("{}{}", i == 0 ? "" : ", ", chain[i].pin_sha256);
  }
  std::string listed;
  for (const auto& pin : service->pins) listed += (listed.empty() ? "" : ", ") + pin.base64;
  c.detail = fmt::format(
      "no certificate of the presented chain ({}) has a pin listed by service "
      "{} ({})",
      presented, service->id, listed);
  return c;
}

Check check_name(const ct::CertificateInfo& leaf, const std::string& host) {
  Check c{"name", false, {}};
  auto m = ct::match_host(leaf, host);
  if (m.matched) {
    c.ok = true;
    c.detail = fmt::format("the leaf covers {} (by {}{})", host, printable(m.by),
                           m.via_common_name ? ", the subject CN, as there is no DNS SAN" : "");
    return c;
  }
  std::vector<std::string> names = leaf.dns_names;
  names.insert(names.end(), leaf.ip_addresses.begin(), leaf.ip_addresses.end());
  if (leaf.dns_names.empty()) {
    names.insert(names.end(), leaf.subject.common_names.begin(), leaf.subject.common_names.end());
  }
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + printable(n);
  c.detail = fmt::format("the leaf does not cover {} (it names: {})", host,
                         list.empty() ? "nothing" : list);
  return c;
}

Check check_validity(const ct::CertificateInfo& leaf) {
  Check c{"validity", leaf.status == ct::ValidityStatus::kValid, {}};
  switch (leaf.status) {
    case ct::ValidityStatus::kValid:
      c.detail = fmt::format("valid from {} until {}", leaf.not_before, leaf.not_after);
      break;
    case ct::ValidityStatus::kExpired:
      c.detail = leaf.not_after.empty() ? "the validity dates do not decode"
                                        : fmt::format("expired on {}", leaf.not_after);
      break;
    case ct::ValidityStatus::kNotYetValid:
      c.detail = fmt::format("not valid before {}", leaf.not_before);
      break;
  }
  return c;
}

Check check_days(const ct::CertificateInfo& leaf, std::int64_t min_days) {
  Check c{"days-left", leaf.days_left >= min_days, {}};
  c.detail = fmt::format("{} day{} left, at least {} required", leaf.days_left,
                         leaf.days_left == 1 ? "" : "s", min_days);
  return c;
}

}  // namespace

int verify(const VerifyOptions& options, std::ostream& out, std::ostream& err) {
  if (options.policies.empty()) {
    err << "moat: error: verify needs at least one --policy FILE\n";
    return kExitUsage;
  }
  if (options.min_days < 0) {
    err << "moat: error: --min-days must be 0 or more\n";
    return kExitUsage;
  }
  if (options.format == Format::kMarkdown) {
    err << "moat: error: verify prints text or json\n";
    return kExitUsage;
  }

  // Policies first: a broken policy is a usage error whatever the server says.
  std::vector<std::shared_ptr<const cp::Policy>> policies;
  bool broken = false;
  for (const auto& file : options.policies) {
    auto loaded = cp::load_policy_file(file);
    for (const auto& d : loaded.diagnostics) err << cp::format(d) << '\n';
    if (!loaded.policy || cp::has_errors(loaded.diagnostics)) {
      broken = true;
      continue;
    }
    policies.push_back(loaded.policy);
  }
  if (!broken) {
    auto set_diagnostics = cp::check_policy_set(policies);
    for (const auto& d : set_diagnostics) err << cp::format(d) << '\n';
    broken = cp::has_errors(set_diagnostics);
  }
  if (broken) {
    err << "moat: error: the policies above have errors; nothing was verified\n";
    return kExitUsage;
  }

  auto source = load_source(options.target);
  if (!source) {
    print_error(err, source.error());
    return kExitUsage;
  }
  std::string host_arg = !options.host.empty()                ? options.host
                         : !options.target.sni.empty()        ? options.target.sni
                         : source->kind == Source::Kind::kTls ? source->host
                                                              : std::string();
  if (host_arg.empty()) {
    err << "moat: error: verify of a file needs --host NAME (the name the certificate must "
           "cover)\n";
    return kExitUsage;
  }
  auto destination = cp::normalize_host(host_arg);
  if (!destination) {
    err << fmt::format("moat: error: invalid host '{}': {}\n", printable(host_arg),
                       destination.error().message);
    return kExitUsage;
  }
  destination->port = source->kind == Source::Kind::kTls ? source->port : 443;

  auto now = std::chrono::system_clock::now();
  std::vector<ct::CertificateInfo> chain;
  for (const auto& cert : source->chain) chain.push_back(ct::inspect(cert.get(), now));
  const std::string& host = destination->host;

  cp::Matcher matcher(policies);
  cp::Match match = matcher.match(*destination);
  std::vector<Check> checks;
  {
    Check c{"policy", match.service != nullptr, {}};
    if (match.service != nullptr) {
      c.detail =
          fmt::format("{} matches service {} ({}) of policy {} by {}", host, match.service->id,
                      match.service->name, match.policy->metadata.name, match.pattern->text);
      if (match.verdict == cp::Verdict::kPortNotAllowed) {
        c.detail += fmt::format(" (port {} is not listed for it)", destination->port);
      }
    } else {
      c.detail = fmt::format("no service of the {} polic{} matches {}", policies.size(),
                             policies.size() == 1 ? "y" : "ies", host);
    }
    checks.push_back(std::move(c));
  }
  checks.push_back(check_pins(match.service, chain, options.allow_unpinned));
  checks.push_back(check_name(chain.front(), host));
  checks.push_back(check_validity(chain.front()));
  checks.push_back(check_days(chain.front(), options.min_days));

  std::size_t failed = static_cast<std::size_t>(
      std::count_if(checks.begin(), checks.end(), [](const Check& c) { return !c.ok; }));
  std::string where =
      source->kind == Source::Kind::kTls
          ? fmt::format("{} (SNI {})", source->peer, source->sni.empty() ? "none" : source->sni)
          : source->path;

  if (options.format == Format::kJson) {
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const auto& c : checks)
      list.push_back({{"name", c.name}, {"ok", c.ok}, {"detail", c.detail}});
    std::vector<std::string> pins;
    for (const auto& info : chain) pins.push_back(info.pin_sha256);
    nlohmann::ordered_json doc = {
        {"schema", "moat.cert.verify/v1"}, {"host", host},          {"source", where},
        {"presented_pins", pins},          {"passed", failed == 0}, {"checks", list}};
    out << doc.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << '\n';
  } else {
    out << fmt::format("verify {} at {}\n", host, printable(where));
    for (const auto& c : checks) {
      out << fmt::format("{:<5}{:<10} {}\n", c.ok ? "ok" : "FAIL", c.name, c.detail);
    }
    if (failed == 0) {
      out << fmt::format("result: ok, all {} checks passed\n", checks.size());
    } else {
      std::string names;
      for (const auto& c : checks) {
        if (!c.ok) names += (names.empty() ? "" : ", ") + c.name;
      }
      out << fmt::format("result: FAIL, {} of {} checks failed: {}\n", failed, checks.size(),
                         names);
    }
  }
  return failed == 0 ? kExitOk : kExitFailed;
}

}  // namespace moat::cert

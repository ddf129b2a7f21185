#include "policy/policy_mode.hpp"

#include <algorithm>
#include <ostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/base/exit_code.hpp"
#include "core/policy/policy_set.hpp"

namespace moat::policy {

namespace cp = moat::core::policy;

namespace {

// "host_not_in_policy" -> "host not in policy": the words egress puts in its 403 reason.
std::string reason_text(cp::Verdict v) {
  std::string s = cp::to_string(v);
  std::replace(s.begin(), s.end(), '_', ' ');
  return s;
}

void print_diagnostics(const std::vector<cp::Diagnostic>& diagnostics, std::ostream& err) {
  for (const auto& d : diagnostics) err << cp::format(d) << '\n';
}

std::size_t count_errors(const std::vector<cp::Diagnostic>& diagnostics, bool strict) {
  std::size_t n = 0;
  for (const auto& d : diagnostics) {
    if (d.severity == cp::Severity::kError || strict) ++n;
  }
  return n;
}

}  // namespace

int run_check(const CheckOptions& options, std::ostream& out, std::ostream& err) {
  cp::PolicySetLoad load = cp::load_policy_set(options.files);
  std::vector<cp::Diagnostic> diagnostics = std::move(load.diagnostics);

  if (!options.previous.empty()) {
    cp::LoadResult previous = cp::load_policy_file(options.previous);
    if (!previous.policy) {
      for (auto& d : previous.diagnostics) d.message = "(--previous) " + d.message;
      print_diagnostics(diagnostics, err);
      print_diagnostics(previous.diagnostics, err);
      return previous.unreadable ? kExitUsage : kExitFailed;
    }
    if (load.set) {
      bool found = false;
      for (const auto& p : load.set->policies) {
        if (p->metadata.name != previous.policy->metadata.name) continue;
        found = true;
        auto r = cp::check_revision(*previous.policy, *p);
        diagnostics.insert(diagnostics.end(), r.begin(), r.end());
      }
      if (!found) {
        diagnostics.push_back({cp::Severity::kError, {options.previous, 0, 0},
                               fmt::format("--previous is policy '{}', which none of the checked "
                                           "files is",
                                           previous.policy->metadata.name),
                               {}});
      }
    }
  }

  print_diagnostics(diagnostics, err);
  std::size_t errors = count_errors(diagnostics, options.strict);
  std::size_t warnings = diagnostics.size() - count_errors(diagnostics, false);
  if (load.set) {
    for (const auto& p : load.set->policies) {
      std::size_t hosts = 0;
      for (const auto& s : p->services) hosts += s.hosts.size();
      out << fmt::format("{}: policy '{}' revision {}: {} services, {} host patterns, {} flows\n",
                         p->file, p->metadata.name, p->metadata.revision, p->services.size(),
                         hosts, p->flows.size());
    }
  }
  out << fmt::format("{} error{}, {} warning{}\n", count_errors(diagnostics, false),
                     count_errors(diagnostics, false) == 1 ? "" : "s", warnings,
                     warnings == 1 ? "" : "s");
  if (load.unreadable) return kExitUsage;
  return errors > 0 || !load.set ? kExitFailed : kExitOk;
}

int run_match(const MatchOptions& options, std::ostream& out, std::ostream& err) {
  cp::PolicySetLoad load = cp::load_policy_set(options.files);
  if (!load.set) {
    print_diagnostics(load.diagnostics, err);
    err << "moat: error: the policies above have errors; nothing was matched\n";
    return kExitUsage;
  }
  auto destination = cp::parse_destination(options.destination, 443);
  if (!destination) {
    err << fmt::format("moat: error: invalid destination '{}': {}\n", options.destination,
                       destination.error().message);
    if (!destination.error().hint.empty()) err << "  hint: " << destination.error().hint << '\n';
    return kExitUsage;
  }
  cp::Match m = load.set->matcher.match(*destination);
  std::string target = destination->kind == cp::Destination::Kind::kAddress &&
                               destination->address.family ==
                                   core::net::IpAddress::Family::kV6
                           ? fmt::format("[{}]:{}", destination->host, destination->port)
                           : fmt::format("{}:{}", destination->host, destination->port);
  bool allowed = m.verdict == cp::Verdict::kAllowed;

  if (options.json) {
    nlohmann::ordered_json j;
    j["destination"] = target;
    j["host"] = destination->host;
    j["port"] = destination->port;
    j["decision"] = allowed ? "allow" : "deny";
    j["reason"] = cp::to_string(m.verdict);
    if (m.service != nullptr) {
      j["policy"] = m.policy->metadata.name;
      j["service"] = m.service->id;
      j["service_name"] = m.service->name;
      j["pattern"] = m.pattern->text;
      j["ports"] = m.service->ports;
      j["purpose"] = m.service->purpose;
      j["flow"] = m.service->flow;
      j["required"] = m.service->required;
      std::vector<std::string> pins;
      for (const auto& p : m.service->pins) pins.push_back(p.base64);
      j["pins"] = pins;
    }
    out << j.dump(2) << '\n';
    return allowed ? kExitOk : kExitFailed;
  }

  if (allowed) {
    out << fmt::format("allow {}\n", target);
  } else {
    out << fmt::format("deny {}: {}\n", target, reason_text(m.verdict));
  }
  if (m.service != nullptr) {
    std::string ports;
    for (auto p : m.service->ports) ports += (ports.empty() ? "" : ", ") + std::to_string(p);
    out << fmt::format("  service: {} ({}) in policy {} revision {}\n", m.service->id,
                       m.service->name, m.policy->metadata.name, m.policy->metadata.revision);
    out << fmt::format("  pattern: {}\n", m.pattern->text);
    out << fmt::format("  ports:   {}\n", ports);
    out << fmt::format("  purpose: {}\n", m.service->purpose);
    if (!m.service->flow.empty()) out << fmt::format("  flow:    {}\n", m.service->flow);
  } else {
    std::size_t services = 0;
    for (const auto& p : load.set->policies) services += p->services.size();
    out << fmt::format("  no pattern of the {} services in {} polic{} matches this host\n",
                       services, load.set->policies.size(),
                       load.set->policies.size() == 1 ? "y" : "ies");
  }
  return allowed ? kExitOk : kExitFailed;
}

}  // namespace moat::policy

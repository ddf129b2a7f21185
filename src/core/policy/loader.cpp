// Policy YAML loading: core/config reads the YAML safely; PolicyReader checks the policy schema
// and reports every problem with file:line:column instead of stopping at the first one.
#include "core/policy/loader.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "core/base/encoding.hpp"
#include "core/config/yaml_reader.hpp"

namespace moat::core::policy {
namespace {

using config::is_date;
using config::is_identifier;

constexpr std::string_view kSchemaId = "policy/v1";

// Walks one document against the schema, collecting diagnostics.
class PolicyReader : public config::YamlReader {
 public:
  using YamlReader::YamlReader;

  std::optional<Pin> pin(const YAML::Node& node, std::string_view what) {
    if (!node.IsScalar()) {
      error(at(node), fmt::format("{} must be a base64 string", what));
      return std::nullopt;
    }
    std::string text = node.Scalar();
    // The page writes "SHA256: <hex>" for fingerprints; pins are plain base64 (RFC 7469).
    auto bytes = base64_decode(text);
    if (!bytes || bytes->size() != 32) {
      error(at(node), fmt::format("{} '{}' is not the base64 of 32 bytes (a SHA-256 SPKI pin)",
                                  what, text),
            "compute it with: moat cert pin <certificate or host:port>");
      return std::nullopt;
    }
    Pin p;
    p.base64 = text;
    std::copy(bytes->begin(), bytes->end(), p.sha256.begin());
    return p;
  }

  void metadata(const YAML::Node& node, Metadata& out) {
    if (!expect_map(node, "metadata")) return;
    check_keys(node,
               {"publisher", "name", "title", "classification", "url", "contact", "revision",
                "updated", "changelog"},
               "metadata");
    out.publisher = string(node, "publisher", "metadata", true);
    out.name = string(node, "name", "metadata", true);
    if (!out.name.empty() && !is_identifier(out.name)) {
      error(at(node["name"]),
            fmt::format("metadata name '{}' must be lowercase letters, digits, '-', '_' or '.'",
                        out.name),
            "it names the policy in logs and metrics, e.g. 'salestim'");
    }
    out.title = string(node, "title", "metadata", false);
    out.classification = string(node, "classification", "metadata", false);
    if (!out.classification.empty()) {
      static constexpr std::array<std::string_view, 4> kLevels = {"public", "internal",
                                                                   "confidential", "restricted"};
      if (std::find(kLevels.begin(), kLevels.end(), out.classification) == kLevels.end()) {
        error(at(node["classification"]),
              fmt::format("unknown classification '{}'", out.classification),
              "use public, internal, confidential or restricted");
      }
    }
    out.url = string(node, "url", "metadata", false);
    out.contact = string(node, "contact", "metadata", false);
    out.updated = string(node, "updated", "metadata", false);
    if (!out.updated.empty() && !is_date(out.updated)) {
      error(at(node["updated"]), fmt::format("'{}' is not a date", out.updated),
            "write dates as YYYY-MM-DD");
    }
    YAML::Node revision = node["revision"];
    if (!revision.IsDefined() || revision.IsNull()) {
      error(at(node), "metadata is missing required key 'revision'",
            "a whole number that goes up with every published change");
    } else if (auto r = number(revision, "revision", UINT64_MAX / 2)) {
      out.revision = *r;
      out.revision_where = at(revision);
      if (*r == 0) error(at(revision), "revision must be 1 or more");
    }
    YAML::Node changelog = node["changelog"];
    if (!changelog.IsDefined() || changelog.IsNull()) return;
    if (!changelog.IsSequence()) {
      error(at(changelog), "changelog must be a list of {revision, date, changes}");
      return;
    }
    std::set<std::uint64_t> seen;
    for (const auto& entry_node : changelog) {
      if (!expect_map(entry_node, "a changelog entry")) continue;
      check_keys(entry_node, {"revision", "date", "changes"}, "changelog entry");
      ChangelogEntry entry;
      entry.where = at(entry_node);
      YAML::Node r = entry_node["revision"];
      if (!r.IsDefined()) {
        error(at(entry_node), "changelog entry is missing required key 'revision'");
      } else if (auto v = number(r, "changelog revision", UINT64_MAX / 2)) {
        entry.revision = *v;
        if (!seen.insert(*v).second) {
          error(at(r), fmt::format("changelog lists revision {} twice", *v));
        }
        if (out.revision != 0 && *v > out.revision) {
          error(at(r), fmt::format("changelog revision {} is newer than the policy revision {}",
                                   *v, out.revision),
                "raise metadata.revision");
        }
      }
      entry.date = string(entry_node, "date", "changelog entry", true);
      if (!entry.date.empty() && !is_date(entry.date)) {
        error(at(entry_node["date"]), fmt::format("'{}' is not a date", entry.date),
              "write dates as YYYY-MM-DD");
      }
      entry.changes = string_list(entry_node, "changes", "changelog entry");
      if (entry.changes.empty()) {
        error(at(entry_node), "changelog entry must say what changed in 'changes'");
      }
      out.changelog.push_back(std::move(entry));
    }
    if (out.revision != 0 && !out.changelog.empty() && !seen.count(out.revision)) {
      warning(out.revision_where,
              fmt::format("revision {} has no changelog entry", out.revision),
              "customers read the changelog to see what changed since they last looked");
    }
  }

  void flows(const YAML::Node& node, std::vector<Flow>& out) {
    if (!node.IsSequence()) {
      error(at(node), "flows must be a list");
      return;
    }
    std::map<std::string, Location> ids;
    for (const auto& item : node) {
      if (!expect_map(item, "a flow")) continue;
      check_keys(item, {"id", "name", "description", "color", "customer_network", "destinations"},
                 "flow");
      Flow flow;
      flow.where = at(item);
      flow.id = string(item, "id", "flow", true);
      flow.name = string(item, "name", "flow", true);
      flow.description = string(item, "description", "flow", false);
      flow.color = string(item, "color", "flow", false);
      flow.customer_network = boolean(item, "customer_network", "flow", false);
      if (YAML::Node d = item["destinations"]; d.IsDefined() && !d.IsNull()) {
        if (!d.IsSequence()) {
          error(at(d), "'destinations' in a flow must be a list of {hosts, purpose}");
        } else {
          for (const auto& dest : d) {
            if (!expect_map(dest, "a flow destination")) continue;
            check_keys(dest, {"hosts", "purpose"}, "flow destination");
            FlowDestination fd;
            fd.purpose = string(dest, "purpose", "flow destination", true);
            host_list(dest, "flow destination", fd.hosts, fd.host_locations);
            flow.destinations.push_back(std::move(fd));
          }
        }
      }
      if (!flow.id.empty()) {
        if (!is_identifier(flow.id)) {
          error(at(item["id"]), fmt::format("flow id '{}' must be lowercase letters, digits, "
                                            "'-', '_' or '.'", flow.id));
        }
        auto [it, inserted] = ids.emplace(flow.id, at(item["id"]));
        if (!inserted) {
          error(at(item["id"]), fmt::format("duplicate flow id '{}'", flow.id),
                fmt::format("first defined at line {}", it->second.line));
        }
      }
      out.push_back(std::move(flow));
    }
  }

  void services(const YAML::Node& node, const std::vector<Flow>& flows, std::vector<Service>& out) {
    if (!node.IsSequence()) {
      error(at(node), "services must be a list");
      return;
    }
    std::map<std::string, Location> ids;
    for (const auto& item : node) {
      if (!expect_map(item, "a service")) continue;
      check_keys(item,
                 {"id", "name", "flow", "hosts", "ports", "purpose", "more_info", "required",
                  "pins"},
                 "service");
      Service service;
      service.where = at(item);
      service.id = string(item, "id", "service", true);
      std::string what = service.id.empty() ? "service" : fmt::format("service '{}'", service.id);
      if (!service.id.empty()) {
        if (!is_identifier(service.id)) {
          error(at(item["id"]),
                fmt::format("service id '{}' must be lowercase letters, digits, '-', '_' or '.'",
                            service.id));
        }
        auto [it, inserted] = ids.emplace(service.id, at(item["id"]));
        if (!inserted) {
          error(at(item["id"]), fmt::format("duplicate service id '{}'", service.id),
                fmt::format("first defined at line {}", it->second.line));
        }
      }
      service.name = string(item, "name", what, true);
      service.purpose = string(item, "purpose", what, true);
      service.more_info = string(item, "more_info", what, false);
      service.required = boolean(item, "required", what, true);
      service.flow = string(item, "flow", what, false);
      if (!service.flow.empty() && !flows.empty() &&
          std::none_of(flows.begin(), flows.end(),
                       [&](const Flow& f) { return f.id == service.flow; })) {
        std::string known;
        for (const auto& f : flows) known += (known.empty() ? "" : ", ") + f.id;
        error(at(item["flow"]), fmt::format("{} names unknown flow '{}'", what, service.flow),
              fmt::format("flows defined: {}", known));
      }
      host_list(item, what, service.hosts, service.host_locations);
      ports(item, what, service);
      YAML::Node pins = item["pins"];
      if (pins.IsDefined() && !pins.IsNull()) {
        if (!pins.IsSequence()) {
          error(at(pins), fmt::format("'pins' in {} must be a list", what));
        } else {
          for (const auto& p : pins) {
            if (auto parsed = pin(p, "pin")) service.pins.push_back(std::move(*parsed));
          }
        }
      }
      out.push_back(std::move(service));
    }
  }

  void host_list(const YAML::Node& item, const std::string& what, std::vector<HostPattern>& out,
                 std::vector<Location>& locations) {
    YAML::Node hosts = item["hosts"];
    if (!hosts.IsDefined() || hosts.IsNull()) {
      error(at(item), fmt::format("{} is missing required key 'hosts'", what),
            "list the host names it needs, e.g. hosts: [\"*.example.com\", api.example.net]");
      return;
    }
    if (!hosts.IsSequence() || hosts.size() == 0) {
      error(at(hosts), fmt::format("'hosts' in {} must be a non-empty list", what));
      return;
    }
    std::set<std::string> seen;
    for (const auto& h : hosts) {
      if (!h.IsScalar()) {
        error(at(h), "a host pattern must be a single value");
        continue;
      }
      auto parsed = parse_host_pattern(h.Scalar());
      if (!parsed) {
        const Error& e = parsed.error();
        std::size_t offset = e.offset == Error::kNoOffset ? 0 : e.offset;
        error(at_char(h, offset), fmt::format("invalid host pattern '{}': {}", h.Scalar(), e.message),
              e.hint);
        continue;
      }
      if (!seen.insert(parsed->text).second) {
        warning(at(h), fmt::format("{} lists host '{}' twice", what, parsed->text));
        continue;
      }
      out.push_back(std::move(parsed.value()));
      locations.push_back(at(h));
    }
  }

  void ports(const YAML::Node& item, const std::string& what, Service& service) {
    YAML::Node ports = item["ports"];
    if (!ports.IsDefined() || ports.IsNull()) {
      service.ports = {443};  // "All the traffic ... uses HTTPS protocol on port 443."
      return;
    }
    if (!ports.IsSequence() || ports.size() == 0) {
      error(at(ports), fmt::format("'ports' in {} must be a non-empty list, e.g. [443]", what));
      return;
    }
    for (const auto& p : ports) {
      if (!p.IsScalar() || p.Tag() == "!" || p.Scalar().empty() ||
          !std::all_of(p.Scalar().begin(), p.Scalar().end(),
                       [](char c) { return c >= '0' && c <= '9'; })) {
        error(at(p), fmt::format("port '{}' must be a number from 1 to 65535",
                                 p.IsScalar() ? p.Scalar() : std::string("...")));
        continue;
      }
      unsigned long v = p.Scalar().size() > 6 ? 70000 : std::stoul(p.Scalar());
      if (v < 1 || v > 65535) {
        error(at(p), fmt::format("port {} is outside 1..65535", p.Scalar()));
        continue;
      }
      auto port = static_cast<std::uint16_t>(v);
      if (std::find(service.ports.begin(), service.ports.end(), port) != service.ports.end()) {
        warning(at(p), fmt::format("{} lists port {} twice", what, port));
        continue;
      }
      service.ports.push_back(port);
    }
  }

  void certificates(const YAML::Node& node, std::vector<CertificateRecord>& out) {
    if (!node.IsSequence()) {
      error(at(node), "certificates must be a list");
      return;
    }
    for (const auto& item : node) {
      if (!expect_map(item, "a certificate")) continue;
      check_keys(item,
                 {"id", "domain", "fingerprint_sha256", "pin", "common_names",
                  "alternative_names", "serial", "key", "issuer", "aia", "signature_algorithm"},
                 "certificate");
      CertificateRecord c;
      c.where = at(item);
      c.id = string(item, "id", "certificate", true);
      c.domain = string(item, "domain", "certificate", true);
      std::string fingerprint = string(item, "fingerprint_sha256", "certificate", false);
      if (!fingerprint.empty()) {
        auto bytes = hex_decode(fingerprint);
        if (!bytes || bytes->size() != 32) {
          error(at(item["fingerprint_sha256"]),
                "fingerprint_sha256 must be 64 hex digits (the SHA-256 of the certificate)",
                "compute it with: moat cert show <certificate>");
        } else {
          c.fingerprint_sha256 = to_hex(*bytes);
        }
      }
      YAML::Node pin_node = item["pin"];
      if (!pin_node.IsDefined()) {
        error(at(item), "certificate is missing required key 'pin'");
      } else if (auto p = pin(pin_node, "certificate pin")) {
        c.pin = *p;
      }
      c.common_names = string_list(item, "common_names", "certificate");
      c.alternative_names = string_list(item, "alternative_names", "certificate");
      c.serial = string(item, "serial", "certificate", false);
      if (!c.serial.empty()) {
        auto bytes = hex_decode(c.serial);
        if (!bytes) {
          error(at(item["serial"]), "serial must be hex digits");
        } else {
          c.serial = to_hex(*bytes);
        }
      }
      c.key = string(item, "key", "certificate", false);
      c.issuer = string(item, "issuer", "certificate", false);
      c.aia = string(item, "aia", "certificate", false);
      c.signature_algorithm = string(item, "signature_algorithm", "certificate", false);
      out.push_back(std::move(c));
    }
  }

  void tls(const YAML::Node& node, TlsSettings& out) {
    if (!expect_map(node, "tls")) return;
    check_keys(node, {"min_version", "hsts"}, "tls");
    YAML::Node version = node["min_version"];
    if (version.IsDefined() && !version.IsNull()) {
      std::string v = version.IsScalar() ? version.Scalar() : "";
      if (v == "1.2" || v == "1.3") {
        out.min_version = v;
      } else if (v == "1.0" || v == "1.1") {
        error(at(version), fmt::format("TLS {} is not allowed as a minimum", v),
              "TLS 1.0 and 1.1 are deprecated (RFC 8996); use \"1.2\" or \"1.3\"");
      } else {
        error(at(version), fmt::format("unknown TLS version '{}'", v), "use \"1.2\" or \"1.3\"");
      }
    }
    YAML::Node hsts = node["hsts"];
    if (!hsts.IsDefined() || hsts.IsNull()) return;
    if (!expect_map(hsts, "tls.hsts")) return;
    check_keys(hsts, {"max_age", "include_subdomains", "preload"}, "tls.hsts");
    if (YAML::Node age = hsts["max_age"]; age.IsDefined()) {
      if (auto v = number(age, "hsts max_age", 10ULL * 365 * 86400)) {
        out.hsts.max_age = *v;
        if (*v < 15768000) {
          warning(at(age), fmt::format("HSTS max_age {} is under six months", *v),
                  "SSL Labs grants A+ only from 15768000 seconds; Mozilla recommends 63072000");
        }
      }
    }
    out.hsts.include_subdomains = boolean(hsts, "include_subdomains", "tls.hsts", true);
    out.hsts.preload = boolean(hsts, "preload", "tls.hsts", false);
  }

  void ddos(const YAML::Node& node, Ddos& out) {
    if (!expect_map(node, "ddos")) return;
    check_keys(node, {"provider", "description", "url"}, "ddos");
    out.provider = string(node, "provider", "ddos", false);
    out.description = string(node, "description", "ddos", false);
    out.url = string(node, "url", "ddos", false);
  }

  void document(const YAML::Node& root, Policy& policy) {
    if (root.IsNull() || !root.IsDefined()) {
      error({file(), 1, 1}, "the policy is empty",
            "a policy starts with 'moat: policy/v1' followed by metadata and services");
      return;
    }
    if (!root.IsMap()) {
      error(at(root), "a policy must be a YAML mapping",
            "a policy starts with 'moat: policy/v1' followed by metadata and services");
      return;
    }
    YAML::Node schema = root["moat"];
    if (schema.IsDefined() && schema.IsScalar() && schema.Scalar() == "gateway/v1") {
      error(at(schema), "this is a gateway config, not a policy",
            fmt::format("check it with: moat egress --config {} --check", file()));
      return;
    }
    check_keys(root, {"moat", "metadata", "flows", "services", "certificates", "tls", "ddos"},
               "the policy");
    if (!schema.IsDefined()) {
      error({file(), 1, 1}, "missing 'moat: policy/v1' (the schema this file follows)");
    } else if (!schema.IsScalar() || schema.Scalar() != kSchemaId) {
      error(at(schema), fmt::format("unsupported schema '{}'",
                                    schema.IsScalar() ? schema.Scalar() : std::string("...")),
            "this moat reads 'moat: policy/v1'");
    }
    if (YAML::Node m = root["metadata"]; m.IsDefined()) {
      metadata(m, policy.metadata);
    } else {
      error({file(), 1, 1}, "missing 'metadata' (publisher, name, revision)");
    }
    if (YAML::Node f = root["flows"]; f.IsDefined() && !f.IsNull()) flows(f, policy.flows);
    if (YAML::Node s = root["services"]; s.IsDefined() && !s.IsNull()) {
      services(s, policy.flows, policy.services);
    } else {
      error({file(), 1, 1}, "missing 'services' (the hosts this policy allows)");
    }
    if (YAML::Node c = root["certificates"]; c.IsDefined() && !c.IsNull()) {
      certificates(c, policy.certificates);
    }
    if (YAML::Node t = root["tls"]; t.IsDefined() && !t.IsNull()) tls(t, policy.tls);
    if (YAML::Node d = root["ddos"]; d.IsDefined() && !d.IsNull()) ddos(d, policy.ddos);
  }

};

bool sort_by_position(const Diagnostic& a, const Diagnostic& b) {
  if (a.where.line != b.where.line) return a.where.line < b.where.line;
  return a.where.column < b.where.column;
}

LoadResult load_policy_document(config::YamlDocument doc, const std::string& name) {
  LoadResult result;
  result.unreadable = doc.unreadable;
  if (!doc.ok()) {
    result.diagnostics = std::move(doc.diagnostics);
    return result;
  }
  auto policy = std::make_shared<Policy>();
  policy->file = name;
  PolicyReader reader(name);
  config::walk_document(reader, doc.root, *policy);
  result.diagnostics = reader.take_diagnostics();
  if (!has_errors(result.diagnostics)) result.policy = std::move(policy);
  return result;
}

}  // namespace

LoadResult load_policy_text(std::string_view text, const std::string& name) {
  return load_policy_document(config::read_yaml_text(text, name), name);
}

LoadResult load_policy_file(const std::string& path) {
  return load_policy_document(config::read_yaml_file(path, kMaxPolicyBytes), path);
}

std::vector<Diagnostic> check_policy_set(std::span<const std::shared_ptr<const Policy>> policies) {
  std::vector<Diagnostic> out;
  std::map<std::string, const Policy*> names;
  for (const auto& p : policies) {
    auto [it, inserted] = names.emplace(p->metadata.name, p.get());
    if (!inserted) {
      out.push_back({Severity::kError, Location{p->file, 0, 0},
                     fmt::format("policy name '{}' is also used by {}", p->metadata.name,
                                 it->second->file),
                     "each loaded policy needs its own metadata.name"});
    }
  }

  // Overlaps: for each name pattern, the wildcards above it (and identical patterns).
  struct Entry {
    const Policy* policy;
    const Service* service;
    const Location* where;
  };
  std::unordered_map<std::string, std::vector<Entry>> wildcards;  // parent name -> entries
  std::unordered_map<std::string, std::vector<Entry>> exacts;
  for (const auto& p : policies) {
    for (const auto& s : p->services) {
      for (std::size_t i = 0; i < s.hosts.size(); ++i) {
        const HostPattern& h = s.hosts[i];
        Entry e{p.get(), &s, &s.host_locations[i]};
        if (h.kind == HostPattern::Kind::kWildcard) wildcards[h.name].push_back(e);
        if (h.kind == HostPattern::Kind::kExact) exacts[h.name].push_back(e);
      }
    }
  }
  auto describe = [](const Entry& e, const Policy* from) {
    return e.policy == from ? fmt::format("service '{}'", e.service->id)
                            : fmt::format("service '{}' of policy '{}'", e.service->id,
                                          e.policy->metadata.name);
  };
  auto report_same = [&](const std::unordered_map<std::string, std::vector<Entry>>& map,
                         const char* prefix) {
    for (const auto& [name, entries] : map) {
      for (std::size_t i = 1; i < entries.size(); ++i) {
        if (entries[i].service == entries[0].service) continue;
        out.push_back({Severity::kWarning, *entries[i].where,
                       fmt::format("host '{}{}' is also listed by {}: for ports both list, the "
                                   "first one is the rule that matches",
                                   prefix, name, describe(entries[0], entries[i].policy)),
                       {}});
      }
    }
  };
  report_same(exacts, "");
  report_same(wildcards, "*.");
  auto report_covered = [&](const std::string& name, const Entry& e, const char* what) {
    // Walk the parents of `name`: "a.b.c" -> "b.c" -> "c".
    for (std::size_t dot = name.find('.'); dot != std::string::npos;
         dot = name.find('.', dot + 1)) {
      auto it = wildcards.find(name.substr(dot + 1));
      if (it == wildcards.end()) continue;
      for (const Entry& w : it->second) {
        if (w.service == e.service) {
          out.push_back({Severity::kWarning, *e.where,
                         fmt::format("{} '{}' is already covered by '*.{}' in the same service",
                                     what, name, it->first),
                         "remove the narrower entry"});
        } else {
          out.push_back({Severity::kWarning, *e.where,
                         fmt::format("{} '{}' overlaps '*.{}' of {}: the more specific pattern "
                                     "decides for this name",
                                     what, name, it->first, describe(w, e.policy)),
                         {}});
        }
      }
    }
  };
  for (const auto& [name, entries] : exacts) {
    for (const Entry& e : entries) report_covered(name, e, "host");
  }
  for (const auto& [name, entries] : wildcards) {
    for (const Entry& e : entries) report_covered(name, e, "pattern *.");
  }
  std::stable_sort(out.begin(), out.end(), [](const Diagnostic& a, const Diagnostic& b) {
    if (a.where.file != b.where.file) return a.where.file < b.where.file;
    return sort_by_position(a, b);
  });
  return out;
}

std::vector<Diagnostic> check_revision(const Policy& previous, const Policy& current) {
  std::vector<Diagnostic> out;
  Location where = current.metadata.revision_where;
  if (where.file.empty()) where.file = current.file;
  if (previous.metadata.name != current.metadata.name) {
    out.push_back({Severity::kError, where,
                   fmt::format("--previous is policy '{}', not '{}'", previous.metadata.name,
                               current.metadata.name),
                   {}});
    return out;
  }
  if (current.metadata.revision < previous.metadata.revision) {
    out.push_back({Severity::kError, where,
                   fmt::format("revision {} goes backwards from the previous revision {}",
                               current.metadata.revision, previous.metadata.revision),
                   fmt::format("publish it as revision {}", previous.metadata.revision + 1)});
  } else if (current.metadata.revision == previous.metadata.revision) {
    out.push_back({Severity::kWarning, where,
                   fmt::format("revision {} is the same as the previous one",
                               current.metadata.revision),
                   "raise the revision whenever the published policy changes"});
  }
  return out;
}

}  // namespace moat::core::policy

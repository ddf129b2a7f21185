#include "egress/config.hpp"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "core/config/gateway.hpp"
#include "core/config/yaml_reader.hpp"
#include "core/policy/host_pattern.hpp"

namespace moat::egress {

namespace cc = core::config;
namespace cp = core::policy;
namespace net = core::net;

const Group* EgressConfig::group_for(const net::IpAddress& client) const {
  for (const auto& g : groups) {
    for (const auto& n : g.sources) {
      if (n.contains(client)) return &g;
    }
  }
  return nullptr;
}

const Group* EgressConfig::group_named(const std::string& name) const {
  for (const auto& g : groups) {
    if (g.name == name) return &g;
  }
  return nullptr;
}

Mode EgressConfig::mode_for(const std::string& policy, const std::string& service) const {
  if (!service_modes.empty()) {
    auto it = service_modes.find(policy + "/" + service);
    if (it != service_modes.end()) return it->second;
  }
  return mode;
}

namespace {

class EgressReader : public cc::YamlReader {
 public:
  EgressReader(std::string file, std::string base_dir)
      : YamlReader(std::move(file)), base_dir_(std::move(base_dir)) {}

  void document(const YAML::Node& root, EgressConfig& out) {
    cc::GatewaySettings settings;
    YAML::Node e = cc::read_gateway_root(*this, root, "egress", settings);
    out.workers = settings.workers;
    out.admin_listen = settings.admin_listen;
    if (!e.IsDefined()) return;
    egress(e, out);
  }

 private:
  void egress(const YAML::Node& e, EgressConfig& out) {
    check_keys(e,
               {"listen", "transparent", "transparent_port", "policies", "mode", "services",
                "groups", "users", "auth_realm", "allow_private", "checks", "dns", "resolve",
                "limits", "audit_log"},
               "egress");
    listeners(e, out);
    out.policy_files = string_list(e, "policies", "egress");
    if (out.policy_files.empty()) {
      error(at(e), "egress needs 'policies': the policy files it enforces",
            "e.g. policies: [salestim.yaml] (paths relative to this file)");
    }
    for (auto& p : out.policy_files) {
      if (!p.empty() && p.front() != '/') p = (std::filesystem::path(base_dir_) / p).string();
    }
    if (YAML::Node m = e["mode"]; present(m)) out.mode = mode(m);
    if (YAML::Node s = e["services"]; present(s) && expect_list(s, "egress.services")) {
      for (const auto& item : s) {
        if (!expect_map(item, "a service override")) continue;
        check_keys(item, {"id", "mode"}, "service override");
        std::string id = string(item, "id", "service override", true);
        if (!id.empty() && id.find('/') == std::string::npos) {
          error(at(item["id"]), fmt::format("service '{}' must be written policy/service", id),
                "e.g. salestim/intercom");
        }
        if (YAML::Node m = item["mode"]; present(m)) out.service_modes[id] = mode(m);
        service_refs_.push_back({id, at(item["id"])});
      }
    }
    if (YAML::Node g = e["groups"]; present(g) && expect_list(g, "egress.groups")) groups(g, out);
    if (YAML::Node u = e["users"]; present(u) && expect_list(u, "egress.users")) users(u, out);
    if (YAML::Node r = e["auth_realm"]; present(r)) {
      out.auth_realm = string(e, "auth_realm", "egress", true);
      if (out.auth_realm.find_first_of("\"\\\r\n") != std::string::npos) {
        error(at(r), "auth_realm must not contain quotes, backslashes or line breaks");
      }
    }
    if (YAML::Node a = e["allow_private"]; present(a)) {
      for (const auto& text : string_list(e, "allow_private", "egress")) {
        auto n = net::parse_network(text);
        if (!n) {
          error(at(a), fmt::format("allow_private: '{}' is not an address or CIDR", text),
                "e.g. 10.20.0.0/16 or 127.0.0.1");
          continue;
        }
        out.allow_private.push_back(*n);
      }
    }
    if (YAML::Node c = e["checks"]; present(c) && expect_map(c, "egress.checks")) checks(c, out);
    if (YAML::Node d = e["dns"]; present(d) && expect_map(d, "egress.dns")) dns(d, out);
    if (YAML::Node r = e["resolve"]; present(r) && expect_map(r, "egress.resolve")) resolve(r, out);
    if (YAML::Node l = e["limits"]; present(l) && expect_map(l, "egress.limits")) limits(l, out);
    if (YAML::Node t = e["transparent_port"]; present(t)) {
      if (auto v = number(t, "transparent_port", 65535); v && *v > 0) {
        out.transparent_port = static_cast<std::uint16_t>(*v);
      }
    }
    if (YAML::Node a = e["audit_log"]; present(a)) {
      out.audit_log = string(e, "audit_log", "egress", true);
      if (out.audit_log != "-" && !out.audit_log.empty() && out.audit_log.front() != '/') {
        out.audit_log = (std::filesystem::path(base_dir_) / out.audit_log).string();
      }
    }
  }

  void listeners(const YAML::Node& e, EgressConfig& out) {
    for (const auto& address : string_list(e, "listen", "egress")) {
      out.listeners.push_back({address, false});
    }
    for (const auto& address : string_list(e, "transparent", "egress")) {
      out.listeners.push_back({address, true});
    }
    if (out.listeners.empty()) out.listeners.push_back({"127.0.0.1:3128", false});
  }

  Mode mode(const YAML::Node& node) {
    std::string s = node.IsScalar() ? node.Scalar() : "";
    if (s == "enforce") return Mode::kEnforce;
    if (s == "report") return Mode::kReport;
    error(at(node), fmt::format("unknown mode '{}'", s),
          "enforce (deny what the policy does not allow) or report (allow and log)");
    return Mode::kEnforce;
  }

  void groups(const YAML::Node& list, EgressConfig& out) {
    for (const auto& item : list) {
      if (!expect_map(item, "a group")) continue;
      check_keys(item, {"name", "sources", "policies"}, "group");
      Group g;
      g.name = string(item, "name", "group", true);
      if (!g.name.empty() && !cc::is_identifier(g.name)) {
        error(at(item["name"]), fmt::format("group name '{}' must be lowercase letters, digits, "
                                            "'-', '_' or '.'", g.name));
      }
      if (out.group_named(g.name) != nullptr) {
        error(at(item["name"]), fmt::format("duplicate group '{}'", g.name));
      }
      for (const auto& text : string_list(item, "sources", "group")) {
        auto n = net::parse_network(text);
        if (!n) {
          error(at(item["sources"]), fmt::format("group sources: '{}' is not an address or CIDR",
                                                 text));
          continue;
        }
        g.sources.push_back(*n);
      }
      g.policies = string_list(item, "policies", "group");
      group_refs_.push_back(at(item));
      out.groups.push_back(std::move(g));
    }
  }

  void users(const YAML::Node& list, EgressConfig& out) {
    for (const auto& item : list) {
      if (!expect_map(item, "a user")) continue;
      check_keys(item, {"name", "password_sha256", "group"}, "user");
      User u;
      u.name = string(item, "name", "user", true);
      u.password_sha256 = string(item, "password_sha256", "user", true);
      std::transform(u.password_sha256.begin(), u.password_sha256.end(),
                     u.password_sha256.begin(), [](unsigned char c) { return std::tolower(c); });
      if (!u.password_sha256.empty() &&
          (u.password_sha256.size() != 64 ||
           u.password_sha256.find_first_not_of("0123456789abcdef") != std::string::npos)) {
        error(at(item["password_sha256"]), "password_sha256 must be 64 hex digits",
              "compute it with: printf %s 'the password' | sha256sum");
      }
      if (u.name.find(':') != std::string::npos) {
        error(at(item["name"]), "a user name must not contain ':' (Basic authentication)");
      }
      u.group = string(item, "group", "user", true);
      if (!u.group.empty() && out.group_named(u.group) == nullptr) {
        error(at(item["group"]), fmt::format("user '{}' names unknown group '{}'", u.name, u.group));
      }
      out.users.push_back(std::move(u));
    }
  }

  void checks(const YAML::Node& c, EgressConfig& out) {
    check_keys(c, {"tls", "sni", "min_version", "upstream", "pin_cache_ttl"}, "egress.checks");
    out.require_tls = boolean(c, "tls", "egress.checks", true);
    if (YAML::Node s = c["sni"]; present(s)) {
      std::string v = s.IsScalar() ? s.Scalar() : "";
      if (v == "match") out.sni = SniCheck::kMatch;
      else if (v == "present") out.sni = SniCheck::kPresent;
      else if (v == "off") out.sni = SniCheck::kOff;
      else error(at(s), fmt::format("unknown sni check '{}'", v), "match, present or off");
    }
    if (YAML::Node v = c["min_version"]; present(v)) {
      std::string s = v.IsScalar() ? v.Scalar() : "";
      if (s == "1.2") min_version_ = 0x0303;
      else if (s == "1.3") min_version_ = 0x0304;
      else error(at(v), fmt::format("min_version '{}' is not allowed", s), "\"1.2\" or \"1.3\"");
    }
    if (YAML::Node u = c["upstream"]; present(u)) {
      std::string v = u.IsScalar() ? u.Scalar() : "";
      if (v == "off") out.upstream = UpstreamCheck::kOff;
      else if (v == "version") out.upstream = UpstreamCheck::kVersion;
      else if (v == "pins") out.upstream = UpstreamCheck::kPins;
      else error(at(u), fmt::format("unknown upstream check '{}'", v), "off, version or pins");
    }
    if (YAML::Node t = c["pin_cache_ttl"]; present(t)) {
      if (auto d = duration(t, "pin_cache_ttl")) out.pin_cache_ttl = *d;
    }
  }

  void dns(const YAML::Node& d, EgressConfig& out) {
    check_keys(d, {"nameservers", "timeout", "attempts"}, "egress.dns");
    out.dns.nameservers = string_list(d, "nameservers", "egress.dns");
    if (YAML::Node t = d["timeout"]; present(t)) {
      if (auto v = duration(t, "dns timeout")) out.dns.timeout = *v;
    }
    if (YAML::Node a = d["attempts"]; present(a)) {
      if (auto v = number(a, "dns attempts", 10); v && *v > 0) out.dns.attempts = static_cast<int>(*v);
    }
  }

  void resolve(const YAML::Node& r, EgressConfig& out) {
    for (const auto& kv : r) {
      std::string host = kv.first.IsScalar() ? kv.first.Scalar() : "";
      auto normalized = cp::normalize_host(host);
      if (!normalized || normalized->kind != cp::Destination::Kind::kName) {
        error(at(kv.first), fmt::format("resolve: '{}' is not a host name", host));
        continue;
      }
      std::vector<net::IpAddress> addresses;
      YAML::Node list = kv.second;
      std::vector<YAML::Node> items;
      if (list.IsScalar()) items.push_back(list);
      else if (list.IsSequence()) for (const auto& i : list) items.push_back(i);
      for (const auto& item : items) {
        auto a = item.IsScalar() ? net::parse_ip_strict(item.Scalar()) : std::nullopt;
        if (!a) {
          error(at(item), fmt::format("resolve: '{}' is not an IP address",
                                      item.IsScalar() ? item.Scalar() : "..."));
          continue;
        }
        addresses.push_back(*a);
      }
      if (addresses.empty()) {
        error(at(kv.first), fmt::format("resolve: '{}' needs at least one address", host));
        continue;
      }
      out.dns.overrides[normalized->host] = std::move(addresses);
    }
  }

  void limits(const YAML::Node& l, EgressConfig& out) {
    check_keys(l,
               {"max_connections", "max_connections_per_client", "header_timeout",
                "hello_timeout", "connect_timeout", "idle_timeout", "drain_timeout",
                "max_request_line",
                "max_header_bytes"},
               "egress.limits");
    Limits& x = out.limits;
    if (YAML::Node n = l["max_connections"]; present(n)) {
      if (auto v = number(n, "max_connections", 10'000'000)) x.max_connections = *v;
    }
    if (YAML::Node n = l["max_connections_per_client"]; present(n)) {
      if (auto v = number(n, "max_connections_per_client", 10'000'000)) {
        x.max_connections_per_client = *v;
      }
    }
    for (auto [key, field] : {std::pair{"header_timeout", &x.header_timeout},
                              std::pair{"hello_timeout", &x.hello_timeout},
                              std::pair{"connect_timeout", &x.connect_timeout},
                              std::pair{"idle_timeout", &x.idle_timeout},
                              std::pair{"drain_timeout", &x.drain_timeout}}) {
      if (YAML::Node n = l[key]; present(n)) {
        if (auto v = duration(n, key)) {
          if (v->count() == 0) error(at(n), fmt::format("{} must be more than zero", key));
          *field = *v;
        }
      }
    }
    if (YAML::Node n = l["max_request_line"]; present(n)) {
      if (auto v = size(n, "max_request_line"); v && *v >= 64) x.max_request_line = *v;
    }
    if (YAML::Node n = l["max_header_bytes"]; present(n)) {
      if (auto v = size(n, "max_header_bytes"); v && *v >= 256) x.max_header_bytes = *v;
    }
  }

 public:
  // Cross-checks that need the policies: group policy names and service overrides.
  void link(EgressConfig& out) {
    std::vector<std::shared_ptr<const cp::Policy>> all = out.policies->policies;
    auto policy_named = [&](const std::string& name) -> std::shared_ptr<const cp::Policy> {
      for (const auto& p : all) {
        if (p->metadata.name == name) return p;
      }
      return nullptr;
    };
    for (const auto& [id, where] : service_refs_) {
      auto slash = id.find('/');
      if (slash == std::string::npos) continue;
      auto p = policy_named(id.substr(0, slash));
      std::string service = id.substr(slash + 1);
      if (!p || std::none_of(p->services.begin(), p->services.end(),
                             [&](const cp::Service& s) { return s.id == service; })) {
        error(where, fmt::format("service '{}' is not in any loaded policy", id));
      }
    }
    if (out.groups.empty()) {
      // No groups: every client may use every policy.
      Group everyone;
      everyone.name = "default";
      everyone.sources = {*net::parse_network("0.0.0.0/0"), *net::parse_network("::/0")};
      everyone.policy_set = out.policies;
      out.groups.push_back(std::move(everyone));
      return;
    }
    for (std::size_t i = 0; i < out.groups.size(); ++i) {
      Group& g = out.groups[i];
      if (g.policies.empty()) {
        g.policy_set = out.policies;
        continue;
      }
      std::vector<std::shared_ptr<const cp::Policy>> subset;
      for (const auto& name : g.policies) {
        auto p = policy_named(name);
        if (!p) {
          error(group_refs_[i], fmt::format("group '{}' names policy '{}', which is not loaded",
                                            g.name, name));
          continue;
        }
        subset.push_back(p);
      }
      cp::Matcher matcher(subset);
      g.policy_set = std::make_shared<cp::PolicySet>(cp::PolicySet{subset, std::move(matcher)});
    }
  }

  std::uint16_t min_version_ = 0;

 private:
  std::string base_dir_;
  std::vector<std::pair<std::string, cc::Location>> service_refs_;
  std::vector<cc::Location> group_refs_;
};

EgressConfigLoad load_document(cc::YamlDocument doc, const std::string& name,
                               const std::string& base_dir) {
  EgressConfigLoad result;
  result.unreadable = doc.unreadable;
  if (!doc.ok()) {
    result.diagnostics = std::move(doc.diagnostics);
    return result;
  }
  auto config = std::make_shared<EgressConfig>();
  config->file = name;
  EgressReader reader(name, base_dir);
  cc::walk_document(reader, doc.root, *config);
  if (reader.failed()) {
    result.diagnostics = reader.take_diagnostics();
    return result;
  }
  cp::PolicySetLoad policies = cp::load_policy_set(config->policy_files);
  if (!policies.set) {
    result.diagnostics = std::move(policies.diagnostics);
    result.unreadable = policies.unreadable;
    return result;
  }
  config->policies = policies.set;
  // The TLS floor: the strictest of the policies' floors, unless the config raises it.
  config->min_tls_version = 0x0303;
  for (const auto& p : policies.set->policies) {
    if (p->tls.min_version == "1.3") config->min_tls_version = 0x0304;
  }
  if (reader.min_version_ != 0) {
    config->min_tls_version = std::max(config->min_tls_version, reader.min_version_);
  }
  reader.link(*config);
  result.diagnostics = reader.take_diagnostics();
  // Policy warnings still reach the operator.
  for (auto& d : policies.diagnostics) result.diagnostics.push_back(std::move(d));
  if (!cc::has_errors(result.diagnostics)) result.config = std::move(config);
  return result;
}

}  // namespace

EgressConfigLoad load_egress_config_text(const std::string& text, const std::string& name,
                                         const std::string& base_dir) {
  return load_document(cc::read_yaml_text(text, name), name, base_dir);
}

EgressConfigLoad load_egress_config(const std::string& path) {
  std::string base = std::filesystem::path(path).parent_path().string();
  if (base.empty()) base = ".";
  return load_document(cc::read_yaml_file(path, kMaxConfigBytes), path, base);
}

}  // namespace moat::egress

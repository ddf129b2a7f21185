#include "edge/config.hpp"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "core/config/gateway.hpp"
#include "core/config/yaml_reader.hpp"
#include "core/policy/loader.hpp"
#include "core/runtime/worker_pool.hpp"

namespace moat::edge {

namespace cc = core::config;
namespace cp = core::policy;
namespace net = core::net;

bool path_has_prefix(std::string_view path, std::string_view prefix) {
  if (prefix.empty() || prefix == "/") return true;
  if (path.substr(0, prefix.size()) != prefix) return false;
  return prefix.back() == '/' || path.size() == prefix.size() || path[prefix.size()] == '/';
}

const Route* EdgeConfig::route_for(std::string_view host, std::string_view path) const {
  const Route* best = nullptr;
  // Host specificity: exact 3, wildcard 2 (+ parent length to prefer the deeper one), any 1.
  std::size_t best_host = 0;
  std::size_t best_path = 0;
  for (const auto& r : routes) {
    std::size_t host_score = 0;
    if (!r.host) {
      host_score = 1;
    } else if (r.host->kind == cp::HostPattern::Kind::kExact) {
      if (host != r.host->name) continue;
      host_score = 3ULL << 16;
    } else if (r.host->kind == cp::HostPattern::Kind::kWildcard) {
      // "*.example.io": any name strictly below example.io, never a string suffix.
      const std::string& parent = r.host->name;
      if (host.size() <= parent.size() + 1 || host.substr(host.size() - parent.size()) != parent ||
          host[host.size() - parent.size() - 1] != '.') {
        continue;
      }
      host_score = (2ULL << 16) + parent.size();
    } else {
      continue;
    }
    if (!path_has_prefix(path, r.path_prefix)) continue;
    if (host_score > best_host || (host_score == best_host && r.path_prefix.size() > best_path)) {
      best = &r;
      best_host = host_score;
      best_path = r.path_prefix.size();
    }
  }
  return best;
}

std::string EdgeConfig::hsts_value() const {
  std::string v = fmt::format("max-age={}", hsts.max_age);
  if (hsts.include_subdomains) v += "; includeSubDomains";
  if (hsts.preload) v += "; preload";
  return v;
}

namespace {

class EdgeReader : public cc::YamlReader {
 public:
  EdgeReader(std::string file, std::string base_dir)
      : YamlReader(std::move(file)), base_dir_(std::move(base_dir)) {}

  void document(const YAML::Node& root, EdgeConfig& out) {
    cc::GatewaySettings settings;
    YAML::Node e = cc::read_gateway_root(*this, root, "edge", settings);
    out.workers = settings.workers;
    out.admin_listen = settings.admin_listen;
    if (!e.IsDefined()) return;
    edge(e, out);
  }

  std::string policy_file_;
  cc::Location policy_at_;

 private:
  std::string resolve_path(const std::string& p) const {
    if (p.empty() || p.front() == '/') return p;
    return (std::filesystem::path(base_dir_) / p).string();
  }

  void edge(const YAML::Node& e, EdgeConfig& out) {
    check_keys(e,
               {"listen_https", "listen_http", "certificates", "policy", "routes", "pools",
                "limits", "access_log"},
               "edge");
    out.listen_https = string_list(e, "listen_https", "edge");
    out.listen_http = string_list(e, "listen_http", "edge");
    if (out.listen_https.empty()) {
      error(at(e), "edge needs 'listen_https': the addresses it serves HTTPS on",
            "e.g. listen_https: [0.0.0.0:443]");
    }
    for (const char* key : {"listen_https", "listen_http"}) {
      for (const auto& address : string_list(e, key, "edge")) {
        if (auto endpoint = core::runtime::parse_listen_address(address); !endpoint) {
          error(at(e[key]), fmt::format("{}: {}", key, endpoint.error().message),
                "e.g. 127.0.0.1:8443 or :443");
        }
      }
    }
    if (YAML::Node c = e["certificates"]; present(c) && expect_list(c, "edge.certificates")) {
      certificates(c, out);
    } else if (!present(c)) {
      error(at(e), "edge needs 'certificates': at least one {cert, key} pair",
            "e.g. certificates: [{cert: site.crt, key: site.key}]");
    }
    if (YAML::Node p = e["policy"]; present(p)) {
      policy_file_ = resolve_path(string(e, "policy", "edge", true));
      policy_at_ = at(p);
    }
    if (YAML::Node p = e["pools"]; present(p) && expect_list(p, "edge.pools")) pools(p, out);
    if (YAML::Node r = e["routes"]; present(r) && expect_list(r, "edge.routes")) routes(r, out);
    if (out.routes.empty()) {
      error(at(e), "edge needs 'routes': where requests go",
            "e.g. routes: [{host: \"*.example.io\", path_prefix: /, pool: app}]");
    }
    if (YAML::Node l = e["limits"]; present(l) && expect_map(l, "edge.limits")) limits(l, out);
    if (YAML::Node a = e["access_log"]; present(a)) {
      out.access_log = string(e, "access_log", "edge", true);
      if (out.access_log != "-") out.access_log = resolve_path(out.access_log);
    }
  }

  void certificates(const YAML::Node& list, EdgeConfig& out) {
    for (const auto& item : list) {
      if (!expect_map(item, "a certificate")) continue;
      check_keys(item, {"cert", "key"}, "certificate");
      CertificateFiles c;
      c.cert = resolve_path(string(item, "cert", "certificate", true));
      c.key = resolve_path(string(item, "key", "certificate", true));
      certificate_at_.push_back(at(item));
      out.certificates.push_back(std::move(c));
    }
    if (out.certificates.empty()) error(at(list), "edge.certificates must not be empty");
  }

  void pools(const YAML::Node& list, EdgeConfig& out) {
    for (const auto& item : list) {
      if (!expect_map(item, "a pool")) continue;
      check_keys(item, {"name", "members"}, "pool");
      Pool p;
      p.name = string(item, "name", "pool", true);
      if (!p.name.empty() && !cc::is_identifier(p.name)) {
        error(at(item["name"]), fmt::format("pool name '{}' must be lowercase letters, digits, "
                                            "'-', '_' or '.'", p.name));
      }
      if (std::any_of(out.pools.begin(), out.pools.end(),
                      [&](const Pool& q) { return q.name == p.name; })) {
        error(at(item["name"]), fmt::format("duplicate pool '{}'", p.name));
      }
      YAML::Node members = item["members"];
      for (const auto& text : string_list(item, "members", "pool")) {
        auto d = cp::parse_destination(text, 0);
        if (!d || d->kind != cp::Destination::Kind::kAddress || d->port == 0) {
          error(at(members), fmt::format("pool member '{}' must be an IP address with a port",
                                         text),
                "e.g. 127.0.0.1:9000 or [::1]:9000 (host names come with health checks)");
          continue;
        }
        p.members.push_back({text, d->address, d->port});
      }
      if (p.members.empty()) {
        error(at(item), fmt::format("pool '{}' needs at least one member", p.name));
      }
      out.pools.push_back(std::move(p));
    }
  }

  void routes(const YAML::Node& list, EdgeConfig& out) {
    for (const auto& item : list) {
      if (!expect_map(item, "a route")) continue;
      check_keys(item, {"host", "path_prefix", "pool"}, "route");
      Route r;
      r.host_text = string(item, "host", "route", false);
      if (!r.host_text.empty() && r.host_text != "*") {
        auto pattern = cp::parse_host_pattern(r.host_text);
        if (!pattern) {
          std::size_t offset = pattern.error().offset == core::Error::kNoOffset
                                   ? 0
                                   : pattern.error().offset;
          error(at_char(item["host"], offset),
                fmt::format("route host '{}': {}", r.host_text, pattern.error().message),
                pattern.error().hint);
        } else if (pattern->kind != cp::HostPattern::Kind::kExact &&
                   pattern->kind != cp::HostPattern::Kind::kWildcard) {
          error(at(item["host"]), fmt::format("route host '{}' must be a name or *.name",
                                              r.host_text));
        } else {
          r.host = std::move(*pattern);
          r.host_text = r.host->text;
        }
      }
      if (YAML::Node p = item["path_prefix"]; present(p)) {
        r.path_prefix = string(item, "path_prefix", "route", true);
        if (r.path_prefix.empty() || r.path_prefix.front() != '/' ||
            r.path_prefix.find_first_of("?# \t") != std::string::npos) {
          error(at(p), fmt::format("path_prefix '{}' must start with '/' and carry no query",
                                   r.path_prefix));
        }
      }
      r.pool_name = string(item, "pool", "route", true);
      auto it = std::find_if(out.pools.begin(), out.pools.end(),
                             [&](const Pool& p) { return p.name == r.pool_name; });
      if (it == out.pools.end()) {
        if (!r.pool_name.empty()) {
          error(at(item["pool"]), fmt::format("route names unknown pool '{}'", r.pool_name));
        }
      } else {
        r.pool = static_cast<std::size_t>(it - out.pools.begin());
      }
      r.label = (r.host ? r.host->text : std::string("*")) + r.path_prefix;
      for (const auto& other : out.routes) {
        if (other.label == r.label) {
          error(at(item), fmt::format("duplicate route '{}'", r.label));
          break;
        }
      }
      out.routes.push_back(std::move(r));
    }
  }

  void limits(const YAML::Node& l, EdgeConfig& out) {
    check_keys(l,
               {"handshake_timeout", "header_timeout", "idle_timeout", "connect_timeout",
                "first_byte_timeout", "drain_timeout", "max_request_line", "max_header_bytes",
                "max_body_bytes", "max_response_header_bytes", "max_requests_per_connection",
                "max_idle_upstream", "max_connections", "max_connections_per_client",
                "handshakes_per_second_per_client", "handshake_burst_per_client",
                "requests_per_second_per_client", "request_burst_per_client", "ban_after_trips",
                "ban_window", "ban_time", "ban_time_max", "client_prefix_v4", "client_prefix_v6",
                "max_tracked_clients"},
               "edge.limits");
    Limits& x = out.limits;
    for (auto [key, field] : {std::pair{"handshake_timeout", &x.handshake_timeout},
                              std::pair{"header_timeout", &x.header_timeout},
                              std::pair{"idle_timeout", &x.idle_timeout},
                              std::pair{"connect_timeout", &x.connect_timeout},
                              std::pair{"first_byte_timeout", &x.first_byte_timeout},
                              std::pair{"drain_timeout", &x.drain_timeout},
                              std::pair{"ban_window", &x.ban_window},
                              std::pair{"ban_time", &x.ban_time},
                              std::pair{"ban_time_max", &x.ban_time_max}}) {
      if (YAML::Node n = l[key]; present(n)) {
        if (auto v = duration(n, key)) {
          if (v->count() == 0) error(at(n), fmt::format("{} must be more than zero", key));
          *field = *v;
        }
      }
    }
    struct SizeLimit {
      const char* key;
      std::size_t* field;
      std::uint64_t min;
    };
    for (auto s : {SizeLimit{"max_request_line", &x.max_request_line, 64},
                   SizeLimit{"max_header_bytes", &x.max_header_bytes, 256},
                   SizeLimit{"max_body_bytes", &x.max_body_bytes, 0},
                   SizeLimit{"max_response_header_bytes", &x.max_response_header_bytes, 256}}) {
      if (YAML::Node n = l[s.key]; present(n)) {
        if (auto v = size(n, s.key)) {
          if (*v < s.min || *v > (1ULL << 30)) {
            error(at(n), fmt::format("{} must be between {} bytes and 1GiB", s.key, s.min));
          } else {
            *s.field = *v;
          }
        }
      }
    }
    if (YAML::Node n = l["max_requests_per_connection"]; present(n)) {
      if (auto v = number(n, "max_requests_per_connection", 1'000'000); v && *v > 0) {
        x.max_requests_per_connection = *v;
      }
    }
    if (YAML::Node n = l["max_idle_upstream"]; present(n)) {
      if (auto v = number(n, "max_idle_upstream", 100'000)) x.max_idle_upstream = *v;
    }
    guard_limits(l, x);
  }

  // The DDoS defences: caps, budgets and bans (core/guard). 0 disables a cap, a rate or bans.
  void guard_limits(const YAML::Node& l, Limits& x) {
    struct Count {
      const char* key;
      std::uint64_t* field;
      std::uint64_t max;
    };
    std::uint64_t max_connections = x.max_connections;
    std::uint64_t per_client = x.max_connections_per_client;
    std::uint64_t trips = x.ban_after_trips;
    std::uint64_t prefix_v4 = x.client_prefix_v4;
    std::uint64_t prefix_v6 = x.client_prefix_v6;
    std::uint64_t tracked = x.max_tracked_clients;
    for (auto c : {Count{"max_connections", &max_connections, 10'000'000},
                   Count{"max_connections_per_client", &per_client, 10'000'000},
                   Count{"handshakes_per_second_per_client", &x.handshakes_per_second_per_client,
                         1'000'000},
                   Count{"handshake_burst_per_client", &x.handshake_burst_per_client, 10'000'000},
                   Count{"requests_per_second_per_client", &x.requests_per_second_per_client,
                         10'000'000},
                   Count{"request_burst_per_client", &x.request_burst_per_client, 100'000'000},
                   Count{"ban_after_trips", &trips, 1'000'000},
                   Count{"client_prefix_v4", &prefix_v4, 32},
                   Count{"client_prefix_v6", &prefix_v6, 128},
                   Count{"max_tracked_clients", &tracked, 100'000'000}}) {
      if (YAML::Node n = l[c.key]; present(n)) {
        if (auto v = number(n, c.key, c.max)) *c.field = *v;
      }
    }
    x.max_connections = max_connections;
    x.max_connections_per_client = per_client;
    x.ban_after_trips = trips;
    x.client_prefix_v4 = static_cast<unsigned>(prefix_v4);
    x.client_prefix_v6 = static_cast<unsigned>(prefix_v6);
    x.max_tracked_clients = tracked;
    // A rate without its burst: the burst is twice the rate.
    if (present(l["handshakes_per_second_per_client"]) &&
        !present(l["handshake_burst_per_client"])) {
      x.handshake_burst_per_client = 2 * x.handshakes_per_second_per_client;
    }
    if (present(l["requests_per_second_per_client"]) && !present(l["request_burst_per_client"])) {
      x.request_burst_per_client = 2 * x.requests_per_second_per_client;
    }
    auto where = [&](const char* key) {
      YAML::Node n = l[key];
      return present(n) ? at(n) : at(l);
    };
    if (x.handshakes_per_second_per_client > 0 && x.handshake_burst_per_client == 0) {
      error(where("handshake_burst_per_client"),
            "handshake_burst_per_client must be at least 1 when handshakes are limited");
    }
    if (x.requests_per_second_per_client > 0 && x.request_burst_per_client == 0) {
      error(where("request_burst_per_client"),
            "request_burst_per_client must be at least 1 when requests are limited");
    }
    if (x.max_tracked_clients == 0) {
      error(where("max_tracked_clients"), "max_tracked_clients must be more than zero");
    }
    if (x.ban_time > x.ban_time_max) {
      error(where(present(l["ban_time"]) ? "ban_time" : "ban_time_max"),
            "ban_time must not be longer than ban_time_max");
    }
  }

  std::string base_dir_;
  std::vector<cc::Location> certificate_at_;
};

EdgeConfigLoad load_document(cc::YamlDocument doc, const std::string& name,
                             const std::string& base_dir) {
  EdgeConfigLoad result;
  result.unreadable = doc.unreadable;
  if (!doc.ok()) {
    result.diagnostics = std::move(doc.diagnostics);
    return result;
  }
  auto config = std::make_shared<EdgeConfig>();
  config->file = name;
  EdgeReader reader(name, base_dir);
  cc::walk_document(reader, doc.root, *config);
  if (reader.failed()) {
    result.diagnostics = reader.take_diagnostics();
    return result;
  }
  result.diagnostics = reader.take_diagnostics();
  if (!reader.policy_file_.empty()) {
    cp::LoadResult policy = cp::load_policy_file(reader.policy_file_);
    for (auto& d : policy.diagnostics) result.diagnostics.push_back(std::move(d));
    if (!policy.policy) {
      result.unreadable = policy.unreadable;
      if (policy.unreadable) {
        result.diagnostics.push_back({cc::Severity::kError, reader.policy_at_,
                                      fmt::format("edge.policy: cannot read '{}'",
                                                  reader.policy_file_),
                                      "paths are relative to this config file"});
      }
      return result;
    }
    config->policy_file = reader.policy_file_;
    config->policy = policy.policy;
    config->hsts = policy.policy->tls.hsts;
    if (policy.policy->tls.min_version == "1.3") config->min_tls_version = 0x0304;
  }
  if (!cc::has_errors(result.diagnostics)) result.config = std::move(config);
  return result;
}

}  // namespace

EdgeConfigLoad load_edge_config_text(const std::string& text, const std::string& name,
                                     const std::string& base_dir) {
  return load_document(cc::read_yaml_text(text, name), name, base_dir);
}

EdgeConfigLoad load_edge_config(const std::string& path) {
  std::string base = std::filesystem::path(path).parent_path().string();
  if (base.empty()) base = ".";
  return load_document(cc::read_yaml_file(path, kMaxConfigBytes), path, base);
}

}  // namespace moat::edge

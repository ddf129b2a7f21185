#include "edge/config.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <functional>
#include <optional>

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

const char* method_name(BalanceMethod method) {
  switch (method) {
    case BalanceMethod::kRoundRobin: return "round-robin";
    case BalanceMethod::kPriority: return "priority";
    case BalanceMethod::kWeighted: return "weighted";
    case BalanceMethod::kPerformance: return "performance";
    case BalanceMethod::kLeastConnections: return "least-connections";
  }
  return "round-robin";
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
      if (out.access_log != "-" && out.access_log != "off") {
        out.access_log = resolve_path(out.access_log);
      }
    }
  }

  void certificates(const YAML::Node& list, EdgeConfig& out) {
    for (const auto& item : list) {
      if (!expect_map(item, "a certificate")) continue;
      check_keys(item, {"cert", "key", "ocsp"}, "certificate");
      CertificateFiles c;
      c.cert = resolve_path(string(item, "cert", "certificate", true));
      c.key = resolve_path(string(item, "key", "certificate", true));
      if (YAML::Node o = item["ocsp"]; present(o)) {
        c.ocsp = resolve_path(string(item, "ocsp", "certificate", true));
      }
      c.at = at(item);
      out.certificates.push_back(std::move(c));
    }
    if (out.certificates.empty()) error(at(list), "edge.certificates must not be empty");
  }

  void pools(const YAML::Node& list, EdgeConfig& out) {
    for (const auto& item : list) {
      if (!expect_map(item, "a pool")) continue;
      check_keys(item, {"name", "method", "members", "health_check", "passive", "retry_after"},
                 "pool");
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
      if (YAML::Node m = item["method"]; present(m)) {
        const std::string method = string(item, "method", "pool", true);
        if (auto parsed = parse_method(method)) {
          p.method = *parsed;
        } else {
          error(at(m), fmt::format("pool '{}': unknown method '{}'", p.name, method),
                "one of priority, weighted, performance, round-robin, least-connections");
        }
      }
      if (YAML::Node members = item["members"]; !present(members)) {
        error(at(item), fmt::format("pool '{}' needs 'members'", p.name),
              "e.g. members: [\"127.0.0.1:9000\"]");
      } else if (members.IsScalar()) {
        member(members, p);
      } else if (expect_list(members, "pool members")) {
        for (const auto& m : members) member(m, p);
        if (p.members.empty()) {
          error(at(members), fmt::format("pool '{}' needs at least one member", p.name));
        }
      }
      // Priority defaults to the position in the list: written order is failover order.
      for (std::size_t i = 0; i < p.members.size(); ++i) {
        if (p.members[i].priority == 0) p.members[i].priority = static_cast<std::uint32_t>(i + 1);
      }
      if (YAML::Node h = item["health_check"]; present(h) && expect_map(h, "health_check")) {
        health_check(h, p.health);
      }
      if (YAML::Node pc = item["passive"]; present(pc) && expect_map(pc, "passive")) {
        check_keys(pc, {"max_fails", "fail_timeout"}, "passive");
        if (YAML::Node n = pc["max_fails"]; present(n)) {
          if (auto v = number(n, "max_fails", 1000)) p.passive.max_fails = *v;
        }
        if (YAML::Node n = pc["fail_timeout"]; present(n)) positive(n, "fail_timeout",
                                                                    p.passive.fail_timeout);
      }
      if (YAML::Node n = item["retry_after"]; present(n)) {
        positive(n, "retry_after", p.retry_after);
        if (p.retry_after.count() % 1000 != 0) {
          error(at(n), "retry_after must be whole seconds (Retry-After is in seconds)");
        }
      }
      out.pools.push_back(std::move(p));
    }
  }

  static std::optional<BalanceMethod> parse_method(std::string_view m) {
    if (m == "round-robin") return BalanceMethod::kRoundRobin;
    if (m == "priority") return BalanceMethod::kPriority;
    if (m == "weighted") return BalanceMethod::kWeighted;
    if (m == "performance") return BalanceMethod::kPerformance;
    if (m == "least-connections") return BalanceMethod::kLeastConnections;
    return std::nullopt;
  }

  // A member: "IP:port", or {address: "IP:port", weight: N, priority: N}.
  void member(const YAML::Node& m, Pool& p) {
    Member out;
    out.priority = 0;  // 0 = not written: the position in the list
    // Bound once: assigning to a YAML::Node writes into the node it refers to.
    const YAML::Node address = m.IsMap() ? m["address"] : m;
    if (m.IsMap()) {
      check_keys(m, {"address", "weight", "priority"}, "pool member");
      if (!present(address)) {
        error(at(m), "a pool member needs 'address'", "e.g. {address: \"127.0.0.1:9000\"}");
        return;
      }
      if (YAML::Node w = m["weight"]; present(w)) {
        if (auto v = number(w, "weight", 1000)) {
          if (*v == 0) {
            error(at(w), "weight must be between 1 and 1000");
          } else {
            out.weight = static_cast<std::uint32_t>(*v);
          }
        }
      }
      if (YAML::Node pr = m["priority"]; present(pr)) {
        if (auto v = number(pr, "priority", 1000)) {
          if (*v == 0) {
            error(at(pr), "priority must be between 1 and 1000 (1 is tried first)");
          } else {
            out.priority = static_cast<std::uint32_t>(*v);
          }
        }
      }
    }
    if (!address.IsScalar()) {
      error(at(address), "a pool member must be \"IP:port\" or {address: \"IP:port\", ...}");
      return;
    }
    out.text = address.Scalar();
    auto d = cp::parse_destination(out.text, 0);
    if (!d || d->kind != cp::Destination::Kind::kAddress || d->port == 0) {
      error(at(address),
            fmt::format("pool member '{}' must be an IP address with a port", out.text),
            "e.g. 127.0.0.1:9000 or [::1]:9000 (host names are not resolved yet)");
      return;
    }
    if (std::any_of(p.members.begin(), p.members.end(),
                    [&](const Member& o) { return o.text == out.text; })) {
      error(at(address), fmt::format("duplicate member '{}' in pool '{}'", out.text, p.name));
      return;
    }
    out.address = d->address;
    out.port = d->port;
    p.members.push_back(std::move(out));
  }

  void health_check(const YAML::Node& h, HealthCheck& out) {
    check_keys(h, {"path", "interval", "timeout", "fall", "rise", "expect_status", "host"},
               "health_check");
    out.enabled = true;
    if (YAML::Node n = h["path"]; present(n)) {
      out.path = string(h, "path", "health_check", true);
      if (out.path.empty() || out.path.front() != '/' ||
          out.path.find_first_of(" \t\r\n#") != std::string::npos) {
        error(at(n), fmt::format("health_check path '{}' must start with '/' and carry no "
                                 "spaces or fragment", out.path));
      }
    }
    if (YAML::Node n = h["host"]; present(n)) {
      out.host = string(h, "host", "health_check", true);
      auto d = cp::parse_destination(out.host, 80);
      if (!d || out.host.find_first_of(" \t\r\n/") != std::string::npos) {
        error(at(n), fmt::format("health_check host '{}' is not a valid Host value", out.host));
      }
    }
    if (YAML::Node n = h["interval"]; present(n)) positive(n, "interval", out.interval);
    if (YAML::Node n = h["timeout"]; present(n)) positive(n, "timeout", out.timeout);
    if (out.timeout > out.interval) {
      YAML::Node n = h["timeout"];
      if (present(n)) {
        error(at(n), "health_check timeout must not be longer than interval");
      } else {
        out.timeout = out.interval;  // a short interval without a timeout: the interval bounds it
      }
    }
    for (auto [key, field] : {std::pair{"fall", &out.fall}, std::pair{"rise", &out.rise}}) {
      if (YAML::Node n = h[key]; present(n)) {
        if (auto v = number(n, key, 100)) {
          if (*v == 0) {
            error(at(n), fmt::format("{} must be between 1 and 100", key));
          } else {
            *field = static_cast<std::uint32_t>(*v);
          }
        }
      }
    }
    if (YAML::Node n = h["expect_status"]; present(n)) {
      if (!n.IsScalar()) {
        error(at(n), "expect_status must be a code or ranges, e.g. \"200-399\" or \"200,204\"");
      } else if (auto ranges = status_ranges(n.Scalar())) {
        out.expect_status = std::move(*ranges);
      } else {
        error(at(n), fmt::format("expect_status '{}' must be codes or ranges of 100-599",
                                 n.Scalar()),
              "e.g. \"200-399\", \"200\" or \"200,204,300-399\" (at most 8)");
      }
    }
  }

  // "200-399", "200", "200,204,300-399": at most 8 (Azure Traffic Manager's limit).
  static std::optional<std::vector<HealthCheck::StatusRange>> status_ranges(std::string_view s) {
    std::vector<HealthCheck::StatusRange> out;
    auto code = [](std::string_view t) -> int {
      while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
      while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
      if (t.size() != 3 || !std::all_of(t.begin(), t.end(), [](char c) {
            return c >= '0' && c <= '9';
          })) {
        return -1;
      }
      int v = (t[0] - '0') * 100 + (t[1] - '0') * 10 + (t[2] - '0');
      return v >= 100 && v <= 599 ? v : -1;
    };
    while (!s.empty()) {
      std::size_t comma = s.find(',');
      std::string_view part = s.substr(0, comma);
      s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
      std::size_t dash = part.find('-');
      HealthCheck::StatusRange r;
      r.first = code(part.substr(0, dash));
      r.last = dash == std::string_view::npos ? r.first : code(part.substr(dash + 1));
      if (r.first < 0 || r.last < 0 || r.last < r.first || out.size() == 8) return std::nullopt;
      out.push_back(r);
      if (comma != std::string_view::npos && s.empty()) return std::nullopt;
    }
    if (out.empty()) return std::nullopt;
    return out;
  }

  void positive(const YAML::Node& n, const char* key, milliseconds& field) {
    if (auto v = duration(n, key)) {
      if (v->count() == 0) {
        error(at(n), fmt::format("{} must be more than zero", key));
      } else {
        field = *v;
      }
    }
  }

  void routes(const YAML::Node& list, EdgeConfig& out) {
    for (const auto& item : list) {
      if (!expect_map(item, "a route")) continue;
      check_keys(item, {"host", "path_prefix", "pool", "rate_limit"}, "route");
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
      r.limit_id = std::hash<std::string>{}(r.label);
      if (YAML::Node rl = item["rate_limit"]; present(rl) && expect_map(rl, "rate_limit")) {
        route_rate_limit(rl, r);
      }
      for (const auto& other : out.routes) {
        if (other.label == r.label) {
          error(at(item), fmt::format("duplicate route '{}'", r.label));
          break;
        }
      }
      out.routes.push_back(std::move(r));
    }
  }

  // rate_limit: {requests_per_second: N, burst: M}; the burst defaults to twice the rate.
  void route_rate_limit(const YAML::Node& rl, Route& r) {
    check_keys(rl, {"requests_per_second", "burst"}, "rate_limit");
    YAML::Node rate = rl["requests_per_second"];
    if (!present(rate)) {
      error(at(rl), "rate_limit needs requests_per_second", "e.g. {requests_per_second: 10}");
      return;
    }
    auto per_second = number(rate, "requests_per_second", 10'000'000);
    if (!per_second) return;
    if (*per_second == 0) {
      error(at(rate), "requests_per_second must be more than zero (leave rate_limit out)");
      return;
    }
    std::uint64_t burst = 2 * *per_second;
    if (YAML::Node b = rl["burst"]; present(b)) {
      auto v = number(b, "burst", 100'000'000);
      if (!v) return;
      if (*v == 0) {
        error(at(b), "burst must be at least 1");
        return;
      }
      burst = *v;
    }
    r.requests_per_second = static_cast<double>(*per_second);
    r.burst = static_cast<double>(burst);
  }

  // "1KiB/s", "500/s", "500" (bytes per second).
  std::optional<std::uint64_t> byte_rate(const YAML::Node& node, std::string_view what) {
    std::string s = node.IsScalar() ? node.Scalar() : "";
    if (s.size() > 2 && s.compare(s.size() - 2, 2, "/s") == 0) s.resize(s.size() - 2);
    std::size_t digits = 0;
    while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
    const std::string unit = s.substr(digits);
    std::uint64_t scale = 0;
    if (unit.empty() || unit == "B") scale = 1;
    else if (unit == "KiB") scale = 1024;
    else if (unit == "MiB") scale = 1024 * 1024;
    if (digits == 0 || digits > 9 || scale == 0) {
      error(at(node),
            fmt::format("{} '{}' is not a rate", what, node.IsScalar() ? node.Scalar() : ""),
            "bytes per second, e.g. 1KiB/s or 500/s; 0 turns it off");
      return std::nullopt;
    }
    return std::stoull(s.substr(0, digits)) * scale;
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
                "max_tracked_clients", "h2_max_concurrent_streams", "h2_initial_window_size",
                "h2_max_continuations", "h2_resets_per_second", "h2_reset_burst",
                "h2_settings_per_second", "h2_pings_per_second", "h2_max_buffered_body",
                "send_timeout",
                "min_body_rate", "body_rate_grace", "overload_lag", "overload_memory",
                "max_route_limit_entries"},
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
                              std::pair{"ban_time_max", &x.ban_time_max},
                              std::pair{"send_timeout", &x.send_timeout}}) {
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
                   SizeLimit{"max_response_header_bytes", &x.max_response_header_bytes, 256},
                   SizeLimit{"h2_max_buffered_body", &x.h2_max_buffered_body, 0}}) {
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
    h2_limits(l, x);
    defence_limits(l, x);
  }

  // Slow clients and overload; 0 turns min_body_rate, overload_lag and overload_memory off.
  void defence_limits(const YAML::Node& l, Limits& x) {
    if (YAML::Node n = l["min_body_rate"]; present(n)) {
      if (auto v = byte_rate(n, "min_body_rate")) x.min_body_rate = *v;
    }
    if (YAML::Node n = l["body_rate_grace"]; present(n)) {
      if (auto v = duration(n, "body_rate_grace")) x.body_rate_grace = *v;
    }
    if (YAML::Node n = l["overload_lag"]; present(n)) {
      if (auto v = duration(n, "overload_lag")) x.overload_lag = *v;
    }
    if (YAML::Node n = l["overload_memory"]; present(n)) {
      if (auto v = size(n, "overload_memory")) x.overload_memory = *v;
    }
    if (YAML::Node n = l["max_route_limit_entries"]; present(n)) {
      if (auto v = number(n, "max_route_limit_entries", 100'000'000)) {
        if (*v == 0) {
          error(at(n), "max_route_limit_entries must be more than zero");
        } else {
          x.max_route_limit_entries = *v;
        }
      }
    }
  }

  // HTTP/2 (H2Limits). Every value at least 1: a zero would refuse every stream, or make the
  // first reset, SETTINGS or PING a flood.
  void h2_limits(const YAML::Node& l, Limits& x) {
    struct Count {
      const char* key;
      std::uint32_t* field;
      std::uint64_t min;
      std::uint64_t max;
    };
    for (auto c : {Count{"h2_max_concurrent_streams", &x.h2_max_concurrent_streams, 1, 10'000},
                   Count{"h2_max_continuations", &x.h2_max_continuations, 1, 1'000},
                   Count{"h2_resets_per_second", &x.h2_resets_per_second, 1, 100'000},
                   Count{"h2_reset_burst", &x.h2_reset_burst, 1, 1'000'000},
                   Count{"h2_settings_per_second", &x.h2_settings_per_second, 1, 10'000},
                   Count{"h2_pings_per_second", &x.h2_pings_per_second, 1, 10'000}}) {
      if (YAML::Node n = l[c.key]; present(n)) {
        if (auto v = number(n, c.key, c.max)) {
          if (*v < c.min) {
            error(at(n), fmt::format("{} must be between {} and {}", c.key, c.min, c.max));
          } else {
            *c.field = static_cast<std::uint32_t>(*v);
          }
        }
      }
    }
    // RFC 9113 6.5.2: at least the 65,535 default; at most 16MiB so that the connection window
    // (four times it) stays below 2^31-1.
    if (YAML::Node n = l["h2_initial_window_size"]; present(n)) {
      if (auto v = size(n, "h2_initial_window_size")) {
        if (*v < 65'535 || *v > (16ULL << 20)) {
          error(at(n), "h2_initial_window_size must be between 65535 bytes and 16MiB");
        } else {
          x.h2_initial_window_size = static_cast<std::uint32_t>(*v);
        }
      }
    }
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

#include "egress/server.hpp"

#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <thread>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/dns/resolver.hpp"
#include "core/runtime/process.hpp"
#include "core/runtime/splice_pump.hpp"

namespace moat::egress {

namespace net = core::net;

// ---- ClientTable ----------------------------------------------------------------------------

ClientTable::Shard& ClientTable::shard_for(const std::string& key) {
  return shards_[std::hash<std::string>{}(key) % kShards];
}

bool ClientTable::acquire(const net::IpAddress& client, std::size_t limit) {
  std::string key(reinterpret_cast<const char*>(client.bytes.data()), client.bytes.size());
  Shard& s = shard_for(key);
  std::lock_guard lock(s.mutex);
  std::size_t& n = s.counts[key];
  if (n >= limit) {
    if (n == 0) s.counts.erase(key);
    return false;
  }
  ++n;
  return true;
}

void ClientTable::release(const net::IpAddress& client) {
  std::string key(reinterpret_cast<const char*>(client.bytes.data()), client.bytes.size());
  Shard& s = shard_for(key);
  std::lock_guard lock(s.mutex);
  auto it = s.counts.find(key);
  if (it == s.counts.end()) return;
  if (--it->second == 0) s.counts.erase(it);
}

// ---- Server ---------------------------------------------------------------------------------

// A tunnel needs two sockets (pipes are pooled and held only while bytes move): raise the soft
// descriptor limit to the hard one, as nginx's worker_rlimit_nofile does.
void raise_open_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  ::getrlimit(RLIMIT_NOFILE, &limit);
  spdlog::info("egress: up to {} open files", static_cast<unsigned long long>(limit.rlim_cur));
}

Server::Server(ServerOptions options, std::shared_ptr<const EgressConfig> config)
    : options_(std::move(options)),
      config_(config),
      pool_(options_.workers != 0 ? options_.workers : config->workers),
      metrics_(pool_.size() + 1) {  // the last shard is the main thread's (reloads)
  for (std::size_t i = 0; i < pool_.size(); ++i) {
    auto w = std::make_unique<WorkerState>();
    w->index = i;
    w->pipes = std::make_unique<core::runtime::PipePool>();
    workers_.push_back(std::move(w));
  }
  connections_total_ =
      metrics_.counter_family("moat_egress_connections_total", "Client connections accepted")
          .labels();
  connections_active_ =
      metrics_.gauge_family("moat_egress_connections_active", "Client connections open").labels();
  auto& bytes = metrics_.counter_family("moat_egress_bytes_total",
                                        "Bytes tunnelled, by direction", {"direction"});
  bytes_up_ = bytes.labels({"up"});
  bytes_down_ = bytes.labels({"down"});
  dns_seconds_ = metrics_
                     .histogram_family("moat_egress_dns_lookup_seconds",
                                       "Time to resolve a destination name",
                                       core::obs::latency_buckets_seconds())
                     .labels();
  decisions_ = &metrics_.counter_family(
      "moat_egress_decisions_total", "Connections by decision, policy, service and reason",
      {"decision", "policy", "service", "reason"});
  hello_failures_ = &metrics_.counter_family("moat_egress_client_hello_failures_total",
                                             "Tunnels whose ClientHello failed a check",
                                             {"reason"});
  reloads_ = &metrics_.counter_family("moat_egress_reloads_total", "Config reloads by result",
                                      {"result"});
}

Server::~Server() { pool_.stop(); }

bool Server::admit_client(const net::IpAddress& client) {
  auto config = config_.load();
  if (active_.load(std::memory_order_relaxed) > config->limits.max_connections) return false;
  return clients_.acquire(client, config->limits.max_connections_per_client);
}

void Server::release_client(const net::IpAddress& client) { clients_.release(client); }

void Server::on_connection_open(std::size_t worker) {
  active_.fetch_add(1, std::memory_order_relaxed);
  connections_total_.inc(worker);
  connections_active_.inc(worker);
}

void Server::on_connection_close(std::size_t worker) {
  active_.fetch_sub(1, std::memory_order_relaxed);
  connections_active_.dec(worker);
}

void Server::observe_dns(std::size_t worker, std::chrono::microseconds latency) {
  dns_seconds_.observe(worker, static_cast<double>(latency.count()) / 1e6);
}

void Server::count_hello_failure(std::size_t worker, std::string_view reason) {
  hello_failures_->labels({reason}).inc(worker);
}

void Server::count_bytes(std::size_t worker, std::uint64_t up, std::uint64_t down) {
  bytes_up_.add(worker, up);
  bytes_down_.add(worker, down);
}

void Server::count_decision(std::size_t worker, const SessionRecord& r) {
  std::string_view decision = r.report_only ? "report" : r.decision;
  decisions_->labels({decision, r.policy, r.service, r.code}).inc(worker);
}

void Server::write_audit(std::string_view line) {
  if (audit_) audit_->write(line);
}

std::uint16_t Server::original_port(asio::ip::tcp::socket& socket, std::uint16_t fallback) const {
  // IPv4 and IPv6 REDIRECT rules keep the destination under different options.
  asio::error_code ec;
  auto local = socket.local_endpoint(ec);
  std::uint16_t port = 0;
  if (!ec && local.address().is_v6()) {
    sockaddr_in6 original{};
    socklen_t len = sizeof original;
    if (::getsockopt(socket.native_handle(), SOL_IPV6, IP6T_SO_ORIGINAL_DST, &original, &len) != 0) {
      return fallback;
    }
    port = ntohs(original.sin6_port);
  } else {
    sockaddr_in original{};
    socklen_t len = sizeof original;
    if (::getsockopt(socket.native_handle(), SOL_IP, SO_ORIGINAL_DST, &original, &len) != 0) {
      return fallback;
    }
    port = ntohs(original.sin_port);
  }
  // Without a REDIRECT rule the "original" destination is this listener itself.
  if (!ec && local.port() == port) return fallback;
  return port;
}

void Server::refresh_resolver(WorkerState& worker,
                              const std::shared_ptr<const EgressConfig>& config) {
  if (worker.resolver && worker.resolver_config == config) return;
  net::ResolverConfig rc;
  if (config->dns.nameservers.empty()) {
    if (auto system = net::system_resolver_config()) rc = std::move(*system);
  } else {
    for (const auto& ns : config->dns.nameservers) {
      auto endpoint = core::runtime::parse_listen_address(ns.find(':') == std::string::npos &&
                                                                  ns.find('[') == std::string::npos
                                                              ? ns + ":53"
                                                              : ns);
      if (endpoint) {
        rc.nameservers.emplace_back(endpoint->address(), endpoint->port());
      }
    }
  }
  rc.timeout = config->dns.timeout;
  rc.attempts = config->dns.attempts;
  rc.overrides = config->dns.overrides;
  // Sessions hold the resolver they started with; the old one lives until they finish.
  worker.resolver = std::make_shared<net::Resolver>(pool_.worker(worker.index).context(), rc);
  worker.resolver_config = config;
}

asio::awaitable<void> Server::accept_loop(WorkerState& worker,
                                          std::shared_ptr<asio::ip::tcp::acceptor> acceptor,
                                          bool transparent) {
  for (;;) {
    asio::error_code ec;
    asio::ip::tcp::socket socket = co_await acceptor->async_accept(
        asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
      // EMFILE and friends: the pending connection stays queued, so retrying at once would
      // spin. Log at most once a second and pause the accept loop briefly.
      auto now = std::chrono::steady_clock::now();
      if (now - worker.last_accept_warning > std::chrono::seconds(1)) {
        worker.last_accept_warning = now;
        spdlog::warn("egress: accept failed: {} (pausing accepts)", ec.message());
      }
      asio::steady_timer pause(acceptor->get_executor(), std::chrono::milliseconds(50));
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    auto config = config_.load();
    refresh_resolver(worker, config);
    auto session = std::make_shared<Session>(*this, worker, std::move(config), std::move(socket),
                                             transparent);
    asio::co_spawn(acceptor->get_executor(), session->run(), asio::detached);
  }
}

bool Server::reload() {
  auto load = load_egress_config(options_.config_path);
  core::runtime::log_reload_diagnostics(load.diagnostics);
  std::size_t main_shard = pool_.size();
  if (!load.config) {
    spdlog::error("reload: {} rejected; the running config stays", options_.config_path);
    reloads_->labels({"rejected"}).inc(main_shard);
    return false;
  }
  auto old = config_.load();
  if (old) {
    auto addresses = [](const EgressConfig& c) {
      std::vector<std::string> out;
      for (const auto& l : c.listeners) out.push_back(l.address + (l.transparent ? "/t" : ""));
      return out;
    };
    if (addresses(*old) != addresses(*load.config)) {
      spdlog::warn("reload: listener changes take effect at the next restart");
    }
    if (old->audit_log != load.config->audit_log) {
      spdlog::warn("reload: audit_log changes take effect at the next restart (SIGUSR1 reopens "
                   "the current path)");
    }
    if (old->admin_listen != load.config->admin_listen) {
      spdlog::warn("reload: admin listener changes take effect at the next restart");
    }
  }
  config_.store(load.config);
  reloads_->labels({"applied"}).inc(main_shard);
  spdlog::info("reload: {} applied ({} policies)", options_.config_path,
               load.config->policies->policies.size());
  return true;
}

int Server::run() {
  raise_open_file_limit();
  auto config = config_.load();
  auto audit = core::obs::AuditLog::open(config->audit_log);
  if (!audit) {
    spdlog::error("egress: {}", audit.error().message);
    return 2;
  }
  audit_ = std::move(*audit);

  // Every worker gets its own socket on each listen address (SO_REUSEPORT).
  for (const auto& l : config->listeners) {
    auto endpoint = core::runtime::parse_listen_address(l.address);
    if (!endpoint) {
      spdlog::error("egress: {}", endpoint.error().message);
      return 2;
    }
    for (std::size_t i = 0; i < pool_.size(); ++i) {
      auto& ctx = pool_.worker(i).context();
      auto acceptor = core::runtime::open_listener(ctx, *endpoint);
      if (!acceptor) {
        spdlog::error("egress: {}", acceptor.error().message);
        return 2;
      }
      if (i == 0) {
        spdlog::info("egress: listening on {} ({})", l.address,
                     l.transparent ? "transparent TLS" : "HTTP CONNECT");
      }
      auto shared = std::make_shared<asio::ip::tcp::acceptor>(std::move(*acceptor));
      workers_[i]->acceptors.push_back(shared);
      asio::co_spawn(ctx, accept_loop(*workers_[i], shared, l.transparent), asio::detached);
    }
  }

  if (!config->admin_listen.empty()) {
    admin_ = std::make_unique<core::obs::AdminServer>(config->admin_listen, metrics_);
    if (auto started = admin_->start(); !started) {
      spdlog::error("egress: admin listener: {}", started.error().message);
      return 2;
    }
    spdlog::info("egress: admin listener on {} (/metrics, /healthz)", config->admin_listen);
  }

  core::runtime::SignalHandlers handlers;
  handlers.reload = [this] { reload(); };
  handlers.reopen = [this] {
    if (auto r = audit_->reopen(); !r) {
      spdlog::error("egress: reopening the audit log: {}", r.error().message);
    } else {
      spdlog::info("egress: audit log reopened");
    }
  };
  handlers.stop = [this] {
    if (admin_) admin_->set_healthy(false);
  };
  core::runtime::run_until_stopped(pool_, handlers, "egress");

  drain();
  if (admin_) admin_->stop();
  pool_.stop();
  return 0;
}

void Server::drain() {
  // Stop accepting, end connections that are not tunnels yet, give tunnels the drain time,
  // then end them too. Every session writes its audit record on the way out.
  auto left = core::runtime::drain(
      pool_, active_,
      [this](std::size_t i, bool force) {
        WorkerState& w = *workers_[i];
        asio::error_code ignored;
        for (auto& a : w.acceptors) a->close(ignored);
        for (Session* s : w.sessions) s->abort(force);
      },
      config_.load()->limits.drain_timeout);
  if (left > 0) spdlog::warn("egress: {} connections still open at exit", left);
}

}  // namespace moat::egress

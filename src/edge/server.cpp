#include "edge/server.hpp"

#include <pthread.h>
#include <signal.h>

#include <functional>
#include <random>
#include <thread>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include "core/runtime/process.hpp"

namespace moat::edge {

core::Result<std::shared_ptr<const EdgeSnapshot>> make_snapshot(
    std::shared_ptr<const EdgeConfig> config) {
  auto tls = TlsContexts::build(*config);
  if (!tls) return tls.error();
  auto snapshot = std::make_shared<EdgeSnapshot>();
  snapshot->hsts = config->hsts_value();
  if (!config->listen_https.empty()) {
    if (auto endpoint = core::runtime::parse_listen_address(config->listen_https.front())) {
      snapshot->https_port = endpoint->port();
    }
  }
  snapshot->tls = std::move(*tls);
  snapshot->config = std::move(config);
  return std::shared_ptr<const EdgeSnapshot>(std::move(snapshot));
}

Server::Server(ServerOptions options, std::shared_ptr<const EdgeSnapshot> snapshot)
    : options_(std::move(options)),
      snapshot_(snapshot),
      pool_(options_.workers != 0 ? options_.workers : snapshot->config->workers),
      metrics_(pool_.size() + 1) {  // the last shard is the main thread's (reloads)
  for (std::size_t i = 0; i < pool_.size(); ++i) {
    auto w = std::make_unique<WorkerState>();
    w->index = i;
    std::uint64_t seed = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&seed), sizeof seed) != 1) {
      seed = std::random_device{}() ^ (static_cast<std::uint64_t>(i) << 32);
    }
    w->random.seed(seed);
    workers_.push_back(std::move(w));
  }
  auto& connections = metrics_.counter_family("moat_edge_connections_total",
                                              "Downstream connections accepted, by listener",
                                              {"listener"});
  connections_https_ = connections.labels({"https"});
  connections_http_ = connections.labels({"http"});
  connections_active_ =
      metrics_.gauge_family("moat_edge_connections_active", "Downstream connections open")
          .labels();
  request_seconds_ = metrics_
                         .histogram_family("moat_edge_request_duration_seconds",
                                           "Request head received to response sent",
                                           core::obs::latency_buckets_seconds())
                         .labels();
  requests_ = &metrics_.counter_family("moat_edge_requests_total",
                                       "Requests by route, status class and outcome code",
                                       {"route", "status", "code"});
  handshake_failures_ = &metrics_.counter_family(
      "moat_edge_tls_handshake_failures_total", "TLS handshakes that failed", {"reason"});
  upstream_connects_ = &metrics_.counter_family(
      "moat_edge_upstream_connections_total",
      "Upstream connections used: new, reused from the keep-alive pool, or failed to connect",
      {"result"});
  reloads_ = &metrics_.counter_family("moat_edge_reloads_total", "Config reloads by result",
                                      {"result"});
  exceptions_ = metrics_
                    .counter_family("moat_edge_session_exceptions_total",
                                    "Sessions ended by an unexpected exception (a bug)")
                    .labels();
}

Server::~Server() { pool_.stop(); }

void Server::on_connection_open(std::size_t worker, bool tls) {
  active_.fetch_add(1, std::memory_order_relaxed);
  (tls ? connections_https_ : connections_http_).inc(worker);
  connections_active_.inc(worker);
}

void Server::on_connection_close(std::size_t worker, bool) {
  active_.fetch_sub(1, std::memory_order_relaxed);
  connections_active_.dec(worker);
}

void Server::on_session_exception(std::size_t worker, const char* what) {
  exceptions_.inc(worker);
  spdlog::error("edge: session ended by an exception: {}", what);
}

void Server::count_handshake_failure(std::size_t worker, std::string_view reason) {
  handshake_failures_->labels({reason}).inc(worker);
}

void Server::count_upstream_connect(std::size_t worker, std::string_view result) {
  upstream_connects_->labels({result}).inc(worker);
}

void Server::count_request(std::size_t worker, const StreamRecord& r, double seconds) {
  static constexpr const char* kClasses[] = {"0xx", "1xx", "2xx", "3xx", "4xx", "5xx"};
  const char* status = r.status >= 100 && r.status < 600 ? kClasses[r.status / 100] : "0xx";
  // Label lookups take the family's lock; fine for this slice, cached handles come with h2.
  requests_->labels({r.route, status, r.code}).inc(worker);
  request_seconds_.observe(worker, seconds);
}

void Server::write_access(std::string_view line) {
  if (access_) access_->write(line);
}

asio::awaitable<void> Server::accept_loop(WorkerState& worker,
                                          std::shared_ptr<asio::ip::tcp::acceptor> acceptor,
                                          bool tls) {
  for (;;) {
    asio::error_code ec;
    asio::ip::tcp::socket socket =
        co_await acceptor->async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
      spdlog::warn("edge: accept failed: {}", ec.message());
      continue;
    }
    auto session =
        std::make_shared<Session>(*this, worker, snapshot_.load(), std::move(socket), tls);
    asio::co_spawn(acceptor->get_executor(), session->run(), asio::detached);
  }
}

bool Server::reload() {
  auto load = load_edge_config(options_.config_path);
  for (const auto& d : load.diagnostics) {
    if (d.severity == core::config::Severity::kError) {
      spdlog::error("reload: {}", core::config::format(d));
    } else {
      spdlog::warn("reload: {}", core::config::format(d));
    }
  }
  std::size_t main_shard = pool_.size();
  if (!load.config) {
    spdlog::error("reload: {} rejected; the running config stays", options_.config_path);
    reloads_->labels({"rejected"}).inc(main_shard);
    return false;
  }
  auto next = make_snapshot(load.config);
  if (!next) {
    spdlog::error("reload: {}: {}; the running config stays", options_.config_path,
                  next.error().message);
    reloads_->labels({"rejected"}).inc(main_shard);
    return false;
  }
  auto old = snapshot_.load();
  if (old->config->listen_https != load.config->listen_https ||
      old->config->listen_http != load.config->listen_http) {
    spdlog::warn("reload: listener changes take effect at the next restart");
  }
  if (old->config->access_log != load.config->access_log ||
      old->config->admin_listen != load.config->admin_listen) {
    spdlog::warn("reload: access_log and admin changes take effect at the next restart");
  }
  snapshot_.store(*next);
  reloads_->labels({"applied"}).inc(main_shard);
  spdlog::info("reload: {} applied ({} routes, {} certificates)", options_.config_path,
               load.config->routes.size(), load.config->certificates.size());
  return true;
}

int Server::run() {
  auto snapshot = snapshot_.load();
  const EdgeConfig& config = *snapshot->config;
  auto access = core::obs::AuditLog::open(config.access_log);
  if (!access) {
    spdlog::error("edge: {}", access.error().message);
    return 2;
  }
  access_ = std::move(*access);

  for (std::size_t t = 0; t < snapshot->tls->size(); ++t) {
    spdlog::info("edge: certificate {}{}", snapshot->tls->summary(t), t == 0 ? " (default)" : "");
  }
  // Every worker gets its own socket on each listen address (SO_REUSEPORT).
  auto listen = [&](const std::string& address, bool tls) -> bool {
    auto endpoint = core::runtime::parse_listen_address(address);
    if (!endpoint) {
      spdlog::error("edge: {}", endpoint.error().message);
      return false;
    }
    for (std::size_t i = 0; i < pool_.size(); ++i) {
      auto& ctx = pool_.worker(i).context();
      auto acceptor = core::runtime::open_listener(ctx, *endpoint);
      if (!acceptor) {
        spdlog::error("edge: {}", acceptor.error().message);
        return false;
      }
      auto shared = std::make_shared<asio::ip::tcp::acceptor>(std::move(*acceptor));
      workers_[i]->acceptors.push_back(shared);
      asio::co_spawn(ctx, accept_loop(*workers_[i], shared, tls), asio::detached);
    }
    spdlog::info("edge: listening on {} ({})", address, tls ? "HTTPS" : "HTTP, redirect to HTTPS");
    return true;
  };
  for (const auto& a : config.listen_https) {
    if (!listen(a, true)) return 2;
  }
  for (const auto& a : config.listen_http) {
    if (!listen(a, false)) return 2;
  }

  if (!config.admin_listen.empty()) {
    admin_ = std::make_unique<core::obs::AdminServer>(config.admin_listen, metrics_);
    if (auto started = admin_->start(); !started) {
      spdlog::error("edge: admin listener: {}", started.error().message);
      return 2;
    }
    spdlog::info("edge: admin listener on {} (/metrics, /healthz)", config.admin_listen);
  }

  core::runtime::SignalHandlers handlers;
  handlers.reload = [this] { reload(); };
  handlers.reopen = [this] {
    if (auto r = access_->reopen(); !r) {
      spdlog::error("edge: reopening the access log: {}", r.error().message);
    } else {
      spdlog::info("edge: access log reopened");
    }
  };
  handlers.stop = [this] {
    if (admin_) admin_->set_healthy(false);
  };
  core::runtime::run_until_stopped(pool_, handlers, "edge");

  drain();
  if (admin_) admin_->stop();
  pool_.stop();
  return 0;
}

void Server::drain() {
  auto on_every_worker = [this](auto fn) {
    for (std::size_t i = 0; i < pool_.size(); ++i) {
      asio::post(pool_.worker(i).context(), [this, i, fn] { fn(*workers_[i]); });
    }
  };
  auto wait_idle = [this](std::chrono::milliseconds budget) {
    auto deadline = std::chrono::steady_clock::now() + budget;
    while (active_.load(std::memory_order_relaxed) > 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };
  on_every_worker([](WorkerState& w) {
    asio::error_code ignored;
    for (auto& a : w.acceptors) a->close(ignored);
    for (Session* s : w.sessions) s->abort(false);
    w.upstreams.clear();
  });
  wait_idle(snapshot_.load()->config->limits.drain_timeout);
  on_every_worker([](WorkerState& w) {
    for (Session* s : w.sessions) s->abort(true);
    w.upstreams.clear();
  });
  wait_idle(std::chrono::seconds(2));
  if (active_.load() > 0) spdlog::warn("edge: {} connections still open at exit", active_.load());
}

}  // namespace moat::edge

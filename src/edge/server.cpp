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
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include "core/runtime/process.hpp"
#include "edge/balancer.hpp"
#include "edge/overload.hpp"

namespace moat::edge {

namespace {

void log_tls_groups(const TlsContexts& tls) {
  const bool pq = tls.groups() == kGroupsWithPq;
  spdlog::info("edge: TLS groups {}{}", tls.groups(),
               pq ? "" : " (this OpenSSL has no X25519MLKEM768: classical groups only)");
}

}  // namespace

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
      guard_(guard_settings(snapshot->config->limits)),
      pool_(options_.workers != 0 ? options_.workers : snapshot->config->workers),
      metrics_(pool_.size() + 1),
      route_limits_(snapshot->config->limits.max_route_limit_entries) {  // the last shard is the main thread's (reloads)
  for (std::size_t i = 0; i < pool_.size(); ++i) {
    auto w = std::make_unique<WorkerState>();
    w->index = i;
    std::uint64_t seed = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&seed), sizeof seed) != 1) {
      seed = std::random_device{}() ^ (static_cast<std::uint64_t>(i) << 32);
    }
    w->random.seed(seed);
    w->deadlines = std::make_unique<core::runtime::DeadlineWheel>(
        pool_.worker(i).context().get_executor());
    w->access_batch = std::make_unique<core::obs::BatchedLog>(*w->deadlines, kAccessBatchBytes);
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
  h2_connections_ = metrics_
                        .counter_family("moat_edge_h2_connections_total",
                                        "Downstream connections that negotiated HTTP/2")
                        .labels();
  h2_streams_ = metrics_
                    .counter_family("moat_edge_h2_streams_total",
                                    "HTTP/2 request streams served (answered or reset)")
                    .labels();
  h2_client_resets_ =
      metrics_
          .counter_family("moat_edge_h2_client_resets_total",
                          "HTTP/2 streams reset by the client before their response ended")
          .labels();
  auto& h2_defences = metrics_.counter_family(
      "moat_edge_h2_defences_total",
      "HTTP/2 connections ended by a defence (GOAWAY), by what the client did", {"defence"});
  for (H2Defence d : {H2Defence::kRapidReset, H2Defence::kContinuationFlood,
                      H2Defence::kHeaderBlockTooLarge, H2Defence::kSettingsFlood,
                      H2Defence::kPingFlood, H2Defence::kAckFlood, H2Defence::kProtocolError}) {
    h2_defences_[static_cast<int>(d)] = h2_defences.labels({h2_defence_name(d)});
  }
  auto& rejections = metrics_.counter_family(
      "moat_edge_guard_rejections_total",
      "Connections closed and requests refused by the DDoS defences, by limit", {"limit"});
  using core::guard::Verdict;
  rejections_[0] = rejections.labels({"connections"});
  for (Verdict v : {Verdict::kConnectionsPerClient, Verdict::kHandshakes, Verdict::kRequests,
                    Verdict::kBanned}) {
    rejections_[static_cast<int>(v)] = rejections.labels({core::guard::verdict_name(v)});
  }
  rejections_route_ = rejections.labels({"route"});
  rejections_overload_ = rejections.labels({"overload"});
  rejections_body_rate_ = rejections.labels({"body_rate"});
  rejections_send_timeout_ = rejections.labels({"send_timeout"});
  rejections_h2_body_buffer_ = rejections.labels({"h2_body_buffer"});
  overloaded_gauge_ =
      metrics_
          .gauge_family("moat_edge_overloaded",
                        "Workers shedding new work (event-loop lag or memory over the limit)")
          .labels();
  // Pools: balancing state for every worker, and the active health checks on worker 0.
  ejections_ = &metrics_.counter_family(
      "moat_edge_upstream_ejections_total",
      "Upstream members left out for fail_timeout after max_fails consecutive failures",
      {"pool", "member"});
  attach_pool_state(*snapshot->config, nullptr, pool_.size(), ejections_);
  health_ = std::make_unique<HealthChecker>(pool_.worker(0).context(), metrics_, 0);
}

Server::~Server() {
  pool_.stop();
  flush_access_logs();
}

void Server::flush_access_logs() {
  // Workers are stopped: their buffers are written, then detached from the log that dies first.
  for (auto& w : workers_) w->access_batch->set_target(nullptr);
}

core::guard::LimiterSettings Server::guard_settings(const Limits& l) {
  core::guard::LimiterSettings s;
  s.max_connections_per_client = l.max_connections_per_client;
  s.handshakes_per_second = static_cast<double>(l.handshakes_per_second_per_client);
  s.handshake_burst = static_cast<double>(l.handshake_burst_per_client);
  s.requests_per_second = static_cast<double>(l.requests_per_second_per_client);
  s.request_burst = static_cast<double>(l.request_burst_per_client);
  s.ban_after_trips = l.ban_after_trips;
  s.ban_window = l.ban_window;
  s.ban_time = l.ban_time;
  s.ban_time_max = l.ban_time_max;
  s.max_clients = l.max_tracked_clients;
  return s;
}

void Server::count_rejection(std::size_t worker, core::guard::Verdict verdict) {
  rejections_[static_cast<int>(verdict)].inc(worker);
}

core::guard::Decision Server::guard_handshake(std::size_t worker,
                                              const core::guard::ClientKey& key) {
  auto d = guard_.handshake(key, core::guard::Clock::now());
  if (!d.allowed()) count_rejection(worker, d.verdict);
  return d;
}

core::guard::Decision Server::guard_request(std::size_t worker,
                                            const core::guard::ClientKey& key) {
  auto d = guard_.request(key, core::guard::Clock::now());
  if (!d.allowed()) count_rejection(worker, d.verdict);
  return d;
}

std::int64_t Server::route_limit(std::size_t worker, const Route& route,
                                 const core::guard::ClientKey& key) {
  if (route.requests_per_second <= 0) return 0;
  const std::int64_t retry = route_limits_.take(route.limit_id, key, route.requests_per_second,
                                                route.burst, core::guard::Clock::now());
  if (retry != 0) rejections_route_.inc(worker);
  return retry;
}

bool Server::overloaded(std::size_t worker) const {
  return workers_[worker]->overloaded || memory_over_.load(std::memory_order_relaxed);
}

void Server::count_overload_rejection(std::size_t worker) { rejections_overload_.inc(worker); }
void Server::count_slow_body(std::size_t worker) { rejections_body_rate_.inc(worker); }
void Server::count_h2_body_buffer(std::size_t worker, std::uint64_t streams) {
  rejections_h2_body_buffer_.add(worker, streams);
}
void Server::count_send_timeout(std::size_t worker) { rejections_send_timeout_.inc(worker); }

// The lag is measured against the tick's own schedule, so a loop busy for 300 ms shows 300 ms
// whatever the tick interval. Memory is one small read, on worker 0 only (it is per process).
asio::awaitable<void> Server::overload_watch(WorkerState& worker) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  auto due = std::chrono::steady_clock::now() + kOverloadTick;
  for (;;) {
    timer.expires_at(due);
    asio::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    const auto ran = std::chrono::steady_clock::now();
    const Limits& limits = snapshot_.load()->config->limits;
    const bool lagging = worker.lag.observe(due, ran, limits.overload_lag);
    if (worker.index == 0) {
      const bool over = limits.overload_memory != 0 && resident_bytes() > limits.overload_memory;
      if (over != memory_over_.load(std::memory_order_relaxed)) {
        memory_over_.store(over, std::memory_order_relaxed);
        spdlog::warn("edge: memory {} overload_memory ({} bytes): {}", over ? "over" : "back under",
                     limits.overload_memory, over ? "shedding new work" : "accepting again");
      }
    }
    const bool now_overloaded = lagging || memory_over_.load(std::memory_order_relaxed);
    if (now_overloaded != worker.overloaded) {
      worker.overloaded = now_overloaded;
      overloaded_gauge_.add(worker.index, now_overloaded ? 1 : -1);
      if (lagging) {
        spdlog::warn("edge: worker {} event loop lags {} ms: shedding new work", worker.index,
                     worker.lag.last_lag().count());
      }
    }
    // The next tick is due one interval after this one ran: a long stall is one late tick.
    due = ran + kOverloadTick;
  }
}

void Server::guard_close(const core::guard::ClientKey& key) {
  guard_.close_connection(key, core::guard::Clock::now());
}

// Phase 0, before any byte is read or any TLS work is done: the global cap, then the client's
// ban and its connection cap. A refused connection is closed at once.
bool Server::admit(WorkerState& worker, const Limits& limits, asio::ip::tcp::socket& socket,
                   const asio::ip::tcp::endpoint& remote, core::guard::ClientKey& key) {
  asio::error_code ec;
  if (overloaded(worker.index)) {
    // Shedding: finish old work, take no new connection (closed before any TLS work).
    count_overload_rejection(worker.index);
    socket.close(ec);
    return false;
  }
  const std::size_t open = active_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (limits.max_connections != 0 && open > limits.max_connections) {
    active_.fetch_sub(1, std::memory_order_relaxed);
    count_rejection(worker.index, core::guard::Verdict::kAllowed);  // "connections"
    socket.close(ec);
    return false;
  }
  key = core::guard::ClientKey::from(core::runtime::from_asio(remote.address()),
                                     limits.client_prefix_v4, limits.client_prefix_v6);
  auto d = guard_.open_connection(key, core::guard::Clock::now());
  if (!d.allowed()) {
    active_.fetch_sub(1, std::memory_order_relaxed);
    count_rejection(worker.index, d.verdict);
    socket.close(ec);
    return false;
  }
  return true;
}

void Server::on_connection_open(std::size_t worker, bool tls) {
  // active_ was counted at accept (admit), so that max_connections holds there.
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

void Server::count_h2_connection(std::size_t worker) { h2_connections_.inc(worker); }
void Server::count_h2_stream(std::size_t worker) { h2_streams_.inc(worker); }
void Server::count_h2_client_reset(std::size_t worker) { h2_client_resets_.inc(worker); }
void Server::count_h2_defence(std::size_t worker, H2Defence defence) {
  h2_defences_[static_cast<int>(defence)].inc(worker);
}


asio::awaitable<void> Server::accept_loop(WorkerState& worker,
                                          std::shared_ptr<asio::ip::tcp::acceptor> acceptor,
                                          bool tls) {
  for (;;) {
    asio::error_code ec;
    asio::ip::tcp::endpoint remote;  // filled by accept itself: no getpeername per connection
    asio::ip::tcp::socket socket =
        co_await acceptor->async_accept(remote, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
      spdlog::warn("edge: accept failed: {}", ec.message());
      continue;
    }
    core::guard::ClientKey key;
    auto snapshot = snapshot_.load();  // once per connection: the session keeps it
    if (!admit(worker, snapshot->config->limits, socket, remote, key)) continue;
    auto session = std::make_shared<Session>(*this, worker, std::move(snapshot), std::move(socket),
                                             remote, tls, key);
    asio::co_spawn(acceptor->get_executor(), session->run(Session::Entry::kStart),
                   asio::detached);
  }
}

bool Server::reload() {
  auto load = load_edge_config(options_.config_path);
  core::runtime::log_reload_diagnostics(load.diagnostics);
  std::size_t main_shard = pool_.size();
  if (!load.config) {
    spdlog::error("reload: {} rejected; the running config stays", options_.config_path);
    reloads_->labels({"rejected"}).inc(main_shard);
    return false;
  }
  auto next = make_snapshot(load.config);
  if (!next) {
    const core::Error& e = next.error();
    spdlog::error("reload: {}: {}; the running config stays",
                  e.where.empty() ? options_.config_path : e.where, e.message);
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
  // Before publishing: members kept by the new config keep their health and counts.
  attach_pool_state(*load.config, old->config.get(), pool_.size(), ejections_);
  snapshot_.store(*next);
  health_->start(load.config);
  guard_.configure(guard_settings(load.config->limits));
  reloads_->labels({"applied"}).inc(main_shard);
  spdlog::info("reload: {} applied ({} routes, {} certificates)", options_.config_path,
               load.config->routes.size(), load.config->certificates.size());
  for (std::size_t t = 0; t < (*next)->tls->size(); ++t) {
    spdlog::info("reload: certificate {}{}", (*next)->tls->summary(t), t == 0 ? " (default)" : "");
  }
  return true;
}

int Server::run() {
  auto snapshot = snapshot_.load();
  const EdgeConfig& config = *snapshot->config;
  if (config.access_log == "off") {
    for (auto& w : workers_) w->access_records = false;  // no session runs yet
  } else {
    auto access = core::obs::AuditLog::open(config.access_log);
    if (!access) {
      spdlog::error("edge: {}", access.error().message);
      return 2;
    }
    access_ = std::move(*access);
    for (auto& w : workers_) w->access_batch->set_target(access_.get());  // no session runs yet
  }

  for (std::size_t t = 0; t < snapshot->tls->size(); ++t) {
    spdlog::info("edge: certificate {}{}", snapshot->tls->summary(t), t == 0 ? " (default)" : "");
  }
  log_tls_groups(*snapshot->tls);
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

  for (auto& w : workers_) {
    asio::co_spawn(pool_.worker(w->index).context(), overload_watch(*w), asio::detached);
  }
  health_->start(snapshot->config);
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
    health_->stop();
  };
  core::runtime::run_until_stopped(pool_, handlers, "edge");

  drain();
  if (admin_) admin_->stop();
  pool_.stop();
  flush_access_logs();
  return 0;
}

void Server::drain() {
  // Stop accepting, end idle keep-alive connections, give requests in flight the drain time,
  // then end them too. Every session writes its access record on the way out.
  auto left = core::runtime::drain(
      pool_, active_,
      [this](std::size_t i, bool force) {
        WorkerState& w = *workers_[i];
        asio::error_code ignored;
        for (auto& a : w.acceptors) a->close(ignored);
        for (Session* s : w.sessions) s->abort(force);
        w.upstreams.clear();
      },
      snapshot_.load()->config->limits.drain_timeout);
  if (left > 0) spdlog::warn("edge: {} connections still open at exit", left);
}

}  // namespace moat::edge

#include "core/runtime/process.hpp"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <thread>

#include <asio/post.hpp>

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <spdlog/spdlog.h>

namespace moat::core::runtime {

void run_until_stopped(WorkerPool& pool, const SignalHandlers& handlers, const char* mode) {
  sigset_t all;
  sigfillset(&all);
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &all, &previous);
  pool.start();
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);

  asio::io_context main;
  asio::signal_set signals(main, SIGHUP, SIGUSR1, SIGTERM);
  signals.add(SIGINT);
  std::function<void(const asio::error_code&, int)> on_signal = [&](const asio::error_code& ec,
                                                                    int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      if (handlers.reload) handlers.reload();
    } else if (sig == SIGUSR1) {
      if (handlers.reopen) handlers.reopen();
    } else {
      spdlog::info("{}: {} received, stopping", mode, sig == SIGTERM ? "SIGTERM" : "SIGINT");
      if (handlers.stop) handlers.stop();
      main.stop();
      return;
    }
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);
  spdlog::info("{}: {} worker{} ready", mode, pool.size(), pool.size() == 1 ? "" : "s");
  main.run();
}

std::size_t drain(WorkerPool& pool, const std::atomic<std::size_t>& active,
                  const std::function<void(std::size_t, bool)>& step,
                  std::chrono::milliseconds grace) {
  auto on_every_worker = [&](bool force) {
    for (std::size_t i = 0; i < pool.size(); ++i) {
      // `step` by value: a handler may run after drain() has returned.
      asio::post(pool.worker(i).context(), [step, i, force] { step(i, force); });
    }
  };
  auto wait_idle = [&](std::chrono::milliseconds budget) {
    auto deadline = std::chrono::steady_clock::now() + budget;
    while (active.load(std::memory_order_relaxed) > 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };
  on_every_worker(false);
  wait_idle(grace);
  on_every_worker(true);
  wait_idle(std::chrono::seconds(2));
  return active.load(std::memory_order_relaxed);
}

net::IpAddress from_asio(const asio::ip::address& a) {
  net::IpAddress out;
  if (a.is_v4()) {
    auto b = a.to_v4().to_bytes();
    out.family = net::IpAddress::Family::kV4;
    std::copy(b.begin(), b.end(), out.bytes.begin());
  } else {
    auto b = a.to_v6().to_bytes();
    out.family = net::IpAddress::Family::kV6;
    std::copy(b.begin(), b.end(), out.bytes.begin());
  }
  return out;
}

asio::ip::address to_asio(const net::IpAddress& a) {
  if (a.is_v4()) return asio::ip::address_v4({a.bytes[0], a.bytes[1], a.bytes[2], a.bytes[3]});
  asio::ip::address_v6::bytes_type b;
  std::copy(a.bytes.begin(), a.bytes.end(), b.begin());
  return asio::ip::address_v6(b);
}

void log_reload_diagnostics(const std::vector<config::Diagnostic>& diagnostics) {
  for (const auto& d : diagnostics) {
    if (d.severity == config::Severity::kError) {
      spdlog::error("reload: {}", config::format(d));
    } else {
      spdlog::warn("reload: {}", config::format(d));
    }
  }
}

}  // namespace moat::core::runtime

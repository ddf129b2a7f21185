// core/runtime: what every long-running mode does with the process: start its workers with
// signals blocked in them, then serve signals on the main thread until told to stop.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <vector>

#include <asio/ip/address.hpp>

#include "core/config/diagnostic.hpp"
#include "core/net/address.hpp"
#include "core/runtime/worker_pool.hpp"

namespace moat::core::runtime {

struct SignalHandlers {
  std::function<void()> reload;  // SIGHUP
  std::function<void()> reopen;  // SIGUSR1 (logs)
  std::function<void()> stop;    // SIGTERM or SIGINT, called once before run_until_stopped returns
};

// Starts the pool's threads with every signal blocked in them (so the main thread's
// signal_set receives them), then blocks, dispatching SIGHUP and SIGUSR1, until SIGTERM or
// SIGINT.
void run_until_stopped(WorkerPool& pool, const SignalHandlers& handlers, const char* mode);

// On SIGHUP: each problem of the new config on the log as "reload: file:line:column: ...",
// errors as errors and warnings as warnings.
void log_reload_diagnostics(const std::vector<config::Diagnostic>& diagnostics);

// Shutdown in two steps: posts `step(worker, false)` to every worker (stop accepting, end what
// can end now), waits until `active` is 0 or `grace` has passed, then posts `step(worker, true)`
// (end everything) and waits up to two more seconds. Returns the connections still open.
std::size_t drain(WorkerPool& pool, const std::atomic<std::size_t>& active,
                  const std::function<void(std::size_t worker, bool force)>& step,
                  std::chrono::milliseconds grace);

net::IpAddress from_asio(const asio::ip::address& address);
asio::ip::address to_asio(const net::IpAddress& address);

}  // namespace moat::core::runtime

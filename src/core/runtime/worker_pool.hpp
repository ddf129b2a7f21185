// core/runtime: shared-nothing workers. One thread and one asio::io_context per worker; each
// worker owns its listeners (SO_REUSEPORT), connections, pools and counters. A connection never
// changes worker. The main thread only handles signals and reloads.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include "core/base/result.hpp"

namespace moat::core::runtime {

class Worker {
 public:
  explicit Worker(std::size_t index);
  std::size_t index() const { return index_; }
  asio::io_context& context() { return context_; }

 private:
  std::size_t index_;
  // Concurrency hint 1: only this worker's thread runs the context, so Asio can skip locking.
  asio::io_context context_{1};
};

class WorkerPool {
 public:
  // `count` 0 means one per available core.
  explicit WorkerPool(std::size_t count);
  ~WorkerPool();

  std::size_t size() const { return workers_.size(); }
  Worker& worker(std::size_t i) { return *workers_[i]; }

  // Runs every worker's context on its own thread until stop(). Work must be posted first (or
  // posted later with asio::post(worker.context(), ...)); contexts are kept alive by a work guard.
  void start();
  // Stops every context and joins the threads.
  void stop();

 private:
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  std::vector<std::function<void()>> release_guards_;
};

// Opens a listening socket on `endpoint` with SO_REUSEADDR and SO_REUSEPORT, so each worker can
// have its own socket on the same port and the kernel spreads connections between them.
Result<asio::ip::tcp::acceptor> open_listener(asio::io_context& context,
                                              const asio::ip::tcp::endpoint& endpoint,
                                              int backlog = 4096);

// "127.0.0.1:3128", "[::1]:3128", ":3128" (all IPv4 addresses), "3128".
Result<asio::ip::tcp::endpoint> parse_listen_address(const std::string& text);

}  // namespace moat::core::runtime

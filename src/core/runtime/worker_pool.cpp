#include "core/runtime/worker_pool.hpp"

#include <sys/socket.h>

#include <asio/executor_work_guard.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/v6_only.hpp>
#include <fmt/format.h>

namespace moat::core::runtime {

Worker::Worker(std::size_t index) : index_(index) {}

WorkerPool::WorkerPool(std::size_t count) {
  if (count == 0) count = std::max(1u, std::thread::hardware_concurrency());
  for (std::size_t i = 0; i < count; ++i) workers_.push_back(std::make_unique<Worker>(i));
}

WorkerPool::~WorkerPool() { stop(); }

void WorkerPool::start() {
  for (auto& w : workers_) {
    auto guard = std::make_shared<asio::executor_work_guard<asio::io_context::executor_type>>(
        w->context().get_executor());
    release_guards_.push_back([guard] { guard->reset(); });
    threads_.emplace_back([&ctx = w->context()] { ctx.run(); });
  }
}

void WorkerPool::stop() {
  for (auto& release : release_guards_) release();
  release_guards_.clear();
  for (auto& w : workers_) w->context().stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

Result<asio::ip::tcp::acceptor> open_listener(asio::io_context& context,
                                              const asio::ip::tcp::endpoint& endpoint,
                                              int backlog) {
  asio::ip::tcp::acceptor acceptor(context);
  asio::error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) {
    int one = 1;
    if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      ec.assign(errno, asio::system_category());
    }
  }
  if (!ec && endpoint.address().is_v6()) acceptor.set_option(asio::ip::v6_only(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(backlog, ec);
  if (ec) {
    return Error::config("listen_failed",
                         fmt::format("cannot listen on {}:{}: {}", endpoint.address().to_string(),
                                     endpoint.port(), ec.message()));
  }
  return acceptor;
}

Result<asio::ip::tcp::endpoint> parse_listen_address(const std::string& text) {
  std::string host;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Error::config("listen_address", fmt::format("'{}': expected [IPv6]:PORT", text));
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else if (auto colon = text.rfind(':'); colon != std::string::npos) {
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  } else {
    port = text;
  }
  if (host.empty()) host = "0.0.0.0";
  unsigned long p = 0;
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos ||
      (p = std::stoul(port)) > 65535) {
    return Error::config("listen_address", fmt::format("'{}': the port must be 0..65535", text));
  }
  asio::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) {
    return Error::config("listen_address",
                         fmt::format("'{}': '{}' is not an IP address", text, host));
  }
  return asio::ip::tcp::endpoint(address, static_cast<unsigned short>(p));
}

}  // namespace moat::core::runtime

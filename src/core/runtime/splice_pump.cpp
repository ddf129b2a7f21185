#include "core/runtime/splice_pump.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <asio/co_spawn.hpp>
#include <asio/redirect_error.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

namespace moat::core::runtime {
namespace {

constexpr std::size_t kChunk = 1 << 16;  // the default pipe capacity
constexpr std::size_t kMaxFreePipes = 256;

void close_pipe(Pipe& p) {
  if (p.read_fd >= 0) ::close(p.read_fd);
  if (p.write_fd >= 0) ::close(p.write_fd);
  p = Pipe{};
}

using Clock = std::chrono::steady_clock;

struct Direction {
  asio::ip::tcp::socket& from;
  asio::ip::tcp::socket& to;
  PipePool& pipes;
  Pipe pipe;  // held only while bytes are in flight: an idle tunnel holds no pipe
  std::uint64_t bytes = 0;
  int error = 0;
};

// One direction: splice socket -> pipe -> socket, waiting for readiness with Asio when the
// kernel says EAGAIN. Ends on EOF (then half-closes `to`), error or cancellation.
asio::awaitable<void> pump_one(Direction& d, Clock::time_point& last_activity) {
  const int in = d.from.native_handle();
  const int out = d.to.native_handle();
  asio::error_code ec;
  for (;;) {
    if (!d.pipe.valid()) {
      d.pipe = d.pipes.acquire();
      if (!d.pipe.valid()) {
        d.error = errno == 0 ? EMFILE : errno;
        co_return;
      }
    }
    ssize_t n = ::splice(in, nullptr, d.pipe.write_fd, nullptr, kChunk,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n == 0) break;  // end of stream from `from`
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        d.pipes.release(d.pipe);  // empty here: back to the pool while we wait
        co_await d.from.async_wait(asio::socket_base::wait_read,
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
        continue;
      }
      d.error = errno;
      co_return;
    }
    d.pipe.buffered += static_cast<std::size_t>(n);
    last_activity = Clock::now();
    while (d.pipe.buffered > 0) {
      ssize_t m = ::splice(d.pipe.read_fd, nullptr, out, nullptr, d.pipe.buffered,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (m < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {
          co_await d.to.async_wait(asio::socket_base::wait_write,
                                   asio::redirect_error(asio::use_awaitable, ec));
          if (ec) co_return;
          continue;
        }
        d.error = errno;
        co_return;
      }
      d.pipe.buffered -= static_cast<std::size_t>(m);
      d.bytes += static_cast<std::uint64_t>(m);
    }
  }
  // Pass the end of stream on; the other direction may still carry data (half-close).
  d.to.shutdown(asio::socket_base::shutdown_send, ec);
}

}  // namespace

PipePool::~PipePool() {
  for (auto& p : free_) close_pipe(p);
}

Pipe PipePool::acquire() {
  if (!free_.empty()) {
    Pipe p = free_.back();
    free_.pop_back();
    return p;
  }
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return Pipe{};
  return Pipe{fds[0], fds[1], 0};
}

void PipePool::release(Pipe& pipe) {
  if (!pipe.valid()) return;
  if (pipe.buffered == 0 && free_.size() < kMaxFreePipes) {
    free_.push_back(pipe);
    pipe = Pipe{};
  } else {
    close_pipe(pipe);
  }
}

asio::awaitable<PumpResult> splice_pump(asio::ip::tcp::socket& a, asio::ip::tcp::socket& b,
                                        PipePool& pipes, std::chrono::milliseconds idle) {
  using namespace asio::experimental::awaitable_operators;
  PumpResult result;
  a.native_non_blocking(true);
  b.native_non_blocking(true);
  Direction up{a, b, pipes, Pipe{}};
  Direction down{b, a, pipes, Pipe{}};

  Clock::time_point last_activity = Clock::now();
  bool idle_expired = false;
  // The idle watchdog wakes a few times per period instead of being re-armed per chunk.
  asio::steady_timer watchdog(co_await asio::this_coro::executor);
  auto check_idle = [&]() -> asio::awaitable<void> {
    auto period = std::max<std::chrono::milliseconds>(idle / 4, std::chrono::milliseconds(50));
    asio::error_code ec;
    for (;;) {
      watchdog.expires_after(period);
      co_await watchdog.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      if (Clock::now() - last_activity >= idle) {
        idle_expired = true;
        co_return;
      }
    }
  };

  // Both directions to completion, or the idle watchdog first (which cancels them).
  co_await ((pump_one(up, last_activity) && pump_one(down, last_activity)) || check_idle());

  result.bytes_up = up.bytes;
  result.bytes_down = down.bytes;
  result.idle_timeout = idle_expired;
  result.error = up.error != 0 ? up.error : down.error;
  pipes.release(up.pipe);
  pipes.release(down.pipe);
  co_return result;
}

}  // namespace moat::core::runtime

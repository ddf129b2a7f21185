// core/runtime: moving a tunnel's bytes between two sockets with splice(2) through a pipe, so
// the payload never enters user space. Used once a tunnel's checks are done.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

namespace moat::core::runtime {

// A kernel pipe used as the splice buffer. Reused between tunnels of one worker.
struct Pipe {
  int read_fd = -1;
  int write_fd = -1;
  std::size_t buffered = 0;  // bytes inside the pipe
  bool valid() const { return read_fd >= 0; }
};

// Per-worker cache of pipes: creating two pipes per tunnel costs two syscalls and two fcntl.
class PipePool {
 public:
  PipePool() = default;
  ~PipePool();
  PipePool(const PipePool&) = delete;
  PipePool& operator=(const PipePool&) = delete;

  // A fresh or recycled, empty pipe; invalid (read_fd < 0) if the kernel refused one.
  Pipe acquire();
  // Keeps the pipe for reuse if it is empty, else closes it.
  void release(Pipe& pipe);

 private:
  std::vector<Pipe> free_;
};

struct PumpResult {
  std::uint64_t bytes_up = 0;    // a -> b
  std::uint64_t bytes_down = 0;  // b -> a
  bool idle_timeout = false;
  int error = 0;  // errno of the first hard error, 0 on clean close
};

// Copies a -> b and b -> a until both directions have seen end of stream (each EOF is passed
// on as a shutdown of the other socket's write side), a hard error, or no byte moved in either
// direction for `idle`. Sockets are made non-blocking.
asio::awaitable<PumpResult> splice_pump(asio::ip::tcp::socket& a, asio::ip::tcp::socket& b,
                                        PipePool& pipes, std::chrono::milliseconds idle);

}  // namespace moat::core::runtime

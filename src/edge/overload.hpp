// edge: overload detection. Each worker ticks every kOverloadTick and compares when the tick was
// due with when it ran: the difference is the time its event loop was busy with other work (the
// lag). The process's resident memory is read from /proc/self/statm at the same tick. Over either
// threshold the edge sheds new work (connections closed at accept, new requests 503) and finishes
// what it has started. Pure here; the ticking lives in Server.
#pragma once

#include <chrono>
#include <cstdint>

namespace moat::edge {

inline constexpr std::chrono::milliseconds kOverloadTick{100};

// Lag with hysteresis: a single late tick (a long GC-like pause, a burst of handshakes) is not
// overload; kTicksToChange late ticks in a row are, and as many on-time ticks in a row end it.
class LagDetector {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr int kTicksToChange = 2;

  // A tick due at `due` ran at `ran`. `threshold` 0 turns detection off. Returns overloaded().
  bool observe(Clock::time_point due, Clock::time_point ran, std::chrono::milliseconds threshold);
  bool overloaded() const { return overloaded_; }
  std::chrono::milliseconds last_lag() const { return last_lag_; }

 private:
  int streak_ = 0;  // consecutive ticks on the other side of the threshold
  bool overloaded_ = false;
  std::chrono::milliseconds last_lag_{0};
};

// The process's resident set in bytes (/proc/self/statm), 0 if it cannot be read.
std::uint64_t resident_bytes();

}  // namespace moat::edge

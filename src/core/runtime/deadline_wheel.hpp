// core/runtime: coarse per-worker deadlines. Arming one is a store of a time point: no timer
// object, no system call. Asio keeps its timers in a timerfd and re-arms it whenever the
// earliest timer changes, which a per-request deadline (armed and cancelled for every read) does
// all the time: one timerfd_settime(2) per request. Here one timer per worker ticks every
// `granularity` and fires what has expired, so a deadline fires between `timeout` and
// `timeout + granularity` after it was armed: fine for limits of seconds (slowloris, idle).
// Single-threaded: a wheel and its entries belong to one worker's io_context.
#pragma once

#include <chrono>
#include <cstddef>

#include <asio/any_io_executor.hpp>
#include <asio/steady_timer.hpp>

namespace moat::core::runtime {

class DeadlineWheel;

// One deadline, embedded in the object it guards (a session). Unlinks itself on destruction; one
// that outlives its wheel (a coroutine frame destroyed with the io_context) was detached by it.
class Deadline {
 public:
  using Clock = std::chrono::steady_clock;
  // `on_expiry(context)` runs on the worker's thread when the armed deadline passes; the
  // deadline is disarmed before the call, so the callback may arm it again.
  Deadline(DeadlineWheel& wheel, void (*on_expiry)(void* context), void* context);
  ~Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  void arm(std::chrono::milliseconds timeout) { arm_at(Clock::now() + timeout); }
  void arm_at(Clock::time_point when);
  void disarm() { armed_ = false; }
  bool armed() const { return armed_; }
  Clock::time_point when() const { return when_; }

 private:
  friend class DeadlineWheel;
  DeadlineWheel* wheel_;  // null once the wheel is gone
  void (*on_expiry_)(void*);
  void* context_;
  Clock::time_point when_{};
  bool armed_ = false;
  Deadline* prev_ = nullptr;  // intrusive list of every Deadline of the wheel
  Deadline* next_ = nullptr;
};

class DeadlineWheel {
 public:
  explicit DeadlineWheel(asio::any_io_executor executor,
                         std::chrono::milliseconds granularity = std::chrono::milliseconds(100));
  ~DeadlineWheel();
  DeadlineWheel(const DeadlineWheel&) = delete;
  DeadlineWheel& operator=(const DeadlineWheel&) = delete;

  // Fires every armed deadline at or before `now`. The ticking timer calls it; tests may too.
  std::size_t expire(Deadline::Clock::time_point now);
  // Stops ticking (at shutdown: lets the io_context run out of work).
  void stop();
  std::size_t size() const { return size_; }
  std::chrono::milliseconds granularity() const { return granularity_; }

 private:
  friend class Deadline;
  void link(Deadline& d);
  void unlink(Deadline& d);
  void schedule();  // starts the ticking timer if it is not running
  void tick();

  asio::steady_timer timer_;
  std::chrono::milliseconds granularity_;
  Deadline* head_ = nullptr;
  std::size_t size_ = 0;
  std::size_t armed_hint_ = 0;  // arms since the last tick: no arm, no need to keep ticking
  bool ticking_ = false;
  bool stopped_ = false;
  Deadline* cursor_ = nullptr;  // the next entry expire() visits (robust to unlink in a callback)
};

}  // namespace moat::core::runtime

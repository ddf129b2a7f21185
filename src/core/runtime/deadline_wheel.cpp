#include "core/runtime/deadline_wheel.hpp"

namespace moat::core::runtime {

Deadline::Deadline(DeadlineWheel& wheel, void (*on_expiry)(void*), void* context)
    : wheel_(&wheel), on_expiry_(on_expiry), context_(context) {
  wheel_->link(*this);
}

Deadline::~Deadline() {
  if (wheel_ != nullptr) wheel_->unlink(*this);
}

void Deadline::arm_at(Clock::time_point when) {
  when_ = when;
  armed_ = true;
  if (wheel_ == nullptr) return;
  ++wheel_->armed_hint_;
  wheel_->schedule();
}

DeadlineWheel::DeadlineWheel(asio::any_io_executor executor, std::chrono::milliseconds granularity)
    : timer_(std::move(executor)), granularity_(granularity) {}

DeadlineWheel::~DeadlineWheel() {
  stop();
  // Entries outliving the wheel would dangle; detach them (their destructors then do nothing).
  for (Deadline* d = head_; d != nullptr;) {
    Deadline* next = d->next_;
    d->prev_ = d->next_ = nullptr;
    d->wheel_ = nullptr;
    d = next;
  }
  head_ = nullptr;
}

void DeadlineWheel::link(Deadline& d) {
  d.prev_ = nullptr;
  d.next_ = head_;
  if (head_ != nullptr) head_->prev_ = &d;
  head_ = &d;
  ++size_;
}

void DeadlineWheel::unlink(Deadline& d) {
  if (cursor_ == &d) cursor_ = d.next_;
  if (d.prev_ != nullptr) d.prev_->next_ = d.next_;
  else head_ = d.next_;
  if (d.next_ != nullptr) d.next_->prev_ = d.prev_;
  d.prev_ = d.next_ = nullptr;
  --size_;
}

std::size_t DeadlineWheel::expire(Deadline::Clock::time_point now) {
  std::size_t fired = 0;
  for (cursor_ = head_; cursor_ != nullptr;) {
    Deadline* d = cursor_;
    cursor_ = d->next_;
    if (d->armed_ && d->when_ <= now) {
      d->armed_ = false;
      ++fired;
      d->on_expiry_(d->context_);  // may destroy or re-arm d, or unlink others (cursor_ follows)
    }
  }
  return fired;
}

void DeadlineWheel::stop() {
  stopped_ = true;
  timer_.cancel();
}

void DeadlineWheel::schedule() {
  if (ticking_ || stopped_) return;
  ticking_ = true;
  armed_hint_ = 0;
  timer_.expires_after(granularity_);
  timer_.async_wait([this](const asio::error_code& ec) {
    ticking_ = false;
    if (ec || stopped_) return;
    tick();
  });
}

void DeadlineWheel::tick() {
  expire(Deadline::Clock::now());
  bool any_armed = armed_hint_ > 0;
  for (Deadline* d = head_; d != nullptr && !any_armed; d = d->next_) any_armed = d->armed_;
  if (any_armed) schedule();  // else idle: the next arm() starts the timer again
}

}  // namespace moat::core::runtime

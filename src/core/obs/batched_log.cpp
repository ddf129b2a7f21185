#include "core/obs/batched_log.hpp"

namespace moat::core::obs {

BatchedLog::BatchedLog(runtime::DeadlineWheel& wheel, std::size_t capacity,
                       std::chrono::milliseconds delay)
    : capacity_(capacity), delay_(delay), flush_at_(wheel, &BatchedLog::on_delay, this) {
  buffer_.reserve(capacity_);
}

BatchedLog::~BatchedLog() { flush(); }

void BatchedLog::on_delay(void* self) { static_cast<BatchedLog*>(self)->flush(); }

void BatchedLog::set_target(AuditLog* log) {
  flush();
  log_ = log;
}

bool BatchedLog::add(std::string_view json_line) {
  if (log_ == nullptr) return false;
  if (capacity_ == 0 || json_line.size() + 1 > capacity_) {
    flush();  // keep the order of records
    return log_->write(json_line);
  }
  if (json_line.find('\n') != std::string_view::npos) return log_->write(json_line);  // counted
  if (buffer_.size() + json_line.size() + 1 > capacity_) flush();
  if (buffer_.empty()) flush_at_.arm(delay_);
  buffer_.append(json_line);
  buffer_.push_back('\n');
  return true;
}

void BatchedLog::flush() {
  flush_at_.disarm();
  if (buffer_.empty() || log_ == nullptr) {
    buffer_.clear();
    return;
  }
  log_->write_block(buffer_);
  buffer_.clear();
}

}  // namespace moat::core::obs

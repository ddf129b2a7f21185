// core/obs: BatchedLog, one worker's buffer in front of an AuditLog. Records are appended to a
// buffer and written as one block when it is full or `delay` after the first record of a batch
// (nginx's `access_log ... buffer= flush=`): one write(2) per batch instead of one per request.
// A block holds whole lines only and the file is O_APPEND, so batches of different workers never
// interleave inside a record. Not thread-safe: one per worker, used on its thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "core/obs/audit_log.hpp"
#include "core/runtime/deadline_wheel.hpp"

namespace moat::core::obs {

class BatchedLog {
 public:
  // `capacity` 0: no buffering, every record is written at once (AuditLog::write).
  BatchedLog(runtime::DeadlineWheel& wheel, std::size_t capacity,
             std::chrono::milliseconds delay = std::chrono::milliseconds(100));
  ~BatchedLog();  // flushes
  BatchedLog(const BatchedLog&) = delete;
  BatchedLog& operator=(const BatchedLog&) = delete;

  // Where records go from now on (after a reload or reopen); flushes what was buffered first.
  // Null: records are dropped (no log configured).
  void set_target(AuditLog* log);
  // Appends one record (no newline inside; AuditLog's rule). Returns false if it was dropped.
  bool add(std::string_view json_line);
  void flush();
  std::size_t buffered() const { return buffer_.size(); }

 private:
  static void on_delay(void* self);

  AuditLog* log_ = nullptr;
  std::size_t capacity_;
  std::chrono::milliseconds delay_;
  std::string buffer_;
  runtime::Deadline flush_at_;
};

}  // namespace moat::core::obs

// core/obs: AuditLog, the append-only sink for audit and access records: one JSON object per
// line, to a file or stdout. Workers write concurrently without a lock: each record is one
// writev(2) on an O_APPEND descriptor, which the kernel appends as a unit, so records from
// different workers never interleave. reopen() (logrotate, SIGUSR1) swaps the file under the same
// descriptor number with dup3(2), so a writer never sees a closed or half-swapped descriptor.
// Failures are counted, never thrown: losing a log line must not take a connection down.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/base/result.hpp"

namespace moat::core::obs {

class AuditLog {
 public:
  // "-" or "stdout": standard output (never closed, reopen() is a no-op). Anything else: a file
  // opened O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, created with mode 0640.
  static Result<std::unique_ptr<AuditLog>> open(std::string path);

  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Appends `json_line` and a newline in one system call. Thread-safe, lock-free,
  // allocation-free. Returns false if the record was dropped (and counted): an I/O error, or a
  // line that contains '\n' (it would split into two records; JsonLine never produces one).
  // Records above PIPE_BUF (4 KiB) may still interleave when the target is a pipe, not a file.
  bool write(std::string_view json_line);
  // Appends a block of whole records, each ending in '\n' (BatchedLog's buffer), in as few
  // system calls as the kernel allows. False if any part was lost (counted as a write error).
  bool write_block(std::string_view lines);

  // Opens the path again and makes the descriptor in use point at the new file. Call it from
  // the thread that handles SIGUSR1 (not from inside a signal handler). On failure the old file
  // stays in use and the error is counted and returned.
  Result<void> reopen();

  const std::string& path() const { return path_; }
  bool is_stdout() const { return !owns_fd_; }

  struct Stats {
    std::uint64_t write_errors = 0;   // records lost (EIO, ENOSPC, EBADF, EAGAIN, ...)
    std::uint64_t short_writes = 0;   // records completed by a second call (may be torn)
    std::uint64_t rejected = 0;       // records refused because they contain '\n'
    std::uint64_t reopen_errors = 0;  // reopen() failures
    std::uint64_t reopens = 0;        // successful reopen() calls
  };
  // Errors are rare, so these are plain shared atomics rather than per-worker shards.
  Stats stats() const;

 private:
  AuditLog(std::string path, int fd, bool owns_fd);

  const std::string path_;
  // Never changes for the object's lifetime: reopen() replaces the open file behind it.
  const int fd_;
  const bool owns_fd_;
  std::mutex reopen_mutex_;  // serialises reopen() callers; writers never take it
  std::atomic<std::uint64_t> write_errors_{0};
  std::atomic<std::uint64_t> short_writes_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::atomic<std::uint64_t> reopen_errors_{0};
  std::atomic<std::uint64_t> reopens_{0};
};

}  // namespace moat::core::obs

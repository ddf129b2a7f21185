#include "core/obs/audit_log.hpp"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace moat::core::obs {

namespace {

constexpr int kOpenFlags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC;
constexpr mode_t kFileMode = 0640;

int open_file(const std::string& path) {
  int fd = -1;
  do {
    fd = ::open(path.c_str(), kOpenFlags, kFileMode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

Error os_error(const char* code, const std::string& what, int err) {
  return Error::config(code, what + ": " + std::strerror(err));
}

}  // namespace

Result<std::unique_ptr<AuditLog>> AuditLog::open(std::string path) {
  if (path == "-" || path == "stdout") {
    return std::unique_ptr<AuditLog>(new AuditLog(std::move(path), STDOUT_FILENO, false));
  }
  if (path.empty()) return Error::config("audit_log_path", "the audit log path is empty");
  const int fd = open_file(path);
  if (fd < 0) return os_error("audit_log_open", "cannot open audit log " + path, errno);
  return std::unique_ptr<AuditLog>(new AuditLog(std::move(path), fd, true));
}

AuditLog::AuditLog(std::string path, int fd, bool owns_fd)
    : path_(std::move(path)), fd_(fd), owns_fd_(owns_fd) {}

AuditLog::~AuditLog() {
  if (owns_fd_) ::close(fd_);
}

bool AuditLog::write(std::string_view json_line) {
  if (json_line.find('\n') != std::string_view::npos) {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  // One writev(2) for record + newline: no copy into a scratch buffer, and with O_APPEND the
  // kernel positions and writes the whole iovec under the inode lock, so concurrent records
  // never interleave.
  static constexpr char kNewline = '\n';
  const std::size_t total = json_line.size() + 1;
  std::size_t done = 0;
  bool first = true;
  while (done < total) {
    iovec parts[2];
    int count = 0;
    if (done < json_line.size()) {
      parts[count++] = {const_cast<char*>(json_line.data() + done), json_line.size() - done};
    }
    parts[count++] = {const_cast<char*>(&kNewline), 1};
    const ssize_t n = ::writev(fd_, parts, count);
    if (n < 0) {
      if (errno == EINTR) continue;  // interrupted before anything was written: retry
      write_errors_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (n == 0) {  // cannot happen for a non-empty write; do not spin if it does
      write_errors_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    // A short write (a signal during a large write, or the disk filling up) leaves the rest to a
    // second call, which another writer's record may precede: counted so it can be noticed.
    if (first && static_cast<std::size_t>(n) < total) {
      short_writes_.fetch_add(1, std::memory_order_relaxed);
    }
    first = false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

bool AuditLog::write_block(std::string_view lines) {
  std::size_t done = 0;
  while (done < lines.size()) {
    const ssize_t n = ::write(fd_, lines.data() + done, lines.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      write_errors_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (done == 0 && static_cast<std::size_t>(n) < lines.size()) {
      short_writes_.fetch_add(1, std::memory_order_relaxed);
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

Result<void> AuditLog::reopen() {
  if (!owns_fd_) return {};  // stdout belongs to whoever started us (journald, a pipe)
  std::lock_guard lock(reopen_mutex_);
  const int fresh = open_file(path_);
  if (fresh < 0) {
    const int err = errno;
    reopen_errors_.fetch_add(1, std::memory_order_relaxed);
    return os_error("audit_log_reopen", "cannot reopen audit log " + path_, err);
  }
  // The trick: dup3 atomically makes fd_ refer to the new open file, closing the old one. Writers
  // keep using the same number and never see it closed or reused by someone else; a writev
  // already in progress holds its own reference to the old file and completes there, whole.
  // dup3 rather than dup2 so that fd_ keeps O_CLOEXEC (dup2 clears it).
  int rc = -1;
  do {
    rc = ::dup3(fresh, fd_, O_CLOEXEC);
  } while (rc < 0 && errno == EINTR);
  const int err = errno;
  ::close(fresh);
  if (rc < 0) {
    reopen_errors_.fetch_add(1, std::memory_order_relaxed);
    return os_error("audit_log_reopen", "cannot swap audit log " + path_, err);
  }
  reopens_.fetch_add(1, std::memory_order_relaxed);
  return {};
}

AuditLog::Stats AuditLog::stats() const {
  Stats s;
  s.write_errors = write_errors_.load(std::memory_order_relaxed);
  s.short_writes = short_writes_.load(std::memory_order_relaxed);
  s.rejected = rejected_.load(std::memory_order_relaxed);
  s.reopen_errors = reopen_errors_.load(std::memory_order_relaxed);
  s.reopens = reopens_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace moat::core::obs

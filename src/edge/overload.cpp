#include "edge/overload.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

namespace moat::edge {

bool LagDetector::observe(Clock::time_point due, Clock::time_point ran,
                          std::chrono::milliseconds threshold) {
  last_lag_ = ran > due ? std::chrono::duration_cast<std::chrono::milliseconds>(ran - due)
                        : std::chrono::milliseconds(0);
  if (threshold.count() == 0) {
    streak_ = 0;
    overloaded_ = false;
    return false;
  }
  const bool late = last_lag_ > threshold;
  if (late == overloaded_) {
    streak_ = 0;
  } else if (++streak_ >= kTicksToChange) {
    overloaded_ = late;
    streak_ = 0;
  }
  return overloaded_;
}

std::uint64_t resident_bytes() {
  // open/read rather than stdio: no allocation, one small read per tick.
  int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buffer[128];
  ssize_t n = ::read(fd, buffer, sizeof buffer - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buffer[n] = '\0';
  unsigned long long size = 0, resident = 0;
  if (std::sscanf(buffer, "%llu %llu", &size, &resident) != 2) return 0;
  return static_cast<std::uint64_t>(resident) * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace moat::edge

// core/runtime: an immutable configuration snapshot swapped atomically on reload. Workers load
// it at the start of each connection; a connection keeps the snapshot it started with.
#pragma once

#include <atomic>
#include <memory>

namespace moat::core::runtime {

template <typename T>
class Snapshot {
 public:
  explicit Snapshot(std::shared_ptr<const T> initial) : current_(std::move(initial)) {}

  std::shared_ptr<const T> load() const { return current_.load(std::memory_order_acquire); }
  void store(std::shared_ptr<const T> next) {
    current_.store(std::move(next), std::memory_order_release);
  }

 private:
  std::atomic<std::shared_ptr<const T>> current_;
};

}  // namespace moat::core::runtime

// core/base: vocabulary shared by every layer: Result<T> and Error (errors as values).
#pragma once

#include <cassert>
#include <cstddef>
#include <string>
#include <utility>
#include <variant>

namespace moat::core {

// Who caused an error: decides log wording, HTTP status and whether a retry can help.
enum class ErrorSource { kInput, kConfig, kDownstream, kUpstream, kInternal };

const char* to_string(ErrorSource source);

// An expected failure, carried as a value. `code` is a short stable token for logs and metrics
// ("pem_truncated", "connect_timeout"); `message` is the sentence a user reads.
struct Error {
  std::string code;
  std::string message;
  ErrorSource source = ErrorSource::kInternal;
  bool retryable = false;
  std::string hint;                 // optional: what the user can do about it
  std::size_t offset = kNoOffset;   // optional: byte offset of the problem in the parsed input
  std::string where;                // optional: "file:line:column" of the config item at fault

  static constexpr std::size_t kNoOffset = static_cast<std::size_t>(-1);

  Error with_hint(std::string h) && {
    hint = std::move(h);
    return std::move(*this);
  }
  Error at(std::size_t o) && {
    offset = o;
    return std::move(*this);
  }
  Error located(std::string w) && {
    where = std::move(w);
    return std::move(*this);
  }

  static Error input(std::string code, std::string message) {
    return make(std::move(code), std::move(message), ErrorSource::kInput, false);
  }
  static Error config(std::string code, std::string message) {
    return make(std::move(code), std::move(message), ErrorSource::kConfig, false);
  }
  static Error upstream(std::string code, std::string message, bool retryable = false) {
    return make(std::move(code), std::move(message), ErrorSource::kUpstream, retryable);
  }
  static Error internal(std::string code, std::string message) {
    return make(std::move(code), std::move(message), ErrorSource::kInternal, false);
  }
  static Error make(std::string code, std::string message, ErrorSource source, bool retryable) {
    Error e;
    e.code = std::move(code);
    e.message = std::move(message);
    e.source = source;
    e.retryable = retryable;
    return e;
  }
};

// A value or an Error, shaped like C++23 std::expected (which gcc 12 lacks).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit
  Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(state_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(state_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(state_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(state_);
  }

 private:
  std::variant<T, Error> state_;
};

// Result<void>: success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace moat::core

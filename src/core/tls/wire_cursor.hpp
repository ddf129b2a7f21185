// core/tls: bounds-checked reading of TLS wire structures, shared by the handshake readers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "core/tls/handshake.hpp"

namespace moat::core::tls::wire {

// Bounds-checked reading of TLS presentation-language vectors (RFC 8446 3). `base` is the offset
// of data[0] inside the handshake message, for error offsets.
class Cursor {
 public:
  Cursor(std::span<const std::uint8_t> data, std::size_t base) : data_(data), base_(base) {}

  bool empty() const { return pos_ == data_.size(); }
  std::size_t offset() const { return base_ + pos_; }
  std::span<const std::uint8_t> rest() const { return data_.subspan(pos_); }

  bool u8(std::uint8_t& out) {
    if (data_.size() - pos_ < 1) return false;
    out = data_[pos_++];
    return true;
  }
  bool u16(std::uint16_t& out) {
    if (data_.size() - pos_ < 2) return false;
    out = static_cast<std::uint16_t>((data_[pos_] << 8) | data_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool u24(std::size_t& out) {
    if (data_.size() - pos_ < 3) return false;
    out = (std::size_t{data_[pos_]} << 16) | (std::size_t{data_[pos_ + 1]} << 8) | data_[pos_ + 2];
    pos_ += 3;
    return true;
  }
  bool bytes(std::size_t n, std::span<const std::uint8_t>& out) {
    if (data_.size() - pos_ < n) return false;
    out = data_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  bool vec8(std::span<const std::uint8_t>& out) {
    std::uint8_t n = 0;
    const std::size_t start = pos_;
    if (!u8(n) || !bytes(n, out)) return rewind(start);
    return true;
  }
  bool vec16(std::span<const std::uint8_t>& out) {
    std::uint16_t n = 0;
    const std::size_t start = pos_;
    if (!u16(n) || !bytes(n, out)) return rewind(start);
    return true;
  }
  bool vec24(std::span<const std::uint8_t>& out) {
    std::size_t n = 0;
    const std::size_t start = pos_;
    if (!u24(n) || !bytes(n, out)) return rewind(start);
    return true;
  }

 private:
  bool rewind(std::size_t to) {
    pos_ = to;
    return false;
  }

  std::span<const std::uint8_t> data_;
  std::size_t base_;
  std::size_t pos_ = 0;
};

// A failure inside a message: code, message, alert, offset within the message.
struct Failure {
  std::string_view code;
  std::string_view message;
  Alert alert = Alert::kDecodeError;
  std::size_t offset = 0;
};

}  // namespace moat::core::tls::wire

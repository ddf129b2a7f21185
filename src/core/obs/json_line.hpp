// core/obs: JsonLine, a small builder for one flat JSON object (an audit or access record)
// without nlohmann on the hot path. Strings are always escaped to valid JSON: records carry
// attacker-controlled bytes (CONNECT host, SNI), so control bytes, quotes, backslashes and
// invalid UTF-8 must never break the line or the parser downstream. Keep one per worker and
// reuse it: clear() keeps the capacity, so a steady state allocates nothing.
#pragma once

#include <chrono>
#include <charconv>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moat::core::obs {

// Appends `value` as a JSON string literal, quotes included (RFC 8259 section 7):
// - `"` and `\` are escaped; \b \f \n \r \t use their short forms; other bytes below 0x20 and
//   DEL become \u00XX;
// - U+2028 and U+2029 become \u2028 / \u2029 (valid JSON, but they end lines in JavaScript and
//   in some log viewers);
// - each byte that does not start a well-formed UTF-8 sequence becomes U+FFFD, so the output is
//   always valid UTF-8.
void append_json_string(std::string& out, std::string_view value);

// "2024-05-01T12:34:56.789Z": ISO 8601 / RFC 3339, UTC, milliseconds (truncated), always 24
// bytes. Needs no time zone database and takes no lock (unlike localtime).
inline constexpr std::size_t kTimestampLength = 24;
void format_timestamp_utc(std::chrono::system_clock::time_point time,
                          char (&out)[kTimestampLength]);
std::string timestamp_utc(std::chrono::system_clock::time_point time);

class JsonLine {
 public:
  explicit JsonLine(std::size_t reserve = 1024);

  // Starts a new, empty object; keeps the buffer's capacity.
  JsonLine& clear();

  JsonLine& add(std::string_view key, std::string_view value);
  // A literal would otherwise pick the bool overload. nullptr writes null.
  JsonLine& add(std::string_view key, const char* value);
  JsonLine& add(std::string_view key, bool value);
  template <std::integral T>
    requires(!std::same_as<T, bool> && !std::same_as<T, char>)
  JsonLine& add(std::string_view key, T value) {
    begin_member(key);
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
    buffer_.append(digits, end);
    buffer_ += '}';
    return *this;
  }
  // JSON has no NaN or infinity: those are written as null.
  JsonLine& add(std::string_view key, double value);
  JsonLine& add_null(std::string_view key);
  JsonLine& add_timestamp(std::string_view key, std::chrono::system_clock::time_point time);

  // The complete object, without a trailing newline (AuditLog::write adds it). Valid after every
  // call; invalidated by the next add or clear.
  std::string_view view() const { return buffer_; }

 private:
  // Removes the closing brace, writes the separator and `"key":`.
  void begin_member(std::string_view key);

  std::string buffer_;  // always a complete object: "{}" or "{...}"
};

}  // namespace moat::core::obs

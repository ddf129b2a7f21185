// core/http: the RFC 9110 character classes and list syntax shared by the request and response
// parsers, and the one Content-Length reader both use.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string_view>

namespace moat::core::http::syntax {

// RFC 9110 5.6.2: tchar.
constexpr bool is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

inline bool is_token(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return is_tchar(static_cast<unsigned char>(c)); });
}

// Field lines: field-vchar (VCHAR / obs-text), SP, HTAB (RFC 9110 5.5). NUL, other controls and
// DEL are refused (RFC 9110 5.5: a recipient of CR, LF or NUL in a value MUST reject or replace).
constexpr bool is_field_byte(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }
constexpr bool is_ows(char c) { return c == ' ' || c == '\t'; }
constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }
constexpr char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

inline std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

// Calls fn(element) for each comma-separated element of a list value, OWS trimmed (RFC 9110
// 5.6.1), empty elements included; stops early and returns false when fn returns false.
template <typename F>
bool for_each_element(std::string_view value, F&& fn) {
  for (;;) {
    const auto comma = value.find(',');
    if (!fn(trim_ows(value.substr(0, comma)))) return false;
    if (comma == std::string_view::npos) return true;
    value.remove_prefix(comma + 1);
  }
}

// RFC 9110 8.6: Content-Length = 1*DIGIT; a list of identical values may be taken as one.
// At most 18 digits (always fits). Fed every Content-Length field value in turn.
class ContentLengthReader {
 public:
  enum class State { kOk, kMalformed, kConflicting };
  explicit ContentLengthReader(bool allow_leading_zeros) : allow_leading_zeros_(allow_leading_zeros) {}

  State add(std::string_view field_value) {
    for_each_element(field_value, [&](std::string_view element) {
      if (element.empty() || element.size() > 18 ||
          (!allow_leading_zeros_ && element.size() > 1 && element[0] == '0') ||
          !std::all_of(element.begin(), element.end(), is_digit)) {
        state_ = State::kMalformed;
        return false;
      }
      std::uint64_t value = 0;
      for (const char c : element) value = value * 10 + static_cast<std::uint64_t>(c - '0');
      if (length_ && *length_ != value) {
        state_ = State::kConflicting;
        return false;
      }
      length_ = value;
      return true;
    });
    return state_;
  }
  State state() const { return state_; }
  std::uint64_t length() const { return length_.value_or(0); }

 private:
  bool allow_leading_zeros_;
  State state_ = State::kOk;
  std::optional<std::uint64_t> length_;
};

}  // namespace moat::core::http::syntax

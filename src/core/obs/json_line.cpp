#include "core/obs/json_line.hpp"

#include <cmath>

#include "core/obs/utf8.hpp"

namespace moat::core::obs {

void append_json_string(std::string& out, std::string_view value) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (std::size_t i = 0; i < value.size();) {
    // The common case, a run of printable ASCII that needs no escape, is copied at once.
    std::size_t plain = i;
    while (plain < value.size()) {
      const auto b = static_cast<unsigned char>(value[plain]);
      if (b < 0x20 || b >= 0x7f || b == '"' || b == '\\') break;
      ++plain;
    }
    if (plain > i) {
      out.append(value.data() + i, plain - i);
      i = plain;
      continue;
    }
    const auto c = static_cast<unsigned char>(value[i]);
    if (c >= 0x80) {
      const std::size_t n = detail::utf8_sequence_length(value, i);
      if (n == 0) {
        out.append(detail::kReplacementCharacter);
        ++i;
      } else if (n == 3 && c == 0xE2 && static_cast<unsigned char>(value[i + 1]) == 0x80 &&
                 (static_cast<unsigned char>(value[i + 2]) & 0xFE) == 0xA8) {
        out += static_cast<unsigned char>(value[i + 2]) == 0xA8 ? "\\u2028" : "\\u2029";
        i += n;
      } else {
        out.append(value.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          const char escape[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
          out.append(escape, sizeof escape);
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
}

void format_timestamp_utc(std::chrono::system_clock::time_point time,
                          char (&out)[kTimestampLength]) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(time);
  const auto day = floor<days>(ms);
  const year_month_day date{day};
  const hh_mm_ss<milliseconds> clock{ms - day};
  int year = static_cast<int>(date.year());
  year = year < 0 ? 0 : (year > 9999 ? 9999 : year);  // keep the fixed width
  auto put = [&](std::size_t at, unsigned value, std::size_t width) {
    for (std::size_t k = width; k > 0; --k) {
      out[at + k - 1] = static_cast<char>('0' + value % 10);
      value /= 10;
    }
  };
  put(0, static_cast<unsigned>(year), 4);
  out[4] = '-';
  put(5, static_cast<unsigned>(date.month()), 2);
  out[7] = '-';
  put(8, static_cast<unsigned>(date.day()), 2);
  out[10] = 'T';
  put(11, static_cast<unsigned>(clock.hours().count()), 2);
  out[13] = ':';
  put(14, static_cast<unsigned>(clock.minutes().count()), 2);
  out[16] = ':';
  put(17, static_cast<unsigned>(clock.seconds().count()), 2);
  out[19] = '.';
  put(20, static_cast<unsigned>(clock.subseconds().count()), 3);
  out[23] = 'Z';
}

std::string timestamp_utc(std::chrono::system_clock::time_point time) {
  char buffer[kTimestampLength];
  format_timestamp_utc(time, buffer);
  return std::string(buffer, sizeof buffer);
}

JsonLine::JsonLine(std::size_t reserve) {
  buffer_.reserve(reserve);
  buffer_ = "{}";
}

JsonLine& JsonLine::clear() {
  buffer_.assign("{}");
  return *this;
}

void JsonLine::begin_member(std::string_view key) {
  buffer_.pop_back();  // the closing brace
  if (buffer_.size() > 1) buffer_ += ',';
  append_json_string(buffer_, key);
  buffer_ += ':';
}

JsonLine& JsonLine::add(std::string_view key, std::string_view value) {
  begin_member(key);
  append_json_string(buffer_, value);
  buffer_ += '}';
  return *this;
}

JsonLine& JsonLine::add(std::string_view key, const char* value) {
  if (value == nullptr) return add_null(key);
  return add(key, std::string_view(value));
}

JsonLine& JsonLine::add(std::string_view key, bool value) {
  begin_member(key);
  buffer_ += value ? "true}" : "false}";
  return *this;
}

JsonLine& JsonLine::add(std::string_view key, double value) {
  if (!std::isfinite(value)) return add_null(key);
  begin_member(key);
  char digits[32];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  buffer_.append(digits, end);
  buffer_ += '}';
  return *this;
}

JsonLine& JsonLine::add_null(std::string_view key) {
  begin_member(key);
  buffer_ += "null}";
  return *this;
}

JsonLine& JsonLine::add_timestamp(std::string_view key,
                                  std::chrono::system_clock::time_point time) {
  char stamp[kTimestampLength];
  format_timestamp_utc(time, stamp);
  begin_member(key);
  buffer_ += '"';
  buffer_.append(stamp, sizeof stamp);
  buffer_ += "\"}";
  return *this;
}

}  // namespace moat::core::obs

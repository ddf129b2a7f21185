#include "core/obs/json_line.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>

namespace moat::core::obs {
namespace {

std::string json_quoted(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

TEST(JsonString, EscapesEveryControlByte) {
  for (int c = 0; c < 0x20; ++c) {
    const std::string input(1, static_cast<char>(c));
    const std::string out = json_quoted(input);
    for (char byte : out) EXPECT_GE(static_cast<unsigned char>(byte), 0x20) << c;
    EXPECT_EQ(nlohmann::json::parse(out).get<std::string>(), input) << c;
  }
  EXPECT_EQ(json_quoted("\b\f\n\r\t"), R"("\b\f\n\r\t")");
  EXPECT_EQ(json_quoted(std::string_view("\0\x01\x1f", 3)), R"("\u0000\u0001\u001f")");
  EXPECT_EQ(json_quoted("\x7f"), R"("\u007f")");
}

TEST(JsonString, EscapesQuotesAndBackslashes) {
  EXPECT_EQ(json_quoted(R"(a"b\c)"), R"("a\"b\\c")");
  EXPECT_EQ(json_quoted(R"(\")"), R"("\\\"")");
  EXPECT_EQ(nlohmann::json::parse(json_quoted(R"(x"}, "forged": true, "y": ")")).get<std::string>(),
            R"(x"}, "forged": true, "y": ")");
}

TEST(JsonString, KeepsValidUtf8AndReplacesInvalidBytes) {
  EXPECT_EQ(json_quoted("caf\xC3\xA9 \xE6\x97\xA5 \xF0\x9F\x98\x80"),
            "\"caf\xC3\xA9 \xE6\x97\xA5 \xF0\x9F\x98\x80\"");
  const std::string r = "\xEF\xBF\xBD";
  struct Case {
    std::string_view input;
    std::string expected;
  };
  const Case cases[] = {
      {"\x80", r},                              // stray continuation
      {"\xBF" "a", r + "a"},
      {"\xC0\x80", r + r},                      // overlong NUL
      {"\xC1\xBF", r + r},                      // overlong
      {"\xE0\x80\x80", r + r + r},              // overlong 3-byte
      {"\xED\xA0\x80", r + r + r},              // surrogate U+D800
      {"\xF4\x90\x80\x80", r + r + r + r},      // above U+10FFFF
      {"\xF5\x80\x80\x80", r + r + r + r},
      {"\xFF", r},
      {"\xE2\x82", r + r},                      // truncated
      {"\xE2\x82" "a", r + r + "a"},
      {"\xF0\x9F\x98", r + r + r},
      {"a\xC3", "a" + r},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(json_quoted(c.input), "\"" + c.expected + "\"") << testing::PrintToString(c.input);
    EXPECT_TRUE(nlohmann::json::accept(json_quoted(c.input)));
  }
}

TEST(JsonString, EscapesLineSeparators) {
  EXPECT_EQ(json_quoted("a\xE2\x80\xA8z\xE2\x80\xA9"), R"("a\u2028z\u2029")");
  EXPECT_EQ(nlohmann::json::parse(json_quoted("\xE2\x80\xA8")).get<std::string>(), "\xE2\x80\xA8");
}

TEST(JsonString, RandomBytesAlwaysGiveOneParsableLine) {
  std::mt19937 rng(20240501);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> length(0, 64);
  for (int i = 0; i < 20'000; ++i) {
    std::string input(static_cast<std::size_t>(length(rng)), '\0');
    for (auto& c : input) c = static_cast<char>(byte(rng));
    const std::string out = json_quoted(input);
    ASSERT_EQ(out.find('\n'), std::string::npos);
    nlohmann::json parsed;
    ASSERT_NO_THROW(parsed = nlohmann::json::parse(out)) << testing::PrintToString(input);
    // Valid input round-trips exactly; with invalid bytes only the replacements differ.
    const auto s = parsed.get<std::string>();
    if (out.find("\xEF\xBF\xBD") == std::string::npos) {
      EXPECT_EQ(s, input);
    }
  }
}

TEST(JsonLine, BuildsOneObject) {
  JsonLine line;
  EXPECT_EQ(line.view(), "{}");
  line.add("host", "api.example.com")
      .add("port", 443)
      .add("bytes", std::numeric_limits<std::uint64_t>::max())
      .add("min", std::numeric_limits<std::int64_t>::min())
      .add("tls", true)
      .add("cached", false)
      .add_null("rule")
      .add("ratio", 0.25)
      .add("nan", std::nan(""))
      .add("null_ptr", static_cast<const char*>(nullptr))
      .add("sni", std::string("evil\"\n\x01"));
  EXPECT_EQ(line.view(),
            R"({"host":"api.example.com","port":443,"bytes":18446744073709551615,)"
            R"("min":-9223372036854775808,"tls":true,"cached":false,"rule":null,"ratio":0.25,)"
            R"("nan":null,"null_ptr":null,"sni":"evil\"\n\u0001"})");
  const auto parsed = nlohmann::json::parse(line.view());
  EXPECT_EQ(parsed["host"], "api.example.com");
  EXPECT_EQ(parsed["bytes"].get<std::uint64_t>(), std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(parsed["sni"], "evil\"\n\x01");
  EXPECT_TRUE(parsed["rule"].is_null());
}

TEST(JsonLine, EscapesKeysToo) {
  JsonLine line;
  line.add("k\"\n", 1);
  EXPECT_EQ(line.view(), R"({"k\"\n":1})");
}

TEST(JsonLine, ClearKeepsTheBuffer) {
  JsonLine line(256);
  line.add("a", std::string(100, 'x'));
  const char* data = line.view().data();
  for (int i = 0; i < 100; ++i) {
    line.clear().add("i", i).add("s", "value");
    EXPECT_EQ(line.view().data(), data);  // no reallocation: the steady state allocates nothing
  }
  EXPECT_EQ(line.view(), R"({"i":99,"s":"value"})");
}

TEST(Timestamp, Iso8601UtcMilliseconds) {
  using namespace std::chrono;
  EXPECT_EQ(timestamp_utc(system_clock::time_point{}), "1970-01-01T00:00:00.000Z");
  // 2024-02-29T23:59:59.999Z (leap day) = 1709251199999 ms.
  EXPECT_EQ(timestamp_utc(system_clock::time_point{milliseconds{1709251199999}}),
            "2024-02-29T23:59:59.999Z");
  // Sub-millisecond parts are truncated, also before the epoch (floor, not toward zero).
  EXPECT_EQ(timestamp_utc(system_clock::time_point{microseconds{1709251199999999}}),
            "2024-02-29T23:59:59.999Z");
  EXPECT_EQ(timestamp_utc(system_clock::time_point{milliseconds{-1}}),
            "1969-12-31T23:59:59.999Z");
  JsonLine line;
  line.add_timestamp("ts", system_clock::time_point{milliseconds{1000}});
  EXPECT_EQ(line.view(), R"({"ts":"1970-01-01T00:00:01.000Z"})");
  EXPECT_EQ(timestamp_utc(system_clock::now()).size(), kTimestampLength);
}

}  // namespace
}  // namespace moat::core::obs

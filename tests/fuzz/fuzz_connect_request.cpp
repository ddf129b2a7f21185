// Fuzzes the request-head parser the egress proxy runs on every CONNECT (and the edge on every
// request). Input: one control byte (limits and how the rest is split into pieces), then the
// bytes a client sends. Checks that parsing all at once and piece by piece agree exactly, that
// consumed() never exceeds the input and the head ends in CRLF CRLF, and runs the CONNECT target
// and body-framing helpers on whatever was accepted.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/http/request_head.hpp"
#include "fuzz_check.hpp"

namespace {

using moat::fuzz::check;
using moat::core::http::BodyFraming;
using moat::core::http::ParseStatus;
using moat::core::http::RequestHeadLimits;
using moat::core::http::RequestHeadParser;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t control = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

  // The directly fuzzed helper first: any text as a CONNECT target.
  if (auto direct = moat::core::http::parse_connect_target(input); direct.ok()) {
    check(!direct->host.empty() && direct->port != 0);
    check(direct->host.data() >= input.data() &&
          direct->host.data() + direct->host.size() <= input.data() + input.size());
  }

  RequestHeadLimits limits;
  if (control & 0x80) {  // tiny limits, so the fuzzer reaches every limit
    limits.max_request_line_bytes = 48;
    limits.max_header_bytes = 96;
    limits.max_header_count = 3;
    limits.max_leading_empty_lines = 0;
  }
  limits.require_host = (control & 0x40) == 0;

  RequestHeadParser whole(limits);
  whole.feed(input);

  RequestHeadParser split(limits);
  const std::size_t max_piece = (control & 0x3f) + 1u;
  std::uint32_t state = 0x9e3779b9u ^ control;
  std::size_t pos = 0;
  std::size_t used = 0;
  while (pos < input.size() && split.status() == ParseStatus::kNeedMore) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    const std::size_t n = std::min<std::size_t>(input.size() - pos, 1 + state % max_piece);
    split.feed(input.substr(pos, n));
    used += split.consumed_last_feed();
    pos += n;
  }

  check(whole.status() == split.status());
  if (whole.status() == ParseStatus::kError) {
    check(whole.error().code == split.error().code);
    check(whole.error().status == split.error().status);
    check(whole.error().offset == split.error().offset);
    check(whole.error().offset < input.size());
    check(!whole.error().code.empty() && !whole.error().message.empty());
    return 0;
  }
  if (whole.status() == ParseStatus::kNeedMore) {
    check(whole.consumed() == input.size());
    return 0;
  }

  // Complete: the head is a prefix of the input, ending in CRLF CRLF; nothing after it is taken.
  const std::size_t consumed = whole.consumed();
  check(consumed <= input.size() && consumed == split.consumed() && consumed == used);
  check(whole.consumed_last_feed() == consumed);
  check(input.substr(0, consumed).ends_with("\r\n\r\n"));
  check(whole.method() == split.method() && whole.target() == split.target());
  check(whole.version() == split.version() && whole.target_form() == split.target_form());
  check(whole.header_count() == split.header_count());
  for (std::size_t i = 0; i < whole.header_count(); ++i) {
    check(whole.header(i).name == split.header(i).name);
    check(whole.header(i).value == split.header(i).value);
    check(!whole.header(i).name.empty());
    check(whole.find_header(whole.header(i).name).has_value());
  }
  check(!whole.method().empty() && !whole.target().empty());
  check(whole.feed("X") == ParseStatus::kComplete && whole.consumed_last_feed() == 0);

  const BodyFraming a = moat::core::http::classify_body_framing(whole);
  const BodyFraming b = moat::core::http::classify_body_framing(split);
  check(a.kind == b.kind && a.content_length == b.content_length);
  if (a.kind == BodyFraming::Kind::kError) check(!a.error.code.empty());

  if (whole.is_connect()) {
    const auto target = moat::core::http::parse_connect_target(whole.target());
    if (target.ok()) {
      check(!target->host.empty() && target->port != 0);
      check(target->host.size() < whole.target().size());
    } else {
      check(!target.error().code.empty());
    }
  }
  return 0;
}

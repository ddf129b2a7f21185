#include "core/http/request_head.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace moat::core::http {
namespace {

using namespace std::string_literals;

// Everything observable about one parse, so different ways of feeding can be compared.
struct Outcome {
  ParseStatus status = ParseStatus::kNeedMore;
  std::string code;
  int http_status = 0;
  std::size_t error_offset = 0;
  std::size_t consumed = 0;
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;

  friend bool operator==(const Outcome&, const Outcome&) = default;
};

Outcome summarize(const RequestHeadParser& p) {
  Outcome o;
  o.status = p.status();
  if (p.status() == ParseStatus::kError) {
    o.code = p.error().code;
    o.http_status = p.error().status;
    o.error_offset = p.error().offset;
  }
  if (p.status() == ParseStatus::kComplete) {
    o.consumed = p.consumed();
    o.method = p.method();
    o.target = p.target();
    for (const HeaderField f : p.headers()) o.headers.emplace_back(f.name, f.value);
  }
  return o;
}

// Feeds `input` in pieces whose sizes `next_size` picks, stopping once the parser is done, and
// checks consumed_last_feed() accounts for exactly the head.
template <typename NextSize>
Outcome feed_in_pieces(std::string_view input, RequestHeadLimits limits, NextSize next_size) {
  RequestHeadParser p(limits);
  std::size_t pos = 0;
  std::size_t taken = 0;
  while (pos < input.size() && p.status() == ParseStatus::kNeedMore) {
    const std::size_t n = std::min(input.size() - pos, next_size());
    p.feed(input.substr(pos, n));
    if (p.status() != ParseStatus::kError) taken += p.consumed_last_feed();
    pos += n;
  }
  if (p.status() == ParseStatus::kComplete) {
    EXPECT_EQ(taken, p.consumed());
  }
  return summarize(p);
}

Outcome parse_all(std::string_view input, RequestHeadLimits limits = {}) {
  RequestHeadParser p(limits);
  p.feed(input);
  return summarize(p);
}

// Names a parameterized case after its `name` field.
struct CaseName {
  template <typename T>
  std::string operator()(const ::testing::TestParamInfo<T>& param_info) const {
    return param_info.param.name;
  }
};
constexpr CaseName case_name;

// Parses all at once, one byte at a time and in random splits; all three must agree.
Outcome parse_every_way(std::string_view input, RequestHeadLimits limits = {}) {
  const Outcome whole = parse_all(input, limits);
  const Outcome bytewise = feed_in_pieces(input, limits, [] { return std::size_t{1}; });
  EXPECT_EQ(whole, bytewise) << "byte-by-byte feeding disagrees for: " << input;
  std::mt19937 rng(static_cast<unsigned>(input.size()));
  for (int round = 0; round < 8; ++round) {
    std::uniform_int_distribution<std::size_t> size(1, 1 + input.size() / 3);
    const Outcome split = feed_in_pieces(input, limits, [&] { return size(rng); });
    EXPECT_EQ(whole, split) << "random split disagrees for: " << input;
  }
  return whole;
}

// ---------------------------------------------------------------------------------------------
// Accepted heads

TEST(RequestHead, ParsesConnect) {
  const std::string head = "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n"
                           "Proxy-Authorization: Basic eDp5\r\nUser-Agent: curl/8.0\r\n\r\n";
  RequestHeadParser p;
  ASSERT_EQ(p.feed(head), ParseStatus::kComplete);
  EXPECT_EQ(p.method(), "CONNECT");
  EXPECT_TRUE(p.is_connect());
  EXPECT_EQ(p.target(), "api.example.com:443");
  EXPECT_EQ(p.target_form(), TargetForm::kAuthority);
  EXPECT_EQ(p.version(), HttpVersion::kHttp11);
  ASSERT_EQ(p.header_count(), 3u);
  EXPECT_EQ(p.header(0).name, "Host");
  EXPECT_EQ(p.header(0).value, "api.example.com:443");
  EXPECT_EQ(p.header(2).name, "User-Agent");
  EXPECT_EQ(p.find_header("proxy-AUTHORIZATION").value_or(""), "Basic eDp5");
  EXPECT_FALSE(p.find_header("Content-Length").has_value());
  EXPECT_EQ(p.count_headers("host"), 1u);
  EXPECT_EQ(p.consumed(), head.size());
  EXPECT_EQ(p.consumed_last_feed(), head.size());
}

TEST(RequestHead, KeepsHeaderOrderAndTrimsOws) {
  RequestHeadParser p;
  ASSERT_EQ(p.feed("GET /a?b=c HTTP/1.0\r\nX-B:   two words \t\r\nx-a:\tone\r\nX-B: 3\r\n"
                   "Empty:\r\n\r\n"),
            ParseStatus::kComplete);
  EXPECT_EQ(p.version(), HttpVersion::kHttp10);
  EXPECT_EQ(p.target_form(), TargetForm::kOrigin);
  std::vector<std::string> seen;
  for (const HeaderField f : p.headers()) {
    seen.push_back(std::string(f.name) + "=" + std::string(f.value) + ";");
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"X-B=two words;", "x-a=one;", "X-B=3;", "Empty=;"}));
  EXPECT_EQ(p.count_headers("x-b"), 2u);
  EXPECT_EQ(p.find_header("X-B").value_or("?"), "two words");
}

struct AcceptCase {
  const char* name;
  std::string input;
  std::string method;
  std::string target;
  TargetForm form;
};

class RequestHeadAccepts : public ::testing::TestWithParam<AcceptCase> {};

TEST_P(RequestHeadAccepts, Parses) {
  const AcceptCase& c = GetParam();
  const Outcome o = parse_every_way(c.input);
  ASSERT_EQ(o.status, ParseStatus::kComplete) << o.code;
  EXPECT_EQ(o.method, c.method);
  EXPECT_EQ(o.target, c.target);
  RequestHeadParser p;
  ASSERT_EQ(p.feed(c.input), ParseStatus::kComplete);
  EXPECT_EQ(p.target_form(), c.form);
}

INSTANTIATE_TEST_SUITE_P(
    Table, RequestHeadAccepts,
    ::testing::Values(
        AcceptCase{"connect_v6", "CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n",
                   "CONNECT", "[2001:db8::1]:443", TargetForm::kAuthority},
        AcceptCase{"http10_without_host", "CONNECT a.example:443 HTTP/1.0\r\n\r\n", "CONNECT",
                   "a.example:443", TargetForm::kAuthority},
        AcceptCase{"absolute_form", "GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n",
                   "GET", "http://a.example/x", TargetForm::kAbsolute},
        AcceptCase{"options_asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "OPTIONS", "*",
                   TargetForm::kAsterisk},
        AcceptCase{"extension_method", "M-SEARCH! /x HTTP/1.1\r\nHost: a\r\n\r\n", "M-SEARCH!",
                   "/x", TargetForm::kOrigin},
        AcceptCase{"one_leading_crlf", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/",
                   TargetForm::kOrigin},
        AcceptCase{"two_leading_crlf", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/",
                   TargetForm::kOrigin},
        AcceptCase{"htab_and_obs_text_in_value",
                   "GET / HTTP/1.1\r\nHost: a\r\nX: a\tb \xc3\xa9\r\n\r\n", "GET", "/",
                   TargetForm::kOrigin},
        AcceptCase{"token_punctuation_in_name",
                   "GET / HTTP/1.1\r\nHost: a\r\n!#$%&'*+-.^_`|~09az: v\r\n\r\n", "GET", "/",
                   TargetForm::kOrigin}),
    case_name);

// ---------------------------------------------------------------------------------------------
// Rejected heads: one case per rule, each also checked byte by byte and in random splits.

struct RejectCase {
  const char* name;
  std::string input;
  std::string code;
  int status;
};

class RequestHeadRejects : public ::testing::TestWithParam<RejectCase> {};

TEST_P(RequestHeadRejects, Rejects) {
  const RejectCase& c = GetParam();
  const Outcome o = parse_every_way(c.input);
  ASSERT_EQ(o.status, ParseStatus::kError) << c.input;
  EXPECT_EQ(o.code, c.code);
  EXPECT_EQ(o.http_status, c.status);
  EXPECT_LT(o.error_offset, c.input.size());
}

const std::string kOk = "GET / HTTP/1.1\r\nHost: a\r\n";

INSTANTIATE_TEST_SUITE_P(
    Table, RequestHeadRejects,
    ::testing::Values(
        // line endings
        RejectCase{"bare_lf_request_line", "GET / HTTP/1.1\nHost: a\r\n\r\n", "bare_lf", 400},
        RejectCase{"bare_lf_header", kOk + "X: y\n\r\n", "bare_lf", 400},
        RejectCase{"bare_lf_final", kOk + "\n", "bare_lf", 400},
        RejectCase{"bare_cr_request_line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", "bare_cr", 400},
        RejectCase{"bare_cr_header", kOk + "X: a\rb\r\n\r\n", "bare_cr", 400},
        RejectCase{"bare_cr_final", kOk + "\r\r\n", "bare_cr", 400},
        RejectCase{"crcrlf", "GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", "bare_cr", 400},
        // folding and stray whitespace
        RejectCase{"obs_fold", kOk + "X: a\r\n b\r\n\r\n", "obs_fold", 400},
        RejectCase{"obs_fold_tab", kOk + "X: a\r\n\tb\r\n\r\n", "obs_fold", 400},
        RejectCase{"space_before_first_header", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", "obs_fold",
                   400},
        RejectCase{"space_before_colon", kOk + "Content-Length : 5\r\n\r\n", "space_before_colon",
                   400},
        RejectCase{"tab_before_colon", kOk + "Transfer-Encoding\t: chunked\r\n\r\n",
                   "space_before_colon", 400},
        // header names and values
        RejectCase{"empty_header_name", kOk + ": v\r\n\r\n", "empty_header_name", 400},
        RejectCase{"missing_colon", kOk + "NoColon\r\n\r\n", "missing_colon", 400},
        RejectCase{"space_in_name", kOk + "X Y: v\r\n\r\n", "invalid_header_name", 400},
        RejectCase{"paren_in_name", kOk + "X(Y): v\r\n\r\n", "invalid_header_name", 400},
        RejectCase{"non_ascii_name", kOk + "X\xc3\xa9: v\r\n\r\n", "invalid_header_name", 400},
        RejectCase{"nul_in_value", kOk + "X: a\0b\r\n\r\n"s, "invalid_field_byte", 400},
        RejectCase{"ctl_in_value", kOk + "X: a\x01" "b\r\n\r\n", "invalid_field_byte", 400},
        RejectCase{"del_in_value", kOk + "X: a\x7f\r\n\r\n", "invalid_field_byte", 400},
        RejectCase{"esc_in_name", kOk + "X\x1b: v\r\n\r\n", "invalid_field_byte", 400},
        // request line
        RejectCase{"nul_in_request_line", "GET /\0 HTTP/1.1\r\n\r\n"s, "invalid_request_line_byte",
                   400},
        RejectCase{"tab_in_request_line", "GET\t/ HTTP/1.1\r\n\r\n", "invalid_request_line_byte",
                   400},
        RejectCase{"non_ascii_target", "GET /\xc3\xa9 HTTP/1.1\r\n\r\n",
                   "invalid_request_line_byte", 400},
        RejectCase{"tls_on_http_port", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                   "invalid_request_line_byte", 400},
        RejectCase{"method_not_token", "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", "invalid_method",
                   400},
        RejectCase{"method_slash", "GET/ / HTTP/1.1\r\nHost: a\r\n\r\n", "invalid_method", 400},
        RejectCase{"leading_space", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", "invalid_method", 400},
        RejectCase{"two_spaces_after_method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
                   "extra_whitespace", 400},
        RejectCase{"two_spaces_before_version", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n",
                   "extra_whitespace", 400},
        RejectCase{"trailing_space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", "extra_whitespace",
                   400},
        RejectCase{"space_in_target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", "extra_whitespace",
                   400},
        RejectCase{"http09", "GET /\r\n\r\n", "invalid_request_line", 400},
        RejectCase{"method_only", "GET\r\n\r\n", "invalid_request_line", 400},
        RejectCase{"lowercase_version", "GET / http/1.1\r\nHost: a\r\n\r\n", "invalid_version",
                   400},
        RejectCase{"version_two_digits", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", "invalid_version",
                   400},
        RejectCase{"version_no_minor", "GET / HTTP/2\r\nHost: a\r\n\r\n", "invalid_version", 400},
        RejectCase{"http2", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", "unsupported_version", 505},
        RejectCase{"http12", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", "unsupported_version", 505},
        RejectCase{"http09_versioned", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", "unsupported_version",
                   505},
        RejectCase{"connect_origin_form", "CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n",
                   "invalid_target", 400},
        RejectCase{"get_authority_form", "GET a.example:443 HTTP/1.1\r\nHost: a\r\n\r\n",
                   "invalid_target", 400},
        RejectCase{"get_asterisk", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", "invalid_target", 400},
        // empty lines before the request line: up to two are skipped
        RejectCase{"three_leading_crlf", "\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
                   "too_many_empty_lines", 400},
        RejectCase{"leading_bare_lf", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "bare_lf", 400},
        // Host (RFC 9112 3.2)
        RejectCase{"missing_host", "GET / HTTP/1.1\r\nX: y\r\n\r\n", "missing_host", 400},
        RejectCase{"duplicate_host", kOk + "host: b\r\n\r\n", "duplicate_host", 400},
        RejectCase{"duplicate_host_http10", "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n",
                   "duplicate_host", 400},
        // limits
        RejectCase{"request_line_too_long", "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\n\r\n",
                   "request_line_too_long", 414},
        RejectCase{"header_section_too_large",
                   kOk + "X: " + std::string(33 * 1024, 'v') + "\r\n\r\n",
                   "header_fields_too_large", 431},
        RejectCase{"too_many_headers",
                   [] {
                     std::string s = kOk;
                     for (int i = 0; i < 100; ++i) s += "X-" + std::to_string(i) + ": v\r\n";
                     return s + "\r\n";
                   }(),
                   "too_many_headers", 431}),
    case_name);

TEST(RequestHead, LimitsAreExact) {
  RequestHeadLimits limits;
  limits.max_request_line_bytes = 17;
  limits.max_header_bytes = 20;
  limits.max_header_count = 2;
  // 17 bytes of request line are fine, 18 are not.
  EXPECT_EQ(parse_every_way("GET /1234 HTTP/1.0\r\n\r\n", limits).code, "request_line_too_long");
  EXPECT_EQ(parse_every_way("GET /123 HTTP/1.0\r\n\r\n", limits).status, ParseStatus::kComplete);
  // Header bytes count everything after the request line, final CRLF included: 18 + 2 = 20.
  EXPECT_EQ(parse_every_way("GET / HTTP/1.0\r\nA: 1234567890123\r\n\r\n", limits).status,
            ParseStatus::kComplete);
  const Outcome over = parse_every_way("GET / HTTP/1.0\r\nA: 12345678901234\r\n\r\n", limits);
  EXPECT_EQ(over.code, "header_fields_too_large");
  EXPECT_EQ(parse_every_way("GET / HTTP/1.0\r\nA: 1\r\nB: 2\r\n\r\n", limits).status,
            ParseStatus::kComplete);
  EXPECT_EQ(parse_every_way("GET / HTTP/1.0\r\nA:1\r\nB:2\r\nC:3\r\n\r\n", limits).code,
            "too_many_headers");
}

TEST(RequestHead, RequireHostCanBeOff) {
  RequestHeadLimits limits;
  limits.require_host = false;
  EXPECT_EQ(parse_every_way("CONNECT a:1 HTTP/1.1\r\n\r\n", limits).status,
            ParseStatus::kComplete);
}

TEST(RequestHead, FailsOnTheFirstBadByte) {
  // A TLS ClientHello sent to the proxy port is refused on its first byte, without buffering.
  RequestHeadParser p;
  EXPECT_EQ(p.feed("\x16"), ParseStatus::kError);
  EXPECT_EQ(p.error().offset, 0u);
  const Error e = p.error().to_error();
  EXPECT_EQ(e.code, "invalid_request_line_byte");
  EXPECT_EQ(e.source, ErrorSource::kDownstream);
}

TEST(RequestHead, NeedsMoreUntilTheFinalCrlf) {
  const std::string head = "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n";
  RequestHeadParser p;
  for (std::size_t i = 0; i + 1 < head.size(); ++i) {
    ASSERT_EQ(p.feed(head.substr(i, 1)), ParseStatus::kNeedMore) << i;
    EXPECT_EQ(p.consumed(), i + 1);
  }
  EXPECT_EQ(p.feed(head.substr(head.size() - 1)), ParseStatus::kComplete);
  EXPECT_EQ(p.consumed(), head.size());
}

// ---------------------------------------------------------------------------------------------
// Bytes after the head belong to the caller.

TEST(RequestHead, LeavesPipelinedBytesToTheCaller) {
  const std::string head = "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n";
  // What an impatient client sends right behind a CONNECT: its ClientHello, and for the parser's
  // sake something that would look like a header if it were (wrongly) read on.
  const std::string after = "\x16\x03\x01\x00\x05hello\r\nX-Evil: 1\r\n\r\n";
  const std::string stream = head + after;

  RequestHeadParser p;
  ASSERT_EQ(p.feed(stream), ParseStatus::kComplete);
  EXPECT_EQ(p.consumed(), head.size());
  EXPECT_EQ(p.consumed_last_feed(), head.size());
  EXPECT_EQ(p.header_count(), 1u);
  EXPECT_EQ(stream.substr(p.consumed()), after);

  // Further feeds consume nothing.
  EXPECT_EQ(p.feed("more"), ParseStatus::kComplete);
  EXPECT_EQ(p.consumed_last_feed(), 0u);
  EXPECT_EQ(p.consumed(), head.size());

  // Split anywhere: the head ends in the middle of some piece, and that piece's tail is left.
  for (std::size_t cut = 1; cut < stream.size(); ++cut) {
    RequestHeadParser q;
    std::size_t used = 0;
    q.feed(std::string_view(stream).substr(0, cut));
    used += q.consumed_last_feed();
    q.feed(std::string_view(stream).substr(cut));
    used += q.consumed_last_feed();
    ASSERT_EQ(q.status(), ParseStatus::kComplete) << cut;
    EXPECT_EQ(used, head.size()) << cut;
    EXPECT_EQ(q.consumed(), head.size()) << cut;
    EXPECT_EQ(q.target(), "api.example.com:443");
  }
}

TEST(RequestHead, LeavesABodyToTheCaller) {
  const std::string head = "POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n";
  RequestHeadParser p;
  ASSERT_EQ(p.feed(head + "body"), ParseStatus::kComplete);
  EXPECT_EQ(p.consumed(), head.size());
}

TEST(RequestHead, ConsumedCountsLeadingEmptyLines) {
  RequestHeadParser p;
  ASSERT_EQ(p.feed("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nXYZ"), ParseStatus::kComplete);
  EXPECT_EQ(p.consumed(), 4u + 27u);
  EXPECT_EQ(p.method(), "GET");
}

TEST(RequestHead, ErrorsAreStickyAndResetStartsOver) {
  RequestHeadParser p;
  ASSERT_EQ(p.feed("GET / HTTP/1.1\nHost: a\r\n\r\n"), ParseStatus::kError);
  EXPECT_EQ(p.feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), ParseStatus::kError);
  EXPECT_EQ(p.error().code, "bare_lf");
  p.reset();
  EXPECT_EQ(p.feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), ParseStatus::kComplete);
}

TEST(RequestHead, ViewsSurviveAMove) {
  RequestHeadParser p;
  ASSERT_EQ(p.feed("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n"),
            ParseStatus::kComplete);
  RequestHeadParser q = std::move(p);
  EXPECT_EQ(q.target(), "a.example:443");
  EXPECT_EQ(q.header(0).value, "a.example:443");
}

// ---------------------------------------------------------------------------------------------
// Body framing

struct FramingCase {
  const char* name;
  std::string headers;  // field lines after "POST / HTTP/1.1\r\nHost: a\r\n"
  BodyFraming::Kind kind;
  std::uint64_t length = 0;
  std::string code = {};
  int status = 400;
  bool http10 = false;
};

class BodyFramingTable : public ::testing::TestWithParam<FramingCase> {};

TEST_P(BodyFramingTable, Classifies) {
  const FramingCase& c = GetParam();
  RequestHeadParser p;
  const std::string head =
      std::string(c.http10 ? "POST / HTTP/1.0\r\n" : "POST / HTTP/1.1\r\n") + "Host: a\r\n" +
      c.headers + "\r\n";
  ASSERT_EQ(p.feed(head), ParseStatus::kComplete) << p.error().code;
  const BodyFraming f = classify_body_framing(p);
  ASSERT_EQ(f.kind, c.kind) << f.error.code;
  if (c.kind == BodyFraming::Kind::kContentLength) {
    EXPECT_EQ(f.content_length, c.length);
  }
  if (c.kind == BodyFraming::Kind::kError) {
    EXPECT_EQ(f.error.code, c.code);
    EXPECT_EQ(f.error.status, c.status);
  }
}

using K = BodyFraming::Kind;
INSTANTIATE_TEST_SUITE_P(
    Table, BodyFramingTable,
    ::testing::Values(
        FramingCase{"none", "", K::kNone},
        FramingCase{"cl", "Content-Length: 5\r\n", K::kContentLength, 5},
        FramingCase{"cl_zero", "Content-Length: 0\r\n", K::kContentLength, 0},
        FramingCase{"cl_ows", "Content-Length: \t42 \r\n", K::kContentLength, 42},
        FramingCase{"cl_big", "Content-Length: 999999999999999999\r\n", K::kContentLength,
                    999999999999999999ull},
        FramingCase{"cl_same_twice", "Content-Length: 5\r\ncontent-length: 5\r\n",
                    K::kContentLength, 5},
        FramingCase{"cl_same_list", "Content-Length: 5, 5\r\n", K::kContentLength, 5},
        FramingCase{"cl_differ", "Content-Length: 5\r\nContent-Length: 6\r\n", K::kError, 0,
                    "conflicting_content_length"},
        FramingCase{"cl_differ_list", "Content-Length: 5,6\r\n", K::kError, 0,
                    "conflicting_content_length"},
        FramingCase{"cl_plus", "Content-Length: +5\r\n", K::kError, 0, "invalid_content_length"},
        FramingCase{"cl_minus", "Content-Length: -1\r\n", K::kError, 0, "invalid_content_length"},
        FramingCase{"cl_leading_zero", "Content-Length: 05\r\n", K::kError, 0,
                    "invalid_content_length"},
        FramingCase{"cl_hex", "Content-Length: 0x5\r\n", K::kError, 0, "invalid_content_length"},
        FramingCase{"cl_inner_space", "Content-Length: 5 5\r\n", K::kError, 0,
                    "invalid_content_length"},
        FramingCase{"cl_empty", "Content-Length:\r\n", K::kError, 0, "invalid_content_length"},
        FramingCase{"cl_empty_element", "Content-Length: 5,\r\n", K::kError, 0,
                    "invalid_content_length"},
        FramingCase{"cl_19_digits", "Content-Length: 1000000000000000000\r\n", K::kError, 0,
                    "invalid_content_length"},
        FramingCase{"chunked", "Transfer-Encoding: chunked\r\n", K::kChunked},
        FramingCase{"chunked_case", "Transfer-Encoding: ChUnKeD\r\n", K::kChunked},
        FramingCase{"te_and_cl", "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", K::kError,
                    0, "content_length_with_transfer_encoding"},
        FramingCase{"cl_and_te", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", K::kError,
                    0, "content_length_with_transfer_encoding"},
        FramingCase{"te_http10", "Transfer-Encoding: chunked\r\n", K::kError, 0,
                    "transfer_encoding_http10", 400, true},
        FramingCase{"gzip_chunked", "Transfer-Encoding: gzip, chunked\r\n", K::kError, 0,
                    "unsupported_transfer_coding", 501},
        FramingCase{"unknown_coding", "Transfer-Encoding: foo\r\n", K::kError, 0,
                    "unsupported_transfer_coding", 501},
        FramingCase{"identity", "Transfer-Encoding: identity\r\n", K::kError, 0,
                    "unsupported_transfer_coding", 501},
        FramingCase{"chunked_then_gzip", "Transfer-Encoding: chunked, gzip\r\n", K::kError, 0,
                    "unsupported_transfer_coding", 501},
        FramingCase{"chunked_twice", "Transfer-Encoding: chunked, chunked\r\n", K::kError, 0,
                    "chunked_repeated"},
        FramingCase{"chunked_two_lines",
                    "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", K::kError, 0,
                    "chunked_repeated"},
        FramingCase{"chunked_param", "Transfer-Encoding: chunked;q=1\r\n", K::kError, 0,
                    "invalid_transfer_encoding"},
        FramingCase{"te_empty", "Transfer-Encoding:\r\n", K::kError, 0,
                    "invalid_transfer_encoding"},
        FramingCase{"te_trailing_comma", "Transfer-Encoding: chunked,\r\n", K::kError, 0,
                    "invalid_transfer_encoding"},
        FramingCase{"te_quoted", "Transfer-Encoding: \"chunked\"\r\n", K::kError, 0,
                    "invalid_transfer_encoding"}),
    case_name);

TEST(BodyFraming, IncompleteHeadIsAnError) {
  RequestHeadParser p;
  p.feed("GET / HTTP/1.1\r\n");
  EXPECT_EQ(classify_body_framing(p).kind, BodyFraming::Kind::kError);
}

// ---------------------------------------------------------------------------------------------
// CONNECT targets

TEST(ConnectTarget, Accepts) {
  struct Case {
    std::string_view text;
    std::string_view host;
    std::uint16_t port;
    bool v6;
  };
  for (const Case& c : std::vector<Case>{
           {"example.com:443", "example.com", 443, false},
           {"API.Example.COM.:8443", "API.Example.COM.", 8443, false},
           {"192.0.2.1:1", "192.0.2.1", 1, false},
           {"a_b-c.example:65535", "a_b-c.example", 65535, false},
           {"[::1]:443", "::1", 443, true},
           {"[2001:db8::ffff:192.0.2.1]:22", "2001:db8::ffff:192.0.2.1", 22, true},
       }) {
    const auto r = parse_connect_target(c.text);
    ASSERT_TRUE(r.ok()) << c.text << ": " << r.error().code;
    EXPECT_EQ(r->host, c.host);
    EXPECT_EQ(r->port, c.port);
    EXPECT_EQ(r->ipv6_literal, c.v6);
  }
}

TEST(ConnectTarget, Rejects) {
  struct Case {
    std::string text;
    std::string_view code;
  };
  for (const Case& c : std::vector<Case>{
           {"", "connect_target_empty"},
           {"example.com", "connect_target_port_missing"},
           {"example.com:", "connect_target_port_missing"},
           {":443", "connect_target_host_empty"},
           {"user@example.com:443", "connect_target_userinfo"},
           {"user:pw@example.com:443", "connect_target_userinfo"},
           {"example.com:443/", "connect_target_path"},
           {"example.com:443?q", "connect_target_path"},
           {"example.com:443#f", "connect_target_path"},
           {"http://example.com:443", "connect_target_path"},
           {"exa mple.com:443", "connect_target_invalid_byte"},
           {"example.com:443\r", "connect_target_invalid_byte"},
           {"example.com\0:443"s, "connect_target_invalid_byte"},
           {"ex\xc3\xa4mple.com:443", "connect_target_invalid_byte"},
           {"exam%2eple.com:443", "connect_target_percent"},
           {"[fe80::1%25eth0]:443", "connect_target_percent"},
           {"example.com:0", "connect_target_port_invalid"},
           {"example.com:0443", "connect_target_port_invalid"},
           {"example.com:65536", "connect_target_port_invalid"},
           {"example.com:100000", "connect_target_port_invalid"},
           {"example.com:+443", "connect_target_port_invalid"},
           {"example.com:44a", "connect_target_port_invalid"},
           {"example.com:443:443", "connect_target_ipv6_unbracketed"},
           {"::1:443", "connect_target_ipv6_unbracketed"},
           {"exa!mple.com:443", "connect_target_host_invalid"},
           {"[::1]", "connect_target_port_missing"},
           {"[::1]:", "connect_target_port_missing"},
           {"[::1]443", "connect_target_port_missing"},
           {"[::1:443", "connect_target_bracket"},
           {"[]:443", "connect_target_ipv6"},
           {"[v1.x]:443", "connect_target_ipv6"},
           {"[192.0.2.1]:443", "connect_target_ipv6"},
           {"[::g]:443", "connect_target_ipv6"},
           {std::string(256, 'a') + ":443", "connect_target_host_too_long"},
       }) {
    const auto r = parse_connect_target(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.error().code, c.code) << c.text;
    EXPECT_NE(r.error().offset, Error::kNoOffset);
  }
}

}  // namespace
}  // namespace moat::core::http

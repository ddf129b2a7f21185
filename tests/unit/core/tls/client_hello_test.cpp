#include "core/tls/client_hello.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace moat::core::tls {
namespace {

using Bytes = std::vector<std::uint8_t>;

// ---------------------------------------------------------------------------------------------
// A small ClientHello builder: every length prefix computed, so tests can break one thing.

void put16(Bytes& out, std::size_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}
void put24(Bytes& out, std::size_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 16));
  put16(out, v & 0xffff);
}
void append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }
Bytes vec8(const Bytes& body) {
  Bytes out{static_cast<std::uint8_t>(body.size())};
  append(out, body);
  return out;
}
Bytes vec16(const Bytes& body) {
  Bytes out;
  put16(out, body.size());
  append(out, body);
  return out;
}
Bytes u16s(std::initializer_list<std::uint16_t> values) {
  Bytes out;
  for (auto v : values) put16(out, v);
  return out;
}
Bytes text(std::string_view s) { return Bytes(s.begin(), s.end()); }

struct Extension {
  std::uint16_t type;
  Bytes data;
};

Extension sni(std::string_view name) {
  Bytes entry{0};
  append(entry, vec16(text(name)));
  return {kExtServerName, vec16(entry)};
}
Extension supported_versions(std::initializer_list<std::uint16_t> versions) {
  return {kExtSupportedVersions, vec8(u16s(versions))};
}
Extension alpn(std::initializer_list<std::string_view> names) {
  Bytes list;
  for (auto n : names) append(list, vec8(text(n)));
  return {kExtAlpn, vec16(list)};
}
Extension groups(std::initializer_list<std::uint16_t> g) { return {kExtSupportedGroups, vec16(u16s(g))}; }
Extension sigalgs(std::initializer_list<std::uint16_t> s) {
  return {kExtSignatureAlgorithms, vec16(u16s(s))};
}
Extension key_share(std::initializer_list<std::uint16_t> groups_with_shares) {
  Bytes list;
  for (auto g : groups_with_shares) {
    put16(list, g);
    append(list, vec16(Bytes(32, 0x42)));
  }
  return {kExtKeyShare, vec16(list)};
}
Extension padding(std::size_t n) { return {21, Bytes(n, 0)}; }

struct HelloSpec {
  std::uint16_t legacy_version = kTls12;
  Bytes session_id = Bytes(32, 0x11);
  Bytes suites = u16s({0x1301, 0x1302, 0xc02f});
  Bytes compression = {0};
  bool with_extensions = true;
  std::vector<Extension> extensions = {
      sni("api.example.com"), supported_versions({kTls13, kTls12}), alpn({"h2", "http/1.1"}),
      groups({0x001d, 0x0017}), sigalgs({0x0403, 0x0804}), key_share({0x001d})};
};

// The handshake message: type, 24-bit length, body.
Bytes build_message(const HelloSpec& spec, std::uint8_t type = kHandshakeClientHello) {
  Bytes body;
  put16(body, spec.legacy_version);
  append(body, Bytes(32, 0xab));
  append(body, vec8(spec.session_id));
  append(body, vec16(spec.suites));
  append(body, vec8(spec.compression));
  if (spec.with_extensions) {
    Bytes exts;
    for (const auto& e : spec.extensions) {
      put16(exts, e.type);
      append(exts, vec16(e.data));
    }
    append(body, vec16(exts));
  }
  Bytes msg{type};
  put24(msg, body.size());
  append(msg, body);
  return msg;
}

// Cuts a handshake message into records of at most `fragment` bytes.
Bytes wrap_records(const Bytes& message, std::size_t fragment = kMaxPlaintextRecord,
                   std::uint16_t record_version = kTls10) {
  Bytes out;
  for (std::size_t pos = 0; pos < message.size(); pos += fragment) {
    const std::size_t n = std::min(fragment, message.size() - pos);
    out.push_back(kContentTypeHandshake);
    put16(out, record_version);
    put16(out, n);
    out.insert(out.end(), message.begin() + static_cast<std::ptrdiff_t>(pos),
               message.begin() + static_cast<std::ptrdiff_t>(pos + n));
  }
  return out;
}

Bytes hello(const HelloSpec& spec = {}) { return wrap_records(build_message(spec)); }

// The handshake message inside captured records (for re-fragmenting real hellos).
Bytes unwrap_records(const Bytes& wire) {
  Bytes message;
  for (std::size_t pos = 0; pos + 5 <= wire.size();) {
    const std::size_t n = (std::size_t{wire[pos + 3]} << 8) | wire[pos + 4];
    message.insert(message.end(), wire.begin() + static_cast<std::ptrdiff_t>(pos + 5),
                   wire.begin() + static_cast<std::ptrdiff_t>(pos + 5 + n));
    pos += 5 + n;
  }
  return message;
}

Bytes fixture(const std::string& name) {
  const auto path = std::filesystem::path(MOAT_SOURCE_DIR) / "tests/fixtures/client_hello" / name;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// ---------------------------------------------------------------------------------------------
// Feeding helpers: everything observable, compared across ways of splitting the bytes.

struct Outcome {
  ParseStatus status = ParseStatus::kNeedMore;
  std::string code;
  std::size_t error_offset = 0;
  std::size_t consumed = 0;
  std::string sni;
  std::uint16_t max_version = 0;
  std::vector<std::string> alpn;
  std::vector<std::uint16_t> extensions;

  friend bool operator==(const Outcome&, const Outcome&) = default;
};

Outcome summarize(const ClientHelloReader& r) {
  Outcome o;
  o.status = r.status();
  if (r.status() == ParseStatus::kError) {
    o.code = r.error().code;
    o.error_offset = r.error().offset;
  }
  if (r.status() == ParseStatus::kComplete) {
    o.consumed = r.consumed();
    o.sni = std::string(r.hello().server_name.value_or("<none>"));
    o.max_version = r.hello().max_offered_version();
    for (auto a : r.hello().alpn) o.alpn.emplace_back(a);
    o.extensions = r.hello().extension_types;
  }
  return o;
}

template <typename NextSize>
Outcome feed_in_pieces(const Bytes& input, ClientHelloLimits limits, NextSize next_size) {
  ClientHelloReader r(limits);
  std::size_t pos = 0;
  std::size_t taken = 0;
  while (pos < input.size() && r.status() == ParseStatus::kNeedMore) {
    const std::size_t n = std::min(input.size() - pos, next_size());
    r.feed(std::span<const std::uint8_t>(input).subspan(pos, n));
    taken += r.consumed_last_feed();
    pos += n;
  }
  if (r.status() == ParseStatus::kComplete) {
    EXPECT_EQ(taken, r.consumed());
  }
  return summarize(r);
}

Outcome read_all(const Bytes& input, ClientHelloLimits limits = {}) {
  ClientHelloReader r(limits);
  r.feed(input);
  return summarize(r);
}

Outcome read_every_way(const Bytes& input, ClientHelloLimits limits = {}) {
  const Outcome whole = read_all(input, limits);
  EXPECT_EQ(whole, feed_in_pieces(input, limits, [] { return std::size_t{1}; }));
  std::mt19937 rng(static_cast<unsigned>(input.size()));
  for (int round = 0; round < 8; ++round) {
    std::uniform_int_distribution<std::size_t> size(1, 1 + input.size() / 4);
    EXPECT_EQ(whole, feed_in_pieces(input, limits, [&] { return size(rng); }));
  }
  return whole;
}

// ---------------------------------------------------------------------------------------------
// Well-formed hellos

TEST(ClientHello, ReadsABuiltHello) {
  const Bytes wire = hello();
  ClientHelloReader r;
  ASSERT_EQ(r.feed(wire), ParseStatus::kComplete) << r.error().code;
  const ClientHello& h = r.hello();
  EXPECT_EQ(h.legacy_version, kTls12);
  EXPECT_EQ(h.random.size(), 32u);
  EXPECT_EQ(h.session_id.size(), 32u);
  EXPECT_EQ(h.cipher_suites.to_vector(), (std::vector<std::uint16_t>{0x1301, 0x1302, 0xc02f}));
  EXPECT_EQ(h.compression_methods.size(), 1u);
  EXPECT_EQ(h.server_name.value_or(""), "api.example.com");
  EXPECT_TRUE(h.has_supported_versions);
  EXPECT_EQ(h.supported_versions.to_vector(), (std::vector<std::uint16_t>{kTls13, kTls12}));
  EXPECT_EQ(h.alpn, (std::vector<std::string_view>{"h2", "http/1.1"}));
  EXPECT_EQ(h.supported_groups.to_vector(), (std::vector<std::uint16_t>{0x001d, 0x0017}));
  EXPECT_EQ(h.signature_algorithms.to_vector(), (std::vector<std::uint16_t>{0x0403, 0x0804}));
  EXPECT_EQ(h.key_share_groups, (std::vector<std::uint16_t>{0x001d}));
  EXPECT_EQ(h.extension_types,
            (std::vector<std::uint16_t>{0, kExtSupportedVersions, kExtAlpn, kExtSupportedGroups,
                                        kExtSignatureAlgorithms, kExtKeyShare}));
  EXPECT_TRUE(h.has_extension(kExtAlpn));
  EXPECT_FALSE(h.has_extension(kExtPreSharedKey));
  EXPECT_FALSE(h.has_grease);
  EXPECT_EQ(h.max_offered_version(), kTls13);
  EXPECT_TRUE(h.offers_at_least(kTls12));
  EXPECT_EQ(r.consumed(), wire.size());
  EXPECT_EQ(r.record_count(), 1u);
  EXPECT_EQ(r.bytes_needed_hint(), 0u);
}

TEST(ClientHello, GreaseIsReportedAndIgnoredForVersions) {
  HelloSpec spec;
  spec.suites = u16s({0x3a3a, 0x1301});
  spec.extensions = {{0x0a0a, {}},
                     sni("g.example"),
                     supported_versions({0xdada, kTls13, kTls12}),
                     groups({0x4a4a, 0x001d}),
                     key_share({0x4a4a, 0x001d}),
                     {0x7f7f, {}}, // not GREASE (high nibbles)
                     {0xfafa, Bytes{0}}};
  ClientHelloReader r;
  ASSERT_EQ(r.feed(hello(spec)), ParseStatus::kComplete) << r.error().code;
  EXPECT_TRUE(r.hello().has_grease);
  EXPECT_EQ(r.hello().max_offered_version(), kTls13);
  EXPECT_TRUE(is_grease(0x0a0a));
  EXPECT_TRUE(is_grease(0xfafa));
  EXPECT_FALSE(is_grease(0x0a1a));
  EXPECT_FALSE(is_grease(0x7f7f));
}

TEST(ClientHello, GreaseOnlyInSuitesIsSeen) {
  HelloSpec spec;
  spec.suites = u16s({0x1301, 0x2a2a});
  ClientHelloReader r;
  ASSERT_EQ(r.feed(hello(spec)), ParseStatus::kComplete);
  EXPECT_TRUE(r.hello().has_grease);
}

TEST(ClientHello, MaxOfferedVersion) {
  struct Case {
    std::uint16_t legacy;
    std::optional<std::vector<std::uint16_t>> versions;
    std::uint16_t expected;
  };
  for (const Case& c : std::vector<Case>{
           {kTls12, std::nullopt, kTls12},
           {kTls10, std::nullopt, kTls10},
           {kSsl30, std::nullopt, kSsl30},
           {kTls13, std::nullopt, kTls12},  // 1.3 needs supported_versions (RFC 8446 4.2.1)
           {kTls12, std::vector<std::uint16_t>{kTls12, kTls11}, kTls12},
           {kTls12, std::vector<std::uint16_t>{kTls11, kTls13}, kTls13},
           {kTls12, std::vector<std::uint16_t>{0x7f1c, kTls12}, kTls12},  // draft ignored
           {kTls12, std::vector<std::uint16_t>{0x1a1a}, 0},                // only GREASE
       }) {
    HelloSpec spec;
    spec.legacy_version = c.legacy;
    spec.extensions = {sni("v.example")};
    if (c.versions) {
      Bytes list;
      for (auto v : *c.versions) put16(list, v);
      spec.extensions.push_back({kExtSupportedVersions, vec8(list)});
    }
    ClientHelloReader r;
    ASSERT_EQ(r.feed(hello(spec)), ParseStatus::kComplete) << r.error().code;
    EXPECT_EQ(r.hello().max_offered_version(), c.expected) << c.legacy;
    EXPECT_EQ(r.hello().offers_at_least(kTls12), c.expected >= kTls12);
  }
}

TEST(ClientHello, Tls10HelloWithoutExtensions) {
  HelloSpec spec;
  spec.legacy_version = kTls10;
  spec.session_id = {};
  spec.suites = u16s({0x002f, 0x0035, 0x000a});
  spec.compression = {1, 0};
  spec.with_extensions = false;
  const Outcome o = read_every_way(hello(spec));
  ASSERT_EQ(o.status, ParseStatus::kComplete) << o.code;
  EXPECT_EQ(o.sni, "<none>");
  EXPECT_EQ(o.max_version, kTls10);
  ClientHelloReader r;
  ASSERT_EQ(r.feed(hello(spec)), ParseStatus::kComplete);
  EXPECT_FALSE(r.hello().offers_at_least(kTls12));
  EXPECT_TRUE(r.hello().extension_types.empty());
}

TEST(ClientHello, EmptyExtensionsBlockAndNoSni) {
  HelloSpec spec;
  spec.extensions = {};
  EXPECT_EQ(read_every_way(hello(spec)).status, ParseStatus::kComplete);
  spec.extensions = {supported_versions({kTls13})};
  const Outcome o = read_every_way(hello(spec));
  EXPECT_EQ(o.sni, "<none>");
  EXPECT_EQ(o.max_version, kTls13);
}

TEST(ClientHello, PreSharedKeyLastIsFine) {
  HelloSpec spec;
  spec.extensions.push_back({kExtPreSharedKey, Bytes{0, 0}});
  EXPECT_EQ(read_all(hello(spec)).status, ParseStatus::kComplete);
}

// ---------------------------------------------------------------------------------------------
// Fragmentation: records of any size, each arriving in pieces of any size.

TEST(ClientHello, ReassemblesAcrossRecordsOfAnySize) {
  const Bytes message = build_message(HelloSpec{});
  const Outcome reference = read_all(wrap_records(message));
  ASSERT_EQ(reference.status, ParseStatus::kComplete);
  for (std::size_t fragment : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{4},
                               std::size_t{5}, std::size_t{7}, std::size_t{64},
                               message.size() - 1}) {
    const Bytes wire = wrap_records(message, fragment);
    Outcome o = read_every_way(wire);
    EXPECT_EQ(o.consumed, wire.size()) << fragment;
    o.consumed = reference.consumed;
    EXPECT_EQ(o, reference) << fragment;
    ClientHelloReader r;
    r.feed(wire);
    EXPECT_EQ(r.record_count(), (message.size() + fragment - 1) / fragment);
  }
}

TEST(ClientHello, RecordVersionsFromSsl3ToTls13AreAccepted) {
  for (std::uint16_t v : {kSsl30, kTls10, kTls11, kTls12, kTls13}) {
    EXPECT_EQ(read_all(wrap_records(build_message(HelloSpec{}), 100, v)).status,
              ParseStatus::kComplete);
  }
}

TEST(ClientHello, LargePostQuantumSizedHello) {
  // X25519MLKEM768 (0x11ec) share is 1216 bytes; with padding the hello spans two records.
  HelloSpec spec;
  Bytes shares;
  put16(shares, 0x11ec);
  append(shares, vec16(Bytes(1216, 7)));
  put16(shares, 0x001d);
  append(shares, vec16(Bytes(32, 8)));
  spec.extensions = {sni("pq.example"), supported_versions({kTls13}), groups({0x11ec, 0x001d}),
                     {kExtKeyShare, vec16(shares)}, padding(20000)};
  const Bytes wire = hello(spec);
  ClientHelloReader r;
  ASSERT_EQ(r.feed(wire), ParseStatus::kComplete) << r.error().code;
  EXPECT_EQ(r.record_count(), 2u);
  EXPECT_EQ(r.hello().key_share_groups, (std::vector<std::uint16_t>{0x11ec, 0x001d}));
  EXPECT_EQ(r.consumed(), wire.size());
}

TEST(ClientHello, LeavesBytesAfterTheHelloToTheCaller) {
  const Bytes wire = hello();
  Bytes stream = wire;
  // An early-data or garbage record right behind the hello: never needed, never consumed.
  append(stream, Bytes{23, 3, 3, 0, 4, 1, 2, 3, 4});
  ClientHelloReader r;
  ASSERT_EQ(r.feed(stream), ParseStatus::kComplete);
  EXPECT_EQ(r.consumed(), wire.size());
  EXPECT_EQ(r.consumed_last_feed(), wire.size());
  EXPECT_EQ(r.feed(stream), ParseStatus::kComplete);
  EXPECT_EQ(r.consumed_last_feed(), 0u);

  for (std::size_t cut = 1; cut < stream.size(); ++cut) {
    ClientHelloReader q;
    const std::span<const std::uint8_t> all(stream);
    std::size_t used = 0;
    q.feed(all.first(cut));
    used += q.consumed_last_feed();
    q.feed(all.subspan(cut));
    used += q.consumed_last_feed();
    ASSERT_EQ(q.status(), ParseStatus::kComplete) << cut;
    EXPECT_EQ(used, wire.size()) << cut;
  }
}

TEST(ClientHello, CompletesOnTheLastByteWithoutAskingForMore) {
  const Bytes wire = wrap_records(build_message(HelloSpec{}), 50);
  ClientHelloReader r;
  EXPECT_EQ(r.bytes_needed_hint(), 5u);
  for (std::size_t i = 0; i + 1 < wire.size(); ++i) {
    ASSERT_EQ(r.feed(std::span<const std::uint8_t>(wire).subspan(i, 1)), ParseStatus::kNeedMore);
    ASSERT_GE(r.bytes_needed_hint(), 1u);
  }
  EXPECT_EQ(r.feed(std::span<const std::uint8_t>(wire).subspan(wire.size() - 1)),
            ParseStatus::kComplete);
}

TEST(ClientHello, BytesNeededHint) {
  const Bytes wire = wrap_records(build_message(HelloSpec{}), 100);
  ClientHelloReader r;
  r.feed(std::span<const std::uint8_t>(wire).first(3));
  EXPECT_EQ(r.bytes_needed_hint(), 2u);  // rest of the record header
  r.feed(std::span<const std::uint8_t>(wire).subspan(3, 2));
  EXPECT_EQ(r.bytes_needed_hint(), 4u);  // the handshake header
  r.feed(std::span<const std::uint8_t>(wire).subspan(5, 4));
  EXPECT_EQ(r.bytes_needed_hint(), 96u);  // rest of the first record
}

// ---------------------------------------------------------------------------------------------
// Captured hellos (tests/fixtures/client_hello/capture.py)

struct CapturedCase {
  const char* file;
  const char* sni;  // "<none>" when absent
  std::uint16_t max_version;
  std::vector<std::string> alpn;
};

class CapturedHello : public ::testing::TestWithParam<CapturedCase> {};

TEST_P(CapturedHello, Reads) {
  const CapturedCase& c = GetParam();
  const Bytes wire = fixture(c.file);
  ASSERT_FALSE(wire.empty());
  const Outcome o = read_every_way(wire);
  ASSERT_EQ(o.status, ParseStatus::kComplete) << o.code;
  EXPECT_EQ(o.consumed, wire.size());
  EXPECT_EQ(o.sni, c.sni);
  EXPECT_EQ(o.max_version, c.max_version);
  EXPECT_EQ(o.alpn, c.alpn);

  // The same message re-fragmented into 1-byte and 13-byte records reads the same.
  const Bytes message = unwrap_records(wire);
  for (std::size_t fragment : {1, 13}) {
    Outcome refragmented = read_all(wrap_records(message, fragment));
    refragmented.consumed = o.consumed;
    EXPECT_EQ(refragmented, o) << fragment;
  }
}

struct CaseName {
  template <typename T>
  std::string operator()(const ::testing::TestParamInfo<T>& param_info) const {
    std::string name = param_info.param.file;
    for (char& ch : name) {
      if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
    }
    return name;
  }
};

INSTANTIATE_TEST_SUITE_P(
    Fixtures, CapturedHello,
    ::testing::Values(
        CapturedCase{"openssl_default.bin", "example.com", kTls13, {}},
        CapturedCase{"openssl_tls13.bin", "tls13.example.com", kTls13, {"h2", "http/1.1"}},
        CapturedCase{"openssl_tls12.bin", "tls12.example.com", kTls12, {}},
        CapturedCase{"openssl_no_tls13.bin", "legacy.example.com", kTls12, {}},
        CapturedCase{"openssl_tls10.bin", "old.example.com", kTls10, {}},
        CapturedCase{"openssl_no_sni.bin", "<none>", kTls13, {}},
        CapturedCase{"curl.bin", "curl.example.com", kTls13, {"h2", "http/1.1"}},
        CapturedCase{"curl_http11.bin", "api.example.com", kTls13, {"http/1.1"}}),
    CaseName{});

// ---------------------------------------------------------------------------------------------
// Rejections

struct RejectCase {
  const char* name;
  Bytes input;
  std::string code;
};

Bytes with_message(const std::function<void(HelloSpec&)>& edit) {
  HelloSpec spec;
  edit(spec);
  return hello(spec);
}

// A built hello whose message bytes are edited after building (lengths left inconsistent).
Bytes raw_edit(const std::function<void(Bytes&)>& edit) {
  Bytes message = build_message(HelloSpec{});
  edit(message);
  return wrap_records(message);
}

// Offset of the extensions block length inside a built default message.
std::size_t extensions_offset(const HelloSpec& spec = {}) {
  return 4 + 2 + 32 + 1 + spec.session_id.size() + 2 + spec.suites.size() + 1 +
         spec.compression.size();
}

class ClientHelloRejects : public ::testing::TestWithParam<RejectCase> {};

TEST_P(ClientHelloRejects, Rejects) {
  const RejectCase& c = GetParam();
  const Outcome o = read_every_way(c.input);
  ASSERT_EQ(o.status, ParseStatus::kError);
  EXPECT_EQ(o.code, c.code);
}

struct RejectName {
  std::string operator()(const ::testing::TestParamInfo<RejectCase>& param_info) const {
    return param_info.param.name;
  }
};

INSTANTIATE_TEST_SUITE_P(
    Table, ClientHelloRejects,
    ::testing::Values(
        // not TLS at all: decided on the first byte
        RejectCase{"http_get", text("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), "not_tls"},
        RejectCase{"connect", text("CONNECT a:443 HTTP/1.1\r\n\r\n"), "not_tls"},
        RejectCase{"ssh_banner", text("SSH-2.0-OpenSSH_9.2\r\n"), "not_tls"},
        RejectCase{"zeros", Bytes(64, 0), "not_tls"},
        RejectCase{"alert_record", Bytes{21, 3, 3, 0, 2, 2, 40}, "not_tls"},
        RejectCase{"sslv2", Bytes{0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15}, "sslv2_hello"},
        // record layer
        RejectCase{"record_major", Bytes{22, 2, 0, 0, 5, 1, 0, 0, 1, 0}, "bad_record_version"},
        RejectCase{"record_minor", Bytes{22, 3, 5, 0, 5, 1, 0, 0, 1, 0}, "bad_record_version"},
        RejectCase{"empty_record", Bytes{22, 3, 1, 0, 0}, "empty_record"},
        RejectCase{"record_overflow", Bytes{22, 3, 1, 0x40, 0x01, 1}, "record_overflow"},
        RejectCase{"second_record_not_handshake",
                   [] {
                     Bytes wire = wrap_records(build_message(HelloSpec{}), 100);
                     wire[105] = 21;
                     return wire;
                   }(),
                   "unexpected_content_type"},
        RejectCase{"server_hello", wrap_records(build_message(HelloSpec{}, 2)), "not_client_hello"},
        RejectCase{"finished_type", Bytes{22, 3, 1, 0, 1, 20}, "not_client_hello"},
        RejectCase{"message_too_large", Bytes{22, 3, 1, 0, 4, 1, 0x01, 0x00, 0x01},
                   "message_too_large"},
        RejectCase{"trailing_record_data",
                   [] {
                     Bytes message = build_message(HelloSpec{});
                     message.push_back(0);  // one byte of a "next" handshake message
                     return wrap_records(message);
                   }(),
                   "trailing_record_data"},
        // ClientHello body
        RejectCase{"truncated_random", wrap_records(Bytes{1, 0, 0, 4, 3, 3, 1, 2}), "truncated"},
        RejectCase{"empty_body", wrap_records(Bytes{1, 0, 0, 0}), "truncated"},
        RejectCase{"legacy_version_2", with_message([](HelloSpec& s) { s.legacy_version = 0x0200; }),
                   "bad_legacy_version"},
        RejectCase{"legacy_version_future",
                   with_message([](HelloSpec& s) { s.legacy_version = 0x0305; }),
                   "bad_legacy_version"},
        RejectCase{"session_id_33", with_message([](HelloSpec& s) { s.session_id = Bytes(33, 1); }),
                   "bad_session_id"},
        RejectCase{"no_suites", with_message([](HelloSpec& s) { s.suites = {}; }),
                   "bad_cipher_suites"},
        RejectCase{"odd_suites", with_message([](HelloSpec& s) { s.suites = {0x13, 0x01, 0x13}; }),
                   "bad_cipher_suites"},
        RejectCase{"no_compression", with_message([](HelloSpec& s) { s.compression = {}; }),
                   "bad_compression_methods"},
        RejectCase{"deflate_only", with_message([](HelloSpec& s) { s.compression = {1}; }),
                   "bad_compression_methods"},
        RejectCase{"extensions_short",
                   raw_edit([](Bytes& m) { m[extensions_offset() + 1] -= 1; }),
                   "bad_extensions"},
        RejectCase{"extensions_long",
                   raw_edit([](Bytes& m) { m[extensions_offset() + 1] += 1; }),
                   "bad_extensions"},
        RejectCase{"duplicate_extension",
                   with_message([](HelloSpec& s) { s.extensions.push_back(alpn({"h2"})); }),
                   "duplicate_extension"},
        RejectCase{"duplicate_sni",
                   with_message([](HelloSpec& s) { s.extensions.push_back(sni("other.example")); }),
                   "duplicate_extension"},
        RejectCase{"duplicate_unknown",
                   with_message([](HelloSpec& s) {
                     s.extensions.push_back({0x1234, {}});
                     s.extensions.push_back({0x1234, {1}});
                   }),
                   "duplicate_extension"},
        RejectCase{"psk_not_last",
                   with_message([](HelloSpec& s) {
                     s.extensions.insert(s.extensions.begin(), {kExtPreSharedKey, Bytes{0, 0}});
                   }),
                   "psk_not_last"},
        // SNI
        RejectCase{"sni_empty_extension",
                   with_message([](HelloSpec& s) { s.extensions[0] = {kExtServerName, {}}; }),
                   "sni_malformed"},
        RejectCase{"sni_empty_list",
                   with_message([](HelloSpec& s) { s.extensions[0] = {kExtServerName, {0, 0}}; }),
                   "sni_malformed"},
        RejectCase{"sni_list_length_wrong",
                   with_message([](HelloSpec& s) { s.extensions[0].data[1] += 1; }),
                   "sni_malformed"},
        RejectCase{"sni_two_names",
                   with_message([](HelloSpec& s) {
                     Bytes list{0};
                     append(list, vec16(text("a.example")));
                     list.push_back(0);
                     append(list, vec16(text("b.example")));
                     s.extensions[0] = {kExtServerName, vec16(list)};
                   }),
                   "sni_multiple_names"},
        RejectCase{"sni_not_host_name",
                   with_message([](HelloSpec& s) { s.extensions[0].data[2] = 1; }),
                   "sni_not_host_name"},
        RejectCase{"sni_empty_name", with_message([](HelloSpec& s) { s.extensions[0] = sni(""); }),
                   "sni_empty"},
        RejectCase{"sni_nul",
                   with_message([](HelloSpec& s) {
                     s.extensions[0] = sni(std::string_view("good.example\0.evil", 18));
                   }),
                   "sni_nul"},
        // other extensions
        RejectCase{"versions_odd",
                   with_message([](HelloSpec& s) {
                     s.extensions[1] = {kExtSupportedVersions, {3, 3, 4, 3}};
                   }),
                   "bad_supported_versions"},
        RejectCase{"versions_empty",
                   with_message([](HelloSpec& s) { s.extensions[1] = {kExtSupportedVersions, {0}}; }),
                   "bad_supported_versions"},
        RejectCase{"alpn_empty_name",
                   with_message([](HelloSpec& s) { s.extensions[2] = alpn({"h2", ""}); }),
                   "bad_alpn"},
        RejectCase{"alpn_empty_list",
                   with_message([](HelloSpec& s) { s.extensions[2] = {kExtAlpn, {0, 0}}; }),
                   "bad_alpn"},
        RejectCase{"groups_odd",
                   with_message([](HelloSpec& s) { s.extensions[3] = {kExtSupportedGroups, {0, 1, 0}}; }),
                   "bad_supported_groups"},
        RejectCase{"sigalgs_empty",
                   with_message([](HelloSpec& s) {
                     s.extensions[4] = {kExtSignatureAlgorithms, {0, 0}};
                   }),
                   "bad_signature_algorithms"},
        RejectCase{"key_share_empty_key",
                   with_message([](HelloSpec& s) {
                     s.extensions[5] = {kExtKeyShare, {0, 4, 0, 0x1d, 0, 0}};
                   }),
                   "bad_key_share"},
        RejectCase{"key_share_duplicate_group",
                   with_message([](HelloSpec& s) { s.extensions[5] = key_share({0x1d, 0x17, 0x1d}); }),
                   "duplicate_key_share"}),
    RejectName{});

TEST(ClientHello, ExtensionRunningPastTheBlock) {
  // An extension whose length points past the end of the extensions block.
  HelloSpec spec;
  spec.extensions = {{0x0023, Bytes{1, 2, 3}}};
  Bytes message = build_message(spec);
  message[message.size() - 4] = 9;  // extension_data length 3 -> 0x0009 (low byte)
  const Outcome o = read_every_way(wrap_records(message));
  EXPECT_EQ(o.code, "bad_extensions");
}

TEST(ClientHello, WireLimitBoundsTinyRecords) {
  ClientHelloLimits limits;
  limits.handshake.max_wire_bytes = 600;
  const Bytes message = build_message(HelloSpec{});
  // ~150 bytes of message in 1-byte records is ~900 bytes of wire: refused at byte 601.
  const Outcome o = read_every_way(wrap_records(message, 1), limits);
  EXPECT_EQ(o.code, "too_many_bytes");
  EXPECT_EQ(o.error_offset, 600u);
  EXPECT_EQ(read_every_way(wrap_records(message), limits).status, ParseStatus::kComplete);
}

TEST(ClientHello, MessageLimitIsConfigurable) {
  ClientHelloLimits limits;
  limits.handshake.max_message_bytes = 100;
  EXPECT_EQ(read_every_way(hello(), limits).code, "message_too_large");
  HelloSpec spec;
  spec.extensions = {padding(60000)};
  EXPECT_EQ(read_every_way(hello(spec)).status, ParseStatus::kComplete);
  spec.extensions = {padding(66000)};
  EXPECT_EQ(read_every_way(hello(spec)).code, "message_too_large");
}

TEST(ClientHello, NotTlsFailsOnTheFirstByte) {
  ClientHelloReader r;
  EXPECT_EQ(r.feed(std::string_view("G")), ParseStatus::kError);
  EXPECT_EQ(r.error().code, "not_tls");
  EXPECT_EQ(r.consumed(), 0u);
  const Error e = r.error().to_error();
  EXPECT_EQ(e.code, "not_tls");
  EXPECT_EQ(e.offset, 0u);
}

TEST(ClientHello, ViewsSurviveAMove) {
  ClientHelloReader r;
  ASSERT_EQ(r.feed(hello()), ParseStatus::kComplete);
  ClientHelloReader moved = std::move(r);
  EXPECT_EQ(moved.hello().server_name.value_or(""), "api.example.com");
  EXPECT_EQ(moved.hello().alpn.at(1), "http/1.1");
}

// ---------------------------------------------------------------------------------------------
// The reassembler on its own: several messages in one record (what a server's first flight
// looks like in TLS 1.2), for the later ServerHello/Certificate readers.

TEST(HandshakeReassembler, YieldsMessagesOneByOne) {
  Bytes first{2, 0, 0, 3, 0xa, 0xb, 0xc};
  Bytes second{11, 0, 0, 2, 0xd, 0xe};
  Bytes third{14, 0, 0, 0};
  Bytes record = first;
  append(record, second);
  append(record, third);
  const Bytes wire = wrap_records(record, 5);  // messages straddle record boundaries

  HandshakeReassembler r;
  std::span<const std::uint8_t> rest(wire);
  std::vector<std::pair<std::uint8_t, Bytes>> seen;
  while (!rest.empty()) {
    const auto result = r.feed(rest);
    rest = rest.subspan(result.consumed);
    ASSERT_NE(result.status, ParseStatus::kError) << r.error().code;
    if (result.status == ParseStatus::kComplete) {
      seen.emplace_back(r.message_type(), Bytes(r.message_body().begin(), r.message_body().end()));
      r.next_message();
    }
  }
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], (std::pair<std::uint8_t, Bytes>{2, {0xa, 0xb, 0xc}}));
  EXPECT_EQ(seen[1], (std::pair<std::uint8_t, Bytes>{11, {0xd, 0xe}}));
  EXPECT_EQ(seen[2], (std::pair<std::uint8_t, Bytes>{14, {}}));
  EXPECT_EQ(r.wire_bytes(), wire.size());
}

TEST(HandshakeReassembler, ExpectTypeFailsEarly) {
  HandshakeReassembler r;
  r.expect_type(2);
  const Bytes wire{22, 3, 3, 0, 10, 1};
  const auto result = r.feed(wire);
  EXPECT_EQ(result.status, ParseStatus::kError);
  EXPECT_EQ(r.error().code, "unexpected_handshake_type");
  EXPECT_EQ(r.error().offset, 5u);
}

}  // namespace
}  // namespace moat::core::tls

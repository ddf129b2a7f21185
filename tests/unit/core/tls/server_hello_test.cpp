#include "core/tls/server_hello.hpp"

#include <gtest/gtest.h>

#include <algorithm>
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
using Stop = ServerFlightReader::Stop;

// ---------------------------------------------------------------------------------------------
// A small server-flight builder: every length prefix computed, so tests can break one thing.

void put16(Bytes& out, std::size_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}
void put24(Bytes& out, std::size_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 16));
  put16(out, v & 0xffff);
}
void append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }
Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) append(out, p);
  return out;
}
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
Bytes vec24(const Bytes& body) {
  Bytes out;
  put24(out, body.size());
  append(out, body);
  return out;
}
Bytes u16(std::uint16_t v) {
  Bytes out;
  put16(out, v);
  return out;
}

struct Extension {
  std::uint16_t type;
  Bytes data;
};

Extension selected_version(std::uint16_t v = kTls13) { return {kExtSupportedVersions, u16(v)}; }
Extension server_share(std::uint16_t group = 0x001d) {
  return {kExtKeyShare, cat({u16(group), vec16(Bytes(32, 0x42))})};
}
Extension alpn(std::string_view name) {
  return {kExtAlpn, vec16(vec8(Bytes(name.begin(), name.end())))};
}
Extension renegotiation_info() { return {kExtRenegotiationInfo, {0}}; }
Extension ems() { return {kExtExtendedMasterSecret, {}}; }

struct HelloSpec {
  std::uint16_t legacy_version = kTls12;
  Bytes random = Bytes(32, 0xab);
  Bytes session_id = Bytes(32, 0x11);
  std::uint16_t suite = 0xc02f;  // ECDHE_RSA_WITH_AES_128_GCM_SHA256
  std::uint8_t compression = 0;
  bool with_extensions = true;
  std::vector<Extension> extensions = {renegotiation_info(), ems(), alpn("h2"), {11, {1, 0}}};
};

HelloSpec tls13_spec() {
  HelloSpec spec;
  spec.suite = 0x1301;
  spec.extensions = {selected_version(), server_share(0x001d)};
  return spec;
}

HelloSpec hrr_spec() {
  HelloSpec spec;
  spec.random.assign(std::begin(kHelloRetryRequestRandom), std::end(kHelloRetryRequestRandom));
  spec.suite = 0x1302;
  spec.extensions = {
      selected_version(), {kExtKeyShare, u16(0x0018)}, {kExtCookie, vec16(Bytes(16, 0xc0))}};
  return spec;
}

Bytes message(std::uint8_t type, const Bytes& body) {
  Bytes msg{type};
  put24(msg, body.size());
  append(msg, body);
  return msg;
}

Bytes server_hello(const HelloSpec& spec = {}) {
  Bytes body;
  put16(body, spec.legacy_version);
  append(body, spec.random);
  append(body, vec8(spec.session_id));
  put16(body, spec.suite);
  body.push_back(spec.compression);
  if (spec.with_extensions) {
    Bytes exts;
    for (const auto& e : spec.extensions) {
      put16(exts, e.type);
      append(exts, vec16(e.data));
    }
    append(body, vec16(exts));
  }
  return message(kHandshakeServerHello, body);
}

// A minimal DER SEQUENCE of `n` content bytes (short or long length form).
Bytes fake_der(std::size_t n, std::uint8_t fill = 0x05) {
  Bytes out{0x30};
  if (n < 0x80) {
    out.push_back(static_cast<std::uint8_t>(n));
  } else if (n < 0x100) {
    append(out, {0x81, static_cast<std::uint8_t>(n)});
  } else if (n < 0x10000) {
    out.push_back(0x82);
    put16(out, n);
  } else {
    out.push_back(0x83);
    put24(out, n);
  }
  append(out, Bytes(n, fill));
  return out;
}

Bytes certificate(const std::vector<Bytes>& ders) {
  Bytes list;
  for (const auto& d : ders) append(list, vec24(d));
  return message(kHandshakeCertificate, vec24(list));
}

Bytes ske_ecdhe(std::uint16_t curve = 0x001d, std::optional<std::uint16_t> scheme = 0x0804) {
  Bytes body{3};
  put16(body, curve);
  append(body, vec8(Bytes(32, 0x77)));
  if (scheme) {
    put16(body, *scheme);
    append(body, vec16(Bytes(256, 0x5a)));
  }
  return message(kHandshakeServerKeyExchange, body);
}

Bytes ske_dhe(const Bytes& p, std::optional<std::uint16_t> scheme = 0x0804) {
  Bytes body = cat({vec16(p), vec16({2}), vec16(Bytes(p.size(), 0x33))});
  if (scheme) {
    put16(body, *scheme);
    append(body, vec16(Bytes(256, 0x5a)));
  }
  return message(kHandshakeServerKeyExchange, body);
}

Bytes server_hello_done() { return message(kHandshakeServerHelloDone, {}); }

// Cuts bytes into records of one content type, at most `fragment` bytes each.
Bytes wrap_records(const Bytes& payload, std::size_t fragment = kMaxPlaintextRecord,
                   std::uint8_t type = kContentTypeHandshake, std::uint16_t version = kTls12) {
  Bytes out;
  for (std::size_t pos = 0; pos < payload.size(); pos += fragment) {
    const std::size_t n = std::min(fragment, payload.size() - pos);
    out.push_back(type);
    put16(out, version);
    put16(out, n);
    out.insert(out.end(), payload.begin() + static_cast<std::ptrdiff_t>(pos),
               payload.begin() + static_cast<std::ptrdiff_t>(pos + n));
  }
  return out;
}

Bytes alert_record(std::uint8_t level, std::uint8_t description) {
  return wrap_records({level, description}, 16, kContentTypeAlert);
}
Bytes ccs_record() { return wrap_records({1}, 16, kContentTypeChangeCipherSpec); }
Bytes app_data_record(std::size_t n = 40) {
  return wrap_records(Bytes(n, 0xee), kMaxPlaintextRecord, kContentTypeApplicationData);
}

// A full TLS 1.2 ECDHE flight with two (fake) certificates, in one record.
Bytes tls12_messages() {
  return cat({server_hello(), certificate({fake_der(300, 1), fake_der(200, 2)}), ske_ecdhe(),
              server_hello_done()});
}
Bytes tls12_flight(std::size_t fragment = kMaxPlaintextRecord) {
  return wrap_records(tls12_messages(), fragment);
}

// The handshake bytes inside a run of records (for re-fragmenting real flights).
Bytes unwrap_handshake(const Bytes& wire, std::size_t* end = nullptr) {
  Bytes out;
  std::size_t pos = 0;
  while (pos + 5 <= wire.size() && wire[pos] == kContentTypeHandshake) {
    const std::size_t n = (std::size_t{wire[pos + 3]} << 8) | wire[pos + 4];
    out.insert(out.end(), wire.begin() + static_cast<std::ptrdiff_t>(pos + 5),
               wire.begin() + static_cast<std::ptrdiff_t>(pos + 5 + n));
    pos += 5 + n;
  }
  if (end) *end = pos;
  return out;
}

std::filesystem::path fixture_path(const std::string& name) {
  return std::filesystem::path(MOAT_SOURCE_DIR) / "tests/fixtures/server_hello" / name;
}
Bytes fixture(const std::string& name) {
  std::ifstream in(fixture_path(name), std::ios::binary);
  EXPECT_TRUE(in.good()) << fixture_path(name);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
std::string fixture_text(const std::string& name) {
  const Bytes b = fixture(name);
  std::string s(b.begin(), b.end());
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

// ---------------------------------------------------------------------------------------------
// Feeding helpers: everything observable, compared across ways of splitting the bytes.

struct Outcome {
  ParseStatus status = ParseStatus::kNeedMore;
  std::string code;
  std::size_t error_offset = 0;
  std::size_t consumed = 0;
  bool has_hello = false;
  std::uint16_t version = 0;
  std::uint16_t suite = 0;
  bool hrr = false;
  std::vector<std::uint16_t> extensions;
  std::optional<std::uint16_t> key_share_group;
  std::string alpn;
  std::vector<std::uint8_t> messages;
  std::vector<Bytes> certificates;
  CertificateVisibility visibility = CertificateVisibility::kNotRead;
  std::optional<std::uint16_t> ecdhe_curve;
  std::optional<std::size_t> dhe_prime_bits;
  std::optional<std::uint16_t> ske_scheme;
  std::string alert;
  std::size_t warnings = 0;

  friend bool operator==(const Outcome&, const Outcome&) = default;
};

Outcome summarize(const ServerFlightReader& r) {
  Outcome o;
  o.status = r.status();
  o.consumed = r.consumed();
  if (r.status() == ParseStatus::kError) {
    o.code = r.error().code;
    o.error_offset = r.error().offset;
    return o;
  }
  const ServerFlight& f = r.flight();
  if (f.hello) {
    o.has_hello = true;
    o.version = f.hello->negotiated_version();
    o.suite = f.hello->cipher_suite;
    o.hrr = f.hello->is_hello_retry_request;
    o.extensions = f.hello->extension_types;
    o.key_share_group = f.hello->key_share_group;
    o.alpn = std::string(f.hello->alpn.value_or("<none>"));
  }
  o.messages = f.message_types;
  for (auto c : f.certificates) o.certificates.emplace_back(c.begin(), c.end());
  o.visibility = f.certificate;
  o.ecdhe_curve = f.ecdhe_curve;
  o.dhe_prime_bits = f.dhe_prime_bits;
  o.ske_scheme = f.ske_signature_scheme;
  if (f.alert) o.alert = f.alert->describe();
  o.warnings = f.warnings.size();
  return o;
}

template <typename NextSize>
Outcome feed_in_pieces(const Bytes& input, Stop stop, ServerFlightLimits limits,
                       NextSize next_size) {
  ServerFlightReader r(stop, limits);
  std::size_t pos = 0;
  std::size_t taken = 0;
  while (pos < input.size() && r.status() == ParseStatus::kNeedMore) {
    const std::size_t n = std::min(input.size() - pos, next_size());
    r.feed(std::span<const std::uint8_t>(input).subspan(pos, n));
    taken += r.consumed_last_feed();
    pos += n;
    if (r.status() == ParseStatus::kNeedMore) {
      EXPECT_GE(r.bytes_needed_hint(), 1u);
    }
  }
  if (r.status() != ParseStatus::kError) {
    EXPECT_EQ(taken, r.consumed());
  }
  return summarize(r);
}

Outcome read_all(const Bytes& input, Stop stop = Stop::kAfterServerHelloDone,
                 ServerFlightLimits limits = {}) {
  ServerFlightReader r(stop, limits);
  r.feed(input);
  return summarize(r);
}

// Reads whole, byte by byte and in random pieces; all must agree.
Outcome read_every_way(const Bytes& input, Stop stop = Stop::kAfterServerHelloDone,
                       ServerFlightLimits limits = {}) {
  const Outcome whole = read_all(input, stop, limits);
  EXPECT_EQ(whole, feed_in_pieces(input, stop, limits, [] { return std::size_t{1}; }));
  std::mt19937 rng(static_cast<unsigned>(input.size()));
  for (int round = 0; round < 6; ++round) {
    std::uniform_int_distribution<std::size_t> size(1, 1 + input.size() / 5);
    EXPECT_EQ(whole, feed_in_pieces(input, stop, limits, [&] { return size(rng); }));
  }
  return whole;
}

// ---------------------------------------------------------------------------------------------
// TLS 1.2 flights

TEST(ServerFlight, ReadsATls12FlightInOneRecord) {
  const Bytes wire = tls12_flight();
  ServerFlightReader r(Stop::kAfterServerHelloDone);
  ASSERT_EQ(r.feed(wire), ParseStatus::kComplete) << r.error().code;
  const ServerFlight& f = r.flight();
  ASSERT_TRUE(f.hello);
  const ServerHello& h = *f.hello;
  EXPECT_EQ(h.legacy_version, kTls12);
  EXPECT_EQ(h.negotiated_version(), kTls12);
  EXPECT_FALSE(h.selected_version);
  EXPECT_EQ(h.random.size(), 32u);
  EXPECT_FALSE(h.is_hello_retry_request);
  EXPECT_EQ(h.session_id.size(), 32u);
  EXPECT_EQ(h.cipher_suite, 0xc02f);
  EXPECT_EQ(h.compression, 0);
  EXPECT_EQ(h.extension_types, (std::vector<std::uint16_t>{
                                   kExtRenegotiationInfo, kExtExtendedMasterSecret, kExtAlpn, 11}));
  EXPECT_TRUE(h.has_extension(kExtAlpn));
  EXPECT_FALSE(h.has_extension(kExtKeyShare));
  EXPECT_EQ(h.alpn.value_or(""), "h2");
  EXPECT_TRUE(h.renegotiation_info);
  EXPECT_TRUE(h.extended_master_secret);
  EXPECT_FALSE(h.key_share_group);
  EXPECT_FALSE(h.downgrade_sentinel);
  EXPECT_EQ(f.message_types,
            (std::vector<std::uint8_t>{kHandshakeServerHello, kHandshakeCertificate,
                                       kHandshakeServerKeyExchange, kHandshakeServerHelloDone}));
  ASSERT_EQ(f.certificates.size(), 2u);
  EXPECT_EQ(f.certificates[0].size(), fake_der(300).size());
  EXPECT_EQ(f.certificates[1][4], 2);
  EXPECT_TRUE(f.certificate_visible());
  EXPECT_EQ(f.certificate, CertificateVisibility::kPresent);
  EXPECT_EQ(f.ecdhe_curve, std::optional<std::uint16_t>(0x001d));
  EXPECT_EQ(f.ske_signature_scheme, std::optional<std::uint16_t>(0x0804));
  EXPECT_FALSE(f.dhe_prime_bits);
  EXPECT_FALSE(f.alert);
  EXPECT_TRUE(f.has_message(kHandshakeServerHelloDone));
  EXPECT_EQ(r.consumed(), wire.size());
  EXPECT_EQ(r.consumed_last_feed(), wire.size());
  EXPECT_EQ(r.bytes_needed_hint(), 0u);
  // Complete: further bytes are not taken.
  EXPECT_EQ(r.feed(app_data_record()), ParseStatus::kComplete);
  EXPECT_EQ(r.consumed_last_feed(), 0u);
}

TEST(ServerFlight, AnySplitAndAnyRecordSizeReadsTheSame) {
  const Outcome reference = read_every_way(tls12_flight());
  ASSERT_EQ(reference.status, ParseStatus::kComplete) << reference.code;
  for (std::size_t fragment : {1, 2, 3, 4, 5, 7, 64, 300, 1000}) {
    const Bytes wire = tls12_flight(fragment);
    Outcome o = read_every_way(wire);
    EXPECT_EQ(o.consumed, wire.size()) << fragment;
    o.consumed = reference.consumed;
    EXPECT_EQ(o, reference) << fragment;
  }
}

TEST(ServerFlight, StopsWhereAsked) {
  const Bytes sh = server_hello();
  const Bytes cert = certificate({fake_der(100)});
  const Bytes wire = wrap_records(cat({sh, cert, ske_ecdhe(), server_hello_done()}));

  const Outcome after_hello = read_every_way(wire, Stop::kAfterServerHello);
  ASSERT_EQ(after_hello.status, ParseStatus::kComplete) << after_hello.code;
  EXPECT_EQ(after_hello.consumed, 5 + sh.size());
  EXPECT_EQ(after_hello.visibility, CertificateVisibility::kNotRead);
  EXPECT_TRUE(after_hello.certificates.empty());

  const Outcome after_cert = read_every_way(wire, Stop::kAfterCertificate);
  ASSERT_EQ(after_cert.status, ParseStatus::kComplete) << after_cert.code;
  EXPECT_EQ(after_cert.consumed, 5 + sh.size() + cert.size());
  EXPECT_EQ(after_cert.visibility, CertificateVisibility::kPresent);
  EXPECT_EQ(after_cert.certificates.size(), 1u);
  EXPECT_FALSE(after_cert.ecdhe_curve);

  const Outcome after_done = read_every_way(wire, Stop::kAfterServerHelloDone);
  ASSERT_EQ(after_done.status, ParseStatus::kComplete) << after_done.code;
  EXPECT_EQ(after_done.consumed, wire.size());
  EXPECT_EQ(after_done.ecdhe_curve, std::optional<std::uint16_t>(0x001d));

  // The default stop is after the Certificate (what the egress needs).
  ServerFlightReader r;
  ASSERT_EQ(r.feed(wire), ParseStatus::kComplete);
  EXPECT_EQ(r.consumed(), after_cert.consumed);
}

TEST(ServerFlight, EveryStrictPrefixNeedsMore) {
  const Bytes wire = tls12_flight(200);
  for (std::size_t n = 0; n < wire.size(); ++n) {
    ServerFlightReader r(Stop::kAfterServerHelloDone);
    ASSERT_EQ(r.feed(std::span<const std::uint8_t>(wire).first(n)), ParseStatus::kNeedMore) << n;
    ASSERT_EQ(r.consumed(), n);
  }
}

TEST(ServerFlight, LargeCertificateOverSeveralRecords) {
  // A 60 KiB chain: three full records and most of a fourth.
  const Bytes cert = certificate({fake_der(40000, 1), fake_der(21000, 2)});
  ASSERT_GT(cert.size(), 3 * kMaxPlaintextRecord);
  const Bytes wire = wrap_records(cat({server_hello(), cert, server_hello_done()}));
  ServerFlightReader r(Stop::kAfterServerHelloDone);
  ASSERT_EQ(r.feed(wire), ParseStatus::kComplete) << r.error().code;
  ASSERT_EQ(r.flight().certificates.size(), 2u);
  EXPECT_EQ(r.flight().certificates[0].size(), fake_der(40000).size());
  // No ServerKeyExchange: RSA key transport, nothing to report.
  EXPECT_FALSE(r.flight().ecdhe_curve);
  EXPECT_FALSE(r.flight().dhe_prime_bits);
  const Outcome o = read_every_way(wire);
  EXPECT_EQ(o.status, ParseStatus::kComplete);
}

TEST(ServerFlight, OversizeCertificateIsRefusedAtItsLength) {
  const Bytes sh = server_hello();
  const Bytes cert = certificate({fake_der(70000)});
  const Outcome o = read_every_way(wrap_records(cat({sh, cert})));
  EXPECT_EQ(o.code, "message_too_large");
  // The length's last byte: record header, ServerHello, record headers so far, 3 bytes in.
  const std::size_t records_before = (sh.size() + 3) / kMaxPlaintextRecord + 1;
  EXPECT_EQ(o.error_offset, records_before * 5 + sh.size() + 3);
}

TEST(ServerFlight, WireLimitBoundsTinyRecords) {
  ServerFlightLimits limits;
  limits.handshake.max_wire_bytes = 600;
  const Outcome o = read_every_way(tls12_flight(3), Stop::kAfterServerHelloDone, limits);
  EXPECT_EQ(o.code, "too_many_bytes");
  EXPECT_EQ(o.error_offset, 600u);
}

TEST(ServerFlight, CertificateCountLimit) {
  ServerFlightLimits limits;
  limits.max_certificates = 3;
  std::vector<Bytes> chain(4, fake_der(10));
  const Outcome o = read_every_way(wrap_records(cat({server_hello(), certificate(chain)})),
                                   Stop::kAfterCertificate, limits);
  EXPECT_EQ(o.code, "too_many_certificates");
  chain.pop_back();
  EXPECT_EQ(read_every_way(wrap_records(cat({server_hello(), certificate(chain)})),
                           Stop::kAfterCertificate, limits)
                .status,
            ParseStatus::kComplete);
}

TEST(ServerFlight, DheParameters) {
  // 2048-bit p (top bit set), and the same with a leading zero byte: 2048 bits both times.
  Bytes p(256, 0xff);
  for (const Bytes& prime : {p, cat({{0}, p}), Bytes(128, 0x7f)}) {
    HelloSpec spec;
    spec.suite = 0x009e;  // DHE_RSA_WITH_AES_128_GCM_SHA256
    const Bytes wire = wrap_records(cat(
        {server_hello(spec), certificate({fake_der(50)}), ske_dhe(prime), server_hello_done()}));
    const Outcome o = read_every_way(wire);
    ASSERT_EQ(o.status, ParseStatus::kComplete) << o.code;
    EXPECT_EQ(o.dhe_prime_bits, prime.size() == 128 ? 1023u : 2048u);
    EXPECT_FALSE(o.ecdhe_curve);
    EXPECT_EQ(o.ske_scheme, std::optional<std::uint16_t>(0x0804));
  }
}

TEST(ServerFlight, ServerKeyExchangeOfOlderVersionsAndAnonymousSuites) {
  // TLS 1.0 signs without a SignatureAndHashAlgorithm.
  HelloSpec tls10;
  tls10.legacy_version = kTls10;
  tls10.suite = 0xc013;  // ECDHE_RSA_WITH_AES_128_CBC_SHA
  tls10.with_extensions = false;
  Bytes ske10{3, 0x00, 0x17};
  append(ske10, vec8(Bytes(65, 4)));
  append(ske10, vec16(Bytes(128, 9)));
  Outcome o = read_every_way(
      wrap_records(cat({server_hello(tls10), certificate({fake_der(10)}),
                        message(kHandshakeServerKeyExchange, ske10), server_hello_done()})));
  ASSERT_EQ(o.status, ParseStatus::kComplete) << o.code;
  EXPECT_EQ(o.version, kTls10);
  EXPECT_EQ(o.ecdhe_curve, std::optional<std::uint16_t>(0x0017));
  EXPECT_FALSE(o.ske_scheme);
  EXPECT_TRUE(o.extensions.empty());

  // ECDH_anon: no Certificate, unsigned params. With the default stop, the ServerKeyExchange
  // shows there is no certificate and ends the read.
  HelloSpec anon;
  anon.suite = 0xc018;  // ECDH_anon_WITH_AES_128_CBC_SHA
  const Bytes wire =
      wrap_records(cat({server_hello(anon), ske_ecdhe(0x0017, std::nullopt), server_hello_done()}));
  o = read_every_way(wire, Stop::kAfterCertificate);
  ASSERT_EQ(o.status, ParseStatus::kComplete) << o.code;
  EXPECT_EQ(o.visibility, CertificateVisibility::kNotSent);
  EXPECT_EQ(o.ecdhe_curve, std::optional<std::uint16_t>(0x0017));
  EXPECT_EQ(o.consumed, wire.size() - 4);
  EXPECT_EQ(to_string(o.visibility), "no certificate sent (anonymous or PSK suite)");

  // A PSK suite: the ServerKeyExchange (identity hint) is carried, not interpreted.
  HelloSpec psk;
  psk.suite = 0x00a8;  // PSK_WITH_AES_128_GCM_SHA256
  o = read_every_way(
      wrap_records(cat({server_hello(psk), message(kHandshakeServerKeyExchange, vec16({'h', 'i'})),
                        server_hello_done()})));
  ASSERT_EQ(o.status, ParseStatus::kComplete) << o.code;
  EXPECT_EQ(o.visibility, CertificateVisibility::kNotSent);
  EXPECT_FALSE(o.ecdhe_curve);
  EXPECT_FALSE(o.dhe_prime_bits);
}

TEST(ServerFlight, CertificateStatusAndRequestAreCarried) {
  const Bytes status = message(kHandshakeCertificateStatus, cat({{1}, vec24(Bytes(20, 3))}));
  const Bytes request =
      message(kHandshakeCertificateRequest, cat({vec8({1, 64}), vec16({}), vec16({})}));
  const Outcome o =
      read_every_way(wrap_records(cat({server_hello(), certificate({fake_der(10)}), status,
                                       ske_ecdhe(), request, server_hello_done()})));
  ASSERT_EQ(o.status, ParseStatus::kComplete) << o.code;
  EXPECT_EQ(o.messages,
            (std::vector<std::uint8_t>{kHandshakeServerHello, kHandshakeCertificate,
                                       kHandshakeCertificateStatus, kHandshakeServerKeyExchange,
                                       kHandshakeCertificateRequest, kHandshakeServerHelloDone}));
}

TEST(ServerFlight, ResumptionEndsAtChangeCipherSpec) {
  const Bytes sh = wrap_records(server_hello());
  Outcome o = read_every_way(cat({sh, ccs_record(), wrap_records(Bytes(40, 0x99))}));
  ASSERT_EQ(o.status, ParseStatus::kComplete) << o.code;
  EXPECT_EQ(o.visibility, CertificateVisibility::kResumed);
  EXPECT_EQ(o.consumed, sh.size() + 6);

  const Bytes ticket =
      message(kHandshakeNewSessionTicket, cat({{0, 0, 0x1c, 0x20}, vec16(Bytes(64, 7))}));
  o = read_every_way(cat({wrap_records(cat({server_hello(), ticket})), ccs_record()}));
  ASSERT_EQ(o.status, ParseStatus::kComplete) << o.code;
  EXPECT_EQ(o.visibility, CertificateVisibility::kResumed);
  EXPECT_EQ(o.messages.back(), kHandshakeNewSessionTicket);
}

TEST(ServerFlight, DowngradeSentinel) {
  for (std::uint8_t last : {0, 1}) {
    HelloSpec spec;
    std::copy_n(Bytes{0x44, 0x4f, 0x57, 0x4e, 0x47, 0x52, 0x44, last}.begin(), 8,
                spec.random.begin() + 24);
    ServerFlightReader r(Stop::kAfterServerHello);
    ASSERT_EQ(r.feed(wrap_records(server_hello(spec))), ParseStatus::kComplete);
    EXPECT_EQ(r.flight().hello->downgrade_sentinel,
              std::optional<std::uint16_t>(last ? kTls12 : kTls11));
  }
}

TEST(ServerFlight, SslV3AndNoExtensions) {
  HelloSpec spec;
  spec.legacy_version = kSsl30;
  spec.suite = 0x000a;
  spec.compression = 1;  // deflate: reported, not refused (policy's business)
  spec.with_extensions = false;
  ServerFlightReader r(Stop::kAfterServerHello);
  ASSERT_EQ(r.feed(wrap_records(server_hello(spec), 100, kContentTypeHandshake, kSsl30)),
            ParseStatus::kComplete)
      << r.error().code;
  EXPECT_EQ(r.flight().hello->negotiated_version(), kSsl30);
  EXPECT_EQ(r.flight().hello->compression, 1);
  EXPECT_FALSE(r.flight().hello->alpn);
}

// ---------------------------------------------------------------------------------------------
// TLS 1.3

TEST(ServerFlight, Tls13StopsAtTheServerHello) {
  const Bytes sh = wrap_records(server_hello(tls13_spec()));
  const Bytes wire = cat({sh, ccs_record(), app_data_record(1000), app_data_record(60)});
  for (Stop stop :
       {Stop::kAfterServerHello, Stop::kAfterCertificate, Stop::kAfterServerHelloDone}) {
    const Outcome o = read_every_way(wire, stop);
    ASSERT_EQ(o.status, ParseStatus::kComplete) << o.code;
    EXPECT_EQ(o.consumed, sh.size());
    EXPECT_EQ(o.version, kTls13);
    EXPECT_EQ(o.suite, 0x1301);
    EXPECT_EQ(o.key_share_group, std::optional<std::uint16_t>(0x001d));
    EXPECT_EQ(o.visibility, CertificateVisibility::kEncrypted);
    EXPECT_TRUE(o.certificates.empty());
  }
  ServerFlightReader r;
  ASSERT_EQ(r.feed(wire), ParseStatus::kComplete);
  EXPECT_EQ(r.consumed_last_feed(), sh.size());
  EXPECT_FALSE(r.flight().certificate_visible());
  EXPECT_EQ(to_string(r.flight().certificate), "certificate not visible (TLS 1.3)");
  EXPECT_EQ(r.flight().hello->legacy_version, kTls12);
  EXPECT_EQ(r.flight().hello->selected_version, std::optional<std::uint16_t>(kTls13));
  EXPECT_FALSE(r.flight().hello->downgrade_sentinel);
  // No pin to check in TLS 1.3: leaf_spki_pin says why.
  const auto pin = leaf_spki_pin(r.flight());
  ASSERT_FALSE(pin.ok());
  EXPECT_EQ(pin.error().code, "no_certificate");
  EXPECT_NE(pin.error().message.find("TLS 1.3"), std::string::npos);
}

TEST(ServerFlight, Tls13WithPskOnly) {
  HelloSpec spec = tls13_spec();
  spec.extensions = {selected_version(), {kExtPreSharedKey, u16(0)}};
  ServerFlightReader r;
  ASSERT_EQ(r.feed(wrap_records(server_hello(spec))), ParseStatus::kComplete) << r.error().code;
  EXPECT_EQ(r.flight().hello->pre_shared_key, std::optional<std::uint16_t>(0));
  EXPECT_FALSE(r.flight().hello->key_share_group);
}

TEST(ServerFlight, HelloRetryRequest) {
  const Bytes hrr = wrap_records(server_hello(hrr_spec()));
  const Outcome o = read_every_way(cat({hrr, ccs_record()}));
  ASSERT_EQ(o.status, ParseStatus::kComplete) << o.code;
  EXPECT_TRUE(o.hrr);
  EXPECT_EQ(o.consumed, hrr.size());
  EXPECT_EQ(o.version, kTls13);
  EXPECT_EQ(o.key_share_group, std::optional<std::uint16_t>(0x0018));
  EXPECT_EQ(o.visibility, CertificateVisibility::kHelloRetryRequest);
  ServerFlightReader r;
  ASSERT_EQ(r.feed(hrr), ParseStatus::kComplete);
  EXPECT_TRUE(r.flight().hello->cookie);
}

// ---------------------------------------------------------------------------------------------
// Alerts: results, not errors

TEST(ServerFlight, AlertInsteadOfAHello) {
  const Bytes wire = alert_record(2, 40);
  const Outcome o = read_every_way(wire);
  ASSERT_EQ(o.status, ParseStatus::kComplete) << o.code;
  EXPECT_FALSE(o.has_hello);
  EXPECT_EQ(o.alert, "handshake_failure(40)");
  EXPECT_EQ(o.consumed, 7u);
  ServerFlightReader r;
  ASSERT_EQ(r.feed(cat({wire, wrap_records(server_hello())})), ParseStatus::kComplete);
  EXPECT_EQ(r.consumed_last_feed(), 7u);
  ASSERT_TRUE(r.flight().alert);
  EXPECT_TRUE(r.flight().alert->fatal());
  EXPECT_EQ(r.flight().alert->name(), "handshake_failure");
  EXPECT_EQ((ServerAlert{2, 70}).describe(), "protocol_version(70)");
  EXPECT_EQ((ServerAlert{1, 0}).describe(), "warning close_notify(0)");
  EXPECT_EQ((ServerAlert{2, 201}).describe(), "unknown(201)");
}

TEST(ServerFlight, AlertAfterTheServerHelloAndInsideAMessage) {
  const Bytes sh = server_hello();
  Outcome o = read_every_way(cat({wrap_records(sh), alert_record(2, 80)}));
  ASSERT_EQ(o.status, ParseStatus::kComplete) << o.code;
  EXPECT_TRUE(o.has_hello);
  EXPECT_EQ(o.alert, "internal_error(80)");

  // Between two records of one Certificate message.
  const Bytes cert = certificate({fake_der(100)});
  const Bytes half = wrap_records(Bytes(cert.begin(), cert.begin() + 50));
  o = read_every_way(cat({wrap_records(sh), half, alert_record(1, 0)}));
  ASSERT_EQ(o.status, ParseStatus::kComplete) << o.code;
  EXPECT_EQ(o.alert, "warning close_notify(0)");
  EXPECT_TRUE(o.certificates.empty());
}

TEST(ServerFlight, UnrecognizedNameWarningIsSkipped) {
  const Bytes wire = cat({alert_record(1, 112), tls12_flight()});
  const Outcome o = read_every_way(wire);
  ASSERT_EQ(o.status, ParseStatus::kComplete) << o.code;
  EXPECT_EQ(o.warnings, 1u);
  EXPECT_EQ(o.alert, "");
  EXPECT_EQ(o.consumed, wire.size());

  // Error offsets stay stream offsets after a skipped record.
  Bytes bad = cat({alert_record(1, 112), wrap_records(cat({server_hello(), server_hello()}))});
  const Outcome e = read_every_way(bad);
  EXPECT_EQ(e.code, "unexpected_handshake_message");
  EXPECT_EQ(e.error_offset, 7 + 5 + server_hello().size());

  ServerFlightLimits limits;
  limits.max_warning_alerts = 2;
  const Bytes many = cat({alert_record(1, 112), alert_record(1, 112), alert_record(1, 112)});
  EXPECT_EQ(read_every_way(many, Stop::kAfterServerHelloDone, limits).code, "too_many_warnings");
}

// ---------------------------------------------------------------------------------------------
// Rejections

struct RejectCase {
  const char* name;
  Bytes input;
  std::string code;
  Stop stop = Stop::kAfterServerHelloDone;
};

Bytes hello_with(const std::function<void(HelloSpec&)>& edit) {
  HelloSpec spec;
  edit(spec);
  return wrap_records(server_hello(spec));
}
Bytes tls13_with(const std::function<void(HelloSpec&)>& edit) {
  HelloSpec spec = tls13_spec();
  edit(spec);
  return wrap_records(server_hello(spec));
}
// The default ServerHello with its message bytes edited after building.
Bytes raw_hello(const std::function<void(Bytes&)>& edit) {
  Bytes msg = server_hello();
  edit(msg);
  return wrap_records(msg);
}
// A ServerHello whose extensions block is `block`, as given (lengths inside not fixed).
Bytes hello_with_raw_extensions(const Bytes& block) {
  HelloSpec spec;
  spec.with_extensions = false;
  const Bytes bare = server_hello(spec);
  Bytes body(bare.begin() + 4, bare.end());
  append(body, block);
  return wrap_records(message(kHandshakeServerHello, body));
}
Bytes after_hello(std::initializer_list<Bytes> messages) {
  Bytes all = server_hello();
  for (const auto& m : messages) append(all, m);
  return wrap_records(all);
}

std::vector<RejectCase> reject_cases() {
  return {
      // Not TLS / record layer
      {"http", Bytes{'H', 'T', 'T', 'P', '/', '1', '.', '1'}, "not_tls"},
      {"sslv2", Bytes{0x80, 0x2e, 0x04, 0x00, 0x01}, "sslv2_server_hello"},
      {"nul", Bytes{0, 0, 0}, "not_tls"},
      {"app_data_first", app_data_record(), "unexpected_content_type"},
      {"heartbeat", wrap_records({1, 0, 0}, 16, 24), "not_tls"},
      {"ccs_first", ccs_record(), "unexpected_change_cipher_spec"},
      {"bad_record_major", Bytes{22, 2, 0, 0, 4}, "bad_record_version"},
      {"bad_record_minor", Bytes{22, 3, 5, 0, 4}, "bad_record_version"},
      {"empty_record", Bytes{22, 3, 3, 0, 0}, "empty_record"},
      {"record_overflow", Bytes{22, 3, 3, 0x40, 0x01}, "record_overflow"},
      {"alert_too_long", Bytes{21, 3, 3, 0, 3, 2, 40, 0}, "bad_alert_record"},
      {"alert_level", alert_record(3, 40), "bad_alert"},
      {"ccs_length", cat({wrap_records(server_hello()), Bytes{20, 3, 3, 0, 2, 1, 1}}),
       "bad_change_cipher_spec"},
      {"ccs_value", cat({wrap_records(server_hello()), wrap_records({2}, 16, 20)}),
       "bad_change_cipher_spec"},
      {"ccs_after_certificate", cat({after_hello({certificate({fake_der(10)})}), ccs_record()}),
       "unexpected_change_cipher_spec"},
      {"ccs_inside_message",
       cat({wrap_records(server_hello()), wrap_records({11, 0, 0}), ccs_record()}),
       "unexpected_change_cipher_spec"},
      {"app_data_after_hello", cat({wrap_records(server_hello()), app_data_record()}),
       "unexpected_content_type"},
      // Message order
      {"certificate_first", wrap_records(certificate({fake_der(10)})), "not_server_hello"},
      {"client_hello", wrap_records(message(1, Bytes(40, 0))), "not_server_hello"},
      {"hello_request", wrap_records(message(0, {})), "not_server_hello"},
      {"two_hellos", after_hello({server_hello()}), "unexpected_handshake_message"},
      {"certificate_after_ske", after_hello({ske_ecdhe(), certificate({fake_der(10)})}),
       "unexpected_handshake_message"},
      {"finished_in_clear", after_hello({message(20, Bytes(12, 0))}),
       "unexpected_handshake_message"},
      {"ticket_then_certificate",
       after_hello({message(kHandshakeNewSessionTicket, Bytes(10, 0)), certificate({fake_der(1)})}),
       "unexpected_handshake_message"},
      {"trailing_after_done", after_hello({server_hello_done(), Bytes{0}}), "trailing_record_data"},
      {"done_not_empty", after_hello({message(kHandshakeServerHelloDone, {0})}),
       "bad_server_hello_done"},
      // ServerHello body
      {"truncated", raw_hello([](Bytes& m) {
         m.resize(40);
         m[3] = 36;
       }),
       "server_hello_truncated"},
      {"legacy_tls13", hello_with([](HelloSpec& s) { s.legacy_version = kTls13; }),
       "bad_legacy_version"},
      {"legacy_2x", hello_with([](HelloSpec& s) { s.legacy_version = 0x0203; }),
       "bad_legacy_version"},
      {"session_id_33", hello_with([](HelloSpec& s) { s.session_id = Bytes(33, 1); }),
       "bad_session_id"},
      {"null_suite", hello_with([](HelloSpec& s) { s.suite = 0; }), "bad_cipher_suite"},
      {"scsv_suite", hello_with([](HelloSpec& s) { s.suite = 0x00ff; }), "bad_cipher_suite"},
      {"fallback_suite", hello_with([](HelloSpec& s) { s.suite = 0x5600; }), "bad_cipher_suite"},
      {"grease_suite", hello_with([](HelloSpec& s) { s.suite = 0x2a2a; }), "bad_cipher_suite"},
      {"tls13_suite_in_tls12", hello_with([](HelloSpec& s) { s.suite = 0x1301; }),
       "bad_cipher_suite"},
      {"tls12_suite_in_tls13", tls13_with([](HelloSpec& s) { s.suite = 0xc02f; }),
       "bad_cipher_suite"},
      {"tls13_compression", tls13_with([](HelloSpec& s) { s.compression = 1; }), "bad_compression"},
      {"extensions_short", raw_hello([](Bytes& m) {
         m.pop_back();
         m[3] -= 1;
       }),
       "bad_extensions"},
      {"extensions_long", raw_hello([](Bytes& m) {
         m.push_back(0);
         m[3] += 1;
       }),
       "bad_extensions"},
      {"extension_overrun", hello_with_raw_extensions(vec16({0, 5, 0, 9, 0})), "bad_extensions"},
      {"duplicate_extension", hello_with([](HelloSpec& s) { s.extensions.push_back(ems()); }),
       "duplicate_extension"},
      {"selected_tls12",
       hello_with([](HelloSpec& s) { s.extensions = {selected_version(kTls12)}; }),
       "bad_selected_version"},
      {"selected_draft",
       tls13_with([](HelloSpec& s) { s.extensions[0] = selected_version(0x7f1c); }),
       "bad_selected_version"},
      {"selected_list", tls13_with([](HelloSpec& s) {
         s.extensions[0].data = {2, 3, 4};
       }),
       "bad_supported_versions"},
      {"tls13_legacy_tls11", tls13_with([](HelloSpec& s) { s.legacy_version = kTls11; }),
       "bad_legacy_version"},
      {"key_share_in_tls12", hello_with([](HelloSpec& s) { s.extensions = {server_share()}; }),
       "extension_not_allowed"},
      {"alpn_in_tls13", tls13_with([](HelloSpec& s) { s.extensions.push_back(alpn("h2")); }),
       "extension_not_allowed"},
      {"reneg_in_tls13",
       tls13_with([](HelloSpec& s) { s.extensions.push_back(renegotiation_info()); }),
       "extension_not_allowed"},
      {"cookie_in_server_hello", tls13_with([](HelloSpec& s) {
         s.extensions.push_back({kExtCookie, vec16({1})});
       }),
       "extension_not_allowed"},
      {"psk_in_hrr", wrap_records(server_hello([] {
         HelloSpec s = hrr_spec();
         s.extensions.push_back({kExtPreSharedKey, u16(0)});
         return s;
       }())),
       "extension_not_allowed"},
      {"missing_key_share", tls13_with([](HelloSpec& s) { s.extensions.pop_back(); }),
       "missing_key_share"},
      {"key_share_empty_key", tls13_with([](HelloSpec& s) {
         s.extensions[1].data = cat({u16(0x1d), vec16({})});
       }),
       "bad_key_share"},
      {"key_share_trailing", tls13_with([](HelloSpec& s) { s.extensions[1].data.push_back(0); }),
       "bad_key_share"},
      {"hrr_key_share_with_key", wrap_records(server_hello([] {
         HelloSpec s = hrr_spec();
         s.extensions[1] = server_share(0x18);
         return s;
       }())),
       "bad_key_share"},
      {"hrr_without_versions", wrap_records(server_hello([] {
         HelloSpec s = hrr_spec();
         s.suite = 0xc02f;
         s.extensions = {};
         return s;
       }())),
       "hrr_without_supported_versions"},
      {"hrr_empty_cookie", wrap_records(server_hello([] {
         HelloSpec s = hrr_spec();
         s.extensions[2].data = vec16({});
         return s;
       }())),
       "bad_cookie"},
      {"psk_bad", tls13_with([](HelloSpec& s) {
         s.extensions.push_back({kExtPreSharedKey, {0}});
       }),
       "bad_pre_shared_key"},
      {"alpn_two_names", hello_with([](HelloSpec& s) {
         s.extensions = {{kExtAlpn, vec16(cat({vec8({'h', '2'}), vec8({'h', '3'})}))}};
       }),
       "bad_alpn"},
      {"alpn_empty_name", hello_with([](HelloSpec& s) {
         s.extensions = {{kExtAlpn, vec16({0})}};
       }),
       "bad_alpn"},
      {"ems_not_empty", hello_with([](HelloSpec& s) {
         s.extensions = {{kExtExtendedMasterSecret, {0}}};
       }),
       "bad_extended_master_secret"},
      {"reneg_not_empty", hello_with([](HelloSpec& s) {
         s.extensions = {{kExtRenegotiationInfo, vec8(Bytes(12, 1))}};
       }),
       "bad_renegotiation_info"},
      {"sni_not_empty", hello_with([](HelloSpec& s) {
         s.extensions = {{kExtServerName, {0}}};
       }),
       "bad_server_name"},
      {"trailing_after_tls13_hello",
       wrap_records(cat({server_hello(tls13_spec()), server_hello_done()})),
       "trailing_record_data"},
      // Certificate
      {"empty_certificate_list", after_hello({certificate({})}), "empty_certificate_list",
       Stop::kAfterCertificate},
      {"certificate_list_short",
       after_hello({message(kHandshakeCertificate, cat({{0, 0, 10}, vec24(fake_der(10))}))}),
       "bad_certificate_list", Stop::kAfterCertificate},
      {"certificate_entry_overrun",
       after_hello({message(kHandshakeCertificate, vec24({0, 0, 9, 0x30, 1}))}),
       "bad_certificate_list", Stop::kAfterCertificate},
      {"certificate_not_der", after_hello({certificate({Bytes{0x31, 1, 0}})}),
       "bad_certificate_der", Stop::kAfterCertificate},
      {"certificate_der_long_form_not_minimal",
       after_hello({certificate({Bytes{0x30, 0x81, 1, 0}})}), "bad_certificate_der",
       Stop::kAfterCertificate},
      {"certificate_der_trailing", after_hello({certificate({cat({fake_der(4), {0}})})}),
       "bad_certificate_der", Stop::kAfterCertificate},
      {"certificate_der_indefinite", after_hello({certificate({Bytes{0x30, 0x80, 0, 0}})}),
       "bad_certificate_der", Stop::kAfterCertificate},
      {"certificate_empty_entry", after_hello({certificate({Bytes{}})}), "bad_certificate_der",
       Stop::kAfterCertificate},
      // ServerKeyExchange
      {"ske_explicit_curve",
       after_hello({message(kHandshakeServerKeyExchange, cat({{1, 0, 0x17}, vec8({4})}))}),
       "bad_ec_curve_type"},
      {"ske_no_point", after_hello({message(kHandshakeServerKeyExchange, {3, 0, 0x17, 0})}),
       "bad_server_key_exchange"},
      {"ske_short_signature",
       after_hello({message(kHandshakeServerKeyExchange, cat({{3, 0, 0x17}, vec8({4}), {8, 4}}))}),
       "bad_server_key_exchange"},
      {"ske_signature_trailing",
       after_hello({message(kHandshakeServerKeyExchange,
                            cat({{3, 0, 0x17}, vec8({4}), {8, 4}, vec16({1}), {0}}))}),
       "bad_server_key_exchange"},
      {"ske_dhe_zero_prime",
       wrap_records(cat({server_hello([] {
                           HelloSpec s;
                           s.suite = 0x009e;
                           return s;
                         }()),
                         ske_dhe(Bytes(8, 0))})),
       "bad_dh_prime"},
      {"ske_dhe_empty_g",
       wrap_records(cat(
           {server_hello([] {
              HelloSpec s;
              s.suite = 0x0033;
              return s;
            }()),
            message(kHandshakeServerKeyExchange, cat({vec16({0xff}), vec16({}), vec16({1})}))})),
       "bad_server_key_exchange"},
  };
}

TEST(ServerFlight, RejectsMalformedFlights) {
  for (const RejectCase& c : reject_cases()) {
    SCOPED_TRACE(c.name);
    const Outcome o = read_every_way(c.input, c.stop);
    EXPECT_EQ(o.status, ParseStatus::kError);
    EXPECT_EQ(o.code, c.code);
  }
}

TEST(ServerFlight, ErrorsCarryOffsetsAndAlerts) {
  // Stream offsets for record-level and ordering errors...
  Outcome o = read_every_way(Bytes{'G', 'E', 'T'});
  EXPECT_EQ(o.error_offset, 0u);
  const Bytes sh = wrap_records(server_hello());
  o = read_every_way(cat({sh, wrap_records(server_hello())}));
  EXPECT_EQ(o.code, "unexpected_handshake_message");
  EXPECT_EQ(o.error_offset, sh.size() + 5);
  o = read_every_way(cat({sh, Bytes{22, 3, 3, 0, 0}}));
  EXPECT_EQ(o.error_offset, sh.size() + 3);
  // ... offsets inside the message for its content.
  o = read_every_way(hello_with([](HelloSpec& s) { s.suite = 0; }));
  EXPECT_EQ(o.error_offset, 4u + 2 + 32 + 1 + 32);

  ServerFlightReader r;
  r.feed(hello_with([](HelloSpec& s) { s.legacy_version = kTls13; }));
  ASSERT_EQ(r.status(), ParseStatus::kError);
  EXPECT_EQ(r.error().alert, Alert::kProtocolVersion);
  EXPECT_EQ(r.error().offset, 4u);
  const Error e = r.error().to_error(ErrorSource::kUpstream);
  EXPECT_EQ(e.code, "bad_legacy_version");
  EXPECT_EQ(e.source, ErrorSource::kUpstream);
  // Failed: nothing more is taken.
  EXPECT_EQ(r.feed(tls12_flight()), ParseStatus::kError);
  EXPECT_EQ(r.consumed_last_feed(), 0u);
}

TEST(ServerFlight, BytesNeededHint) {
  const Bytes wire = tls12_flight();
  ServerFlightReader r(Stop::kAfterServerHelloDone);
  EXPECT_EQ(r.bytes_needed_hint(), 5u);
  r.feed(std::span<const std::uint8_t>(wire).first(2));
  EXPECT_EQ(r.bytes_needed_hint(), 3u);
  r.feed(std::span<const std::uint8_t>(wire).subspan(2, 3));
  EXPECT_EQ(r.bytes_needed_hint(), 1u);  // the type byte
  r.feed(std::span<const std::uint8_t>(wire).subspan(5, 4));
  EXPECT_EQ(r.bytes_needed_hint(), server_hello().size() - 4);
}

TEST(ServerFlight, LeafPinErrors) {
  ServerFlight empty;
  auto pin = leaf_spki_pin(empty);
  ASSERT_FALSE(pin.ok());
  EXPECT_EQ(pin.error().code, "no_certificate");
  EXPECT_EQ(pin.error().source, ErrorSource::kUpstream);

  ServerFlightReader r;
  ASSERT_EQ(r.feed(after_hello({certificate({fake_der(40)})})), ParseStatus::kComplete);
  pin = leaf_spki_pin(r.flight());
  ASSERT_FALSE(pin.ok());
  EXPECT_EQ(pin.error().code, "certificate_der_invalid");
}

// ---------------------------------------------------------------------------------------------
// Captured flights (tests/fixtures/server_hello/capture.py: openssl s_server on loopback)

struct CapturedCase {
  const char* file;
  std::uint16_t version;
  std::uint16_t suite;
  std::size_t certificates;
  const char* pin_file;  // "" when no certificate is visible
  CertificateVisibility visibility;
  std::optional<std::uint16_t> ecdhe_curve;
  std::optional<std::size_t> dhe_prime_bits;
  const char* alert;
};

class CapturedFlight : public ::testing::TestWithParam<CapturedCase> {};

TEST_P(CapturedFlight, Reads) {
  const CapturedCase& c = GetParam();
  const Bytes wire = fixture(c.file);
  ASSERT_FALSE(wire.empty());
  const Outcome o = read_every_way(wire);
  ASSERT_EQ(o.status, ParseStatus::kComplete) << o.code << " at " << o.error_offset;
  EXPECT_EQ(o.alert, c.alert);
  EXPECT_EQ(o.version, c.version);
  EXPECT_EQ(o.suite, c.suite);
  EXPECT_EQ(o.certificates.size(), c.certificates);
  EXPECT_EQ(o.visibility, c.visibility);
  EXPECT_EQ(o.ecdhe_curve, c.ecdhe_curve);
  EXPECT_EQ(o.dhe_prime_bits, c.dhe_prime_bits);

  ServerFlightReader r(Stop::kAfterServerHelloDone);
  ASSERT_EQ(r.feed(wire), ParseStatus::kComplete);
  if (*c.pin_file) {
    const auto pin = leaf_spki_pin(r.flight());
    ASSERT_TRUE(pin.ok()) << pin.error().code << ": " << pin.error().message;
    EXPECT_EQ(*pin, fixture_text(c.pin_file));
    EXPECT_EQ(r.consumed(), wire.size());  // a TLS 1.2 flight ends with ServerHelloDone
  }

  // The handshake bytes re-fragmented into 1-byte and 13-byte records read the same.
  std::size_t end = 0;
  const Bytes handshake = unwrap_handshake(wire, &end);
  if (handshake.empty()) return;
  for (std::size_t fragment : {1, 13}) {
    Bytes refragmented = wrap_records(handshake, fragment);
    append(refragmented, Bytes(wire.begin() + static_cast<std::ptrdiff_t>(end), wire.end()));
    ServerFlightLimits roomy;
    roomy.handshake.max_wire_bytes = 1 << 20;
    Outcome again = read_all(refragmented, Stop::kAfterServerHelloDone, roomy);
    again.consumed = o.consumed;
    EXPECT_EQ(again, o) << fragment;
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
    Fixtures, CapturedFlight,
    ::testing::Values(
        CapturedCase{"tls12_rsa.bin", kTls12, 0xc030, 1, "rsa.pin", CertificateVisibility::kPresent,
                     0x001d, std::nullopt, ""},
        CapturedCase{"tls12_ecdsa.bin", kTls12, 0xc02c, 1, "ecdsa.pin",
                     CertificateVisibility::kPresent, 0x001d, std::nullopt, ""},
        CapturedCase{"tls12_dhe.bin", kTls12, 0x009e, 1, "rsa.pin", CertificateVisibility::kPresent,
                     std::nullopt, 2048, ""},
        CapturedCase{"tls12_rsa_kx.bin", kTls12, 0x009c, 1, "rsa.pin",
                     CertificateVisibility::kPresent, std::nullopt, std::nullopt, ""},
        CapturedCase{"tls13.bin", kTls13, 0x1302, 0, "", CertificateVisibility::kEncrypted,
                     std::nullopt, std::nullopt, ""},
        CapturedCase{"tls13_hrr.bin", kTls13, 0x1302, 0, "",
                     CertificateVisibility::kHelloRetryRequest, std::nullopt, std::nullopt, ""},
        CapturedCase{"alert_protocol_version.bin", 0, 0, 0, "", CertificateVisibility::kNotRead,
                     std::nullopt, std::nullopt, "protocol_version(70)"}),
    CaseName{});

TEST(ServerFlight, CapturedTls12EcdsaAsksForAClientCertificate) {
  ServerFlightReader r(Stop::kAfterServerHelloDone);
  ASSERT_EQ(r.feed(fixture("tls12_ecdsa.bin")), ParseStatus::kComplete);
  EXPECT_TRUE(r.flight().has_message(kHandshakeCertificateRequest));
  EXPECT_TRUE(r.flight().hello->extended_master_secret);
  EXPECT_TRUE(r.flight().hello->renegotiation_info);
}

TEST(ServerFlight, CapturedTls13StopsBeforeTheEncryptedRecords) {
  const Bytes wire = fixture("tls13.bin");
  ServerFlightReader r;
  ASSERT_EQ(r.feed(wire), ParseStatus::kComplete);
  EXPECT_LT(r.consumed(), wire.size());
  EXPECT_EQ(wire[r.consumed()], kContentTypeChangeCipherSpec);
  EXPECT_EQ(r.flight().hello->key_share_group, std::optional<std::uint16_t>(0x001d));
  EXPECT_EQ(r.flight().hello->session_id.size(), 32u);  // the client's, echoed
}

}  // namespace
}  // namespace moat::core::tls

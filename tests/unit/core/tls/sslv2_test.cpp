#include "core/tls/sslv2.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace moat::core::tls {
namespace {

using Bytes = std::vector<std::uint8_t>;

// A SERVER-HELLO as an SSL 2.0 server sends it: 2-byte header, certificate, specs, connection id.
Bytes server_hello(Bytes certificate, Bytes specs, std::size_t id_length = 16, std::uint16_t version = 2) {
  Bytes body = {4, 0, 1, static_cast<std::uint8_t>(version >> 8), static_cast<std::uint8_t>(version),
                static_cast<std::uint8_t>(certificate.size() >> 8),
                static_cast<std::uint8_t>(certificate.size()),
                static_cast<std::uint8_t>(specs.size() >> 8), static_cast<std::uint8_t>(specs.size()),
                0, static_cast<std::uint8_t>(id_length)};
  body.insert(body.end(), certificate.begin(), certificate.end());
  body.insert(body.end(), specs.begin(), specs.end());
  body.insert(body.end(), id_length, 0xab);
  Bytes out = {static_cast<std::uint8_t>(0x80 | (body.size() >> 8)), static_cast<std::uint8_t>(body.size())};
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

TEST(Sslv2, ClientHelloOffersTheSevenKinds) {
  Bytes hello = build_sslv2_client_hello();
  ASSERT_GE(hello.size(), 2u);
  EXPECT_EQ(hello[0] & 0x80, 0x80);  // 2-byte header
  std::size_t length = ((hello[0] & 0x7f) << 8) | hello[1];
  ASSERT_EQ(length + 2, hello.size());
  EXPECT_EQ(hello[2], 1);  // CLIENT-HELLO
  EXPECT_EQ(hello[3], 0);
  EXPECT_EQ(hello[4], 2);  // version 0x0002
  std::size_t specs = (hello[5] << 8) | hello[6];
  EXPECT_EQ(specs, 7u * 3);
  EXPECT_EQ((hello[7] << 8) | hello[8], 0);   // no session id
  EXPECT_EQ((hello[9] << 8) | hello[10], 16);  // challenge
  EXPECT_EQ(hello.size(), 2u + 9 + specs + 16);
  std::vector<std::uint32_t> kinds;
  for (std::size_t i = 0; i < specs; i += 3) {
    kinds.push_back((std::uint32_t{hello[11 + i]} << 16) | (hello[12 + i] << 8) | hello[13 + i]);
  }
  EXPECT_EQ(kinds, sslv2_cipher_kinds());
  for (auto k : kinds) {
    EXPECT_FALSE(sslv2_cipher_name(k).empty());
    EXPECT_GT(sslv2_cipher_bits(k), 0);
  }
}

TEST(Sslv2, ReadsAServerHelloInAnySplit) {
  Bytes certificate = {0x30, 0x03, 0x02, 0x01, 0x00};
  Bytes record = server_hello(certificate, {0x07, 0x00, 0xc0, 0x01, 0x00, 0x80});
  for (std::size_t piece = 1; piece <= record.size(); ++piece) {
    Sslv2ServerHelloReader reader;
    ParseStatus status = ParseStatus::kNeedMore;
    for (std::size_t at = 0; at < record.size(); at += piece) {
      status = reader.feed(std::span<const std::uint8_t>(record).subspan(at, std::min(piece, record.size() - at)));
    }
    ASSERT_EQ(status, ParseStatus::kComplete) << piece << " " << reader.error().code;
    EXPECT_EQ(reader.consumed(), record.size());
    EXPECT_EQ(reader.hello().version, kSsl20);
    EXPECT_EQ(reader.hello().certificate_type, 1);
    EXPECT_EQ(Bytes(reader.hello().certificate.begin(), reader.hello().certificate.end()), certificate);
    EXPECT_EQ(reader.hello().cipher_kinds, (std::vector<std::uint32_t>{kSsl2DesEde3CbcWithMd5, kSsl2Rc4128WithMd5}));
    EXPECT_EQ(reader.hello().connection_id.size(), 16u);
  }
}

// Error codes have static storage: the view outlives the reader.
std::string_view error_for(const Bytes& bytes) {
  Sslv2ServerHelloReader reader;
  EXPECT_EQ(reader.feed(bytes), ParseStatus::kError);
  return reader.error().code;
}

TEST(Sslv2, TlsAnswersAndGarbageAreNotSupport) {
  EXPECT_EQ(error_for({21, 3, 0, 0, 2, 2, 40}), "tls_alert");  // SSL 3.0 alert
  EXPECT_EQ(error_for({21, 3, 3, 0, 2, 2, 70}), "tls_alert");
  EXPECT_EQ(error_for({22, 3, 0, 0, 0x4a, 2}), "tls_record");  // an SSL 3.0 ServerHello
  EXPECT_EQ(error_for({'H', 'T', 'T', 'P'}), "not_sslv2");
  EXPECT_EQ(error_for({0x80, 3, 4, 0, 1}), "record_too_short");
  EXPECT_EQ(error_for({0x80, 0x20, 0}), "not_server_hello");  // an SSL 2.0 ERROR message
  EXPECT_EQ(error_for(server_hello({}, {7, 0, 0xc0}, 16, 0x0300)), "version_invalid");
  EXPECT_EQ(error_for(server_hello({}, {7, 0}, 16)), "cipher_specs_invalid");
  EXPECT_EQ(error_for(server_hello({}, {7, 0, 0xc0}, 8)), "connection_id_invalid");
  Bytes bad = server_hello({}, {7, 0, 0xc0});
  bad[8] = 5;  // certificate length past the record
  EXPECT_EQ(error_for(bad), "lengths_invalid");
}

TEST(Sslv2, IncompleteRecordNeedsMore) {
  Bytes record = server_hello({}, {1, 0, 0x80});
  Sslv2ServerHelloReader reader;
  EXPECT_EQ(reader.feed(std::span<const std::uint8_t>(record).first(record.size() - 1)), ParseStatus::kNeedMore);
}

}  // namespace
}  // namespace moat::core::tls

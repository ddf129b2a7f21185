#include "core/tls/client_hello_builder.hpp"

#include <gtest/gtest.h>

#include "core/tls/client_hello.hpp"
#include "core/tls/server_hello.hpp"

namespace moat::core::tls {
namespace {

// Builds `spec`, parses the result with the egress' ClientHelloReader, and returns the reader.
ClientHelloReader parse(const ClientHelloSpec& spec) {
  auto bytes = build_client_hello(spec);
  EXPECT_TRUE(bytes.ok()) << (bytes.ok() ? "" : bytes.error().message);
  ClientHelloReader reader;
  if (bytes.ok()) {
    EXPECT_EQ(reader.feed(std::span<const std::uint8_t>(bytes.value())), ParseStatus::kComplete)
        << reader.error().code << " " << reader.error().message;
    EXPECT_EQ(reader.consumed(), bytes->size());
  }
  return reader;
}

TEST(ClientHelloBuilder, Tls12HelloParses) {
  ClientHelloSpec spec;
  spec.version = kTls12;
  spec.cipher_suites = {0xc02b, 0xc02f, 0x009c};
  spec.server_name = "example.com";
  spec.supported_groups = {kGroupX25519, kGroupSecp256r1};
  spec.alpn = {"h2", "http/1.1"};
  auto reader = parse(spec);
  const auto& hello = reader.hello();
  EXPECT_EQ(hello.legacy_version, kTls12);
  EXPECT_EQ(hello.cipher_suites.to_vector(), (std::vector<std::uint16_t>{0xc02b, 0xc02f, 0x009c}));
  ASSERT_TRUE(hello.server_name);
  EXPECT_EQ(*hello.server_name, "example.com");
  EXPECT_EQ(hello.supported_groups.to_vector(),
            (std::vector<std::uint16_t>{kGroupX25519, kGroupSecp256r1}));
  EXPECT_FALSE(hello.signature_algorithms.empty());
  ASSERT_EQ(hello.alpn.size(), 2u);
  EXPECT_EQ(hello.alpn[1], "http/1.1");
  EXPECT_FALSE(hello.has_supported_versions);
  EXPECT_TRUE(hello.has_extension(kExtRenegotiationInfo));
  EXPECT_TRUE(hello.has_extension(kExtExtendedMasterSecret));
  EXPECT_TRUE(hello.has_extension(kExtEcPointFormats));
  EXPECT_FALSE(hello.has_extension(kExtSessionTicket));
  EXPECT_EQ(hello.session_id.size(), 0u);
  ASSERT_EQ(hello.compression_methods.size(), 1u);
  EXPECT_EQ(hello.compression_methods[0], kCompressionNull);
  EXPECT_EQ(hello.max_offered_version(), kTls12);
}

TEST(ClientHelloBuilder, Tls13HelloWithRealKeyShares) {
  auto x25519 = make_key_share(kGroupX25519);
  ASSERT_TRUE(x25519.ok());
  EXPECT_EQ(x25519->public_key.size(), 32u);
  auto p256 = make_key_share(kGroupSecp256r1);
  ASSERT_TRUE(p256.ok());
  ASSERT_EQ(p256->public_key.size(), 65u);
  EXPECT_EQ(p256->public_key[0], 4);  // uncompressed point

  ClientHelloSpec spec;
  spec.version = kTls13;
  spec.min_version = kTls12;
  spec.cipher_suites = {0x1301, 0x1302, 0x1303};
  spec.supported_groups = {kGroupX25519, kGroupSecp256r1};
  spec.key_shares = {x25519.value(), p256.value()};
  auto reader = parse(spec);
  const auto& hello = reader.hello();
  EXPECT_EQ(hello.legacy_version, kTls12);
  EXPECT_TRUE(hello.has_supported_versions);
  EXPECT_EQ(hello.supported_versions.to_vector(), (std::vector<std::uint16_t>{kTls13, kTls12}));
  EXPECT_EQ(hello.key_share_groups,
            (std::vector<std::uint16_t>{kGroupX25519, kGroupSecp256r1}));
  EXPECT_EQ(hello.session_id.size(), 32u);
  EXPECT_EQ(hello.max_offered_version(), kTls13);
  EXPECT_TRUE(hello.has_extension(kExtPskKeyExchangeModes));
}

TEST(ClientHelloBuilder, OldVersionsScsvsAndCompression) {
  ClientHelloSpec spec;
  spec.version = kTls10;
  spec.cipher_suites = {0x002f, 0x000a};
  spec.fallback_scsv = true;
  spec.renegotiation_scsv = true;
  spec.deflate = true;
  spec.session_ticket = true;
  auto reader = parse(spec);
  const auto& hello = reader.hello();
  EXPECT_EQ(hello.legacy_version, kTls10);
  EXPECT_EQ(hello.cipher_suites.to_vector(),
            (std::vector<std::uint16_t>{0x002f, 0x000a, kSuiteEmptyRenegotiationInfoScsv,
                                        kSuiteFallbackScsv}));
  ASSERT_EQ(hello.compression_methods.size(), 2u);
  EXPECT_EQ(hello.compression_methods[0], kCompressionDeflate);
  EXPECT_FALSE(hello.has_extension(kExtSignatureAlgorithms));  // TLS 1.2+ only
  EXPECT_TRUE(hello.has_extension(kExtSessionTicket));
  EXPECT_FALSE(hello.has_extension(kExtSupportedGroups));
}

TEST(ClientHelloBuilder, Ssl3WithoutExtensions) {
  ClientHelloSpec spec;
  spec.version = kSsl30;
  spec.cipher_suites = {0x000a};
  spec.extensions = false;
  spec.renegotiation_scsv = true;
  auto bytes = build_client_hello(spec);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ((*bytes)[1], 3);  // record version SSL 3.0
  EXPECT_EQ((*bytes)[2], 0);
  auto reader = parse(spec);
  EXPECT_EQ(reader.hello().legacy_version, kSsl30);
  EXPECT_TRUE(reader.hello().extension_types.empty());
}

TEST(ClientHelloBuilder, LargeHelloSpansRecords) {
  ClientHelloSpec spec;
  spec.version = kTls12;
  for (std::uint16_t s = 1; s < 9000; ++s) spec.cipher_suites.push_back(s);
  auto bytes = build_client_hello(spec);
  ASSERT_TRUE(bytes.ok());
  auto reader = parse(spec);
  EXPECT_EQ(reader.record_count(), 2u);
  EXPECT_EQ(reader.hello().cipher_suites.size(), 8999u);
}

TEST(ClientHelloBuilder, RefusesBadSpecs) {
  ClientHelloSpec spec;
  auto r = build_client_hello(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "no_cipher_suites");
  spec.cipher_suites = {0x002f};
  spec.version = 0x0305;
  EXPECT_EQ(build_client_hello(spec).error().code, "version_invalid");
  spec.version = kTls12;
  spec.server_name = "bad name";
  EXPECT_EQ(build_client_hello(spec).error().code, "server_name_invalid");
  EXPECT_EQ(make_key_share(kGroupFfdhe2048).error().code, "key_share_group");
}

}  // namespace
}  // namespace moat::core::tls

namespace moat::core::tls {
namespace {

TEST(ClientHelloBuilder, HeartbeatExtensionOnlyWhenAsked) {
  ClientHelloSpec spec;
  spec.version = kTls12;
  spec.cipher_suites = {0xc02f};
  EXPECT_FALSE(parse(spec).hello().has_extension(kExtHeartbeat));
  spec.heartbeat = true;
  EXPECT_TRUE(parse(spec).hello().has_extension(kExtHeartbeat));
}

}  // namespace
}  // namespace moat::core::tls

#include "core/tls/certificate.hpp"

#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <chrono>
#include <cstdio>
#include <cstring>

#include "test_certs.hpp"

namespace moat::core::tls {
namespace {

using std::chrono::system_clock;
using test::CertSpec;
using test::make_cert;
using test::make_key;

system_clock::time_point at(long epoch) {
  return system_clock::time_point(std::chrono::seconds(epoch));
}

class CertificateTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { p256_ = make_key("p256").release(); }
  static void TearDownTestSuite() { EVP_PKEY_free(p256_); }
  static EVP_PKEY* p256_;
};
EVP_PKEY* CertificateTest::p256_ = nullptr;

// ---- parse_certificates ----------------------------------------------------------------------

TEST_F(CertificateTest, ParsesOnePem) {
  auto cert = make_cert(p256_, {});
  auto parsed = parse_certificates(test::to_pem(cert.get()));
  ASSERT_TRUE(parsed) << parsed.error().message;
  ASSERT_EQ(parsed->size(), 1u);
  EXPECT_EQ(X509_cmp(parsed->front().get(), cert.get()), 0);
}

TEST_F(CertificateTest, ParsesPemChainWithTextAroundAndCrlf) {
  auto a = make_cert(p256_, {});
  CertSpec spec;
  spec.subject_cns = {"Test CA"};
  spec.ca = true;
  auto b = make_cert(p256_, spec);
  std::string pem_b = test::to_pem(b.get());
  std::string crlf;
  for (char c : pem_b) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  std::string input =
      "subject=CN = leaf\n" + test::to_pem(a.get()) + "\nsome text\n" + crlf + "trailing\n";
  auto parsed = parse_certificates(input);
  ASSERT_TRUE(parsed) << parsed.error().message;
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ(X509_cmp((*parsed)[0].get(), a.get()), 0);
  EXPECT_EQ(X509_cmp((*parsed)[1].get(), b.get()), 0);
}

TEST_F(CertificateTest, ParsesDerAndConcatenatedDer) {
  auto a = make_cert(p256_, {});
  std::string der = test::to_der(a.get());
  auto one = parse_certificates(der);
  ASSERT_TRUE(one) << one.error().message;
  EXPECT_EQ(one->size(), 1u);
  auto two = parse_certificates(der + der);
  ASSERT_TRUE(two) << two.error().message;
  EXPECT_EQ(two->size(), 2u);
}

TEST_F(CertificateTest, SkipsOtherPemBlocks) {
  auto a = make_cert(p256_, {});
  std::string key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
  auto parsed = parse_certificates(key + test::to_pem(a.get()));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->size(), 1u);
}

struct BadInput {
  const char* name;
  std::string bytes;
  const char* code;
  const char* message_part;
};

TEST_F(CertificateTest, RefusesBadInputWithPreciseErrors) {
  auto a = make_cert(p256_, {});
  std::string pem = test::to_pem(a.get());
  std::string der = test::to_der(a.get());
  std::string corrupt = pem;
  corrupt[40] = '!';
  std::vector<BadInput> cases = {
      {"empty", "", "empty", "empty"},
      {"blank", " \r\n\t\n", "empty", "empty"},
      {"garbage", "hello world, no certificate here", "no_certificate", "neither PEM"},
      {"binary garbage", std::string("\x01\x02\x03\xff", 4), "no_certificate", "neither PEM"},
      {"truncated pem", pem.substr(0, pem.size() / 2), "pem_truncated",
       "no '-----END CERTIFICATE-----'"},
      {"begin line cut", "-----BEGIN CERTIF", "pem_truncated", "incomplete"},
      {"nested begin", pem.substr(0, 100) + pem, "pem_truncated", "at byte 0"},
      {"corrupt pem", corrupt, "pem_invalid", "does not decode"},
      {"key only", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
       "no_certificate", "PRIVATE KEY"},
      {"truncated der", der.substr(0, der.size() - 1), "der_truncated", "declares"},
      {"der header only", der.substr(0, 3), "der_truncated", "truncated"},
      {"der trailing", der + "xyz", "der_trailing_data", "3 bytes of trailing data"},
      {"der bad content", std::string("\x30\x82\x00\x04\x01\x02\x03\x04", 8), "der_invalid",
       "does not decode"},
      {"der indefinite", std::string("\x30\x80\x00\x00", 4), "der_invalid", "invalid length"},
  };
  for (const auto& c : cases) {
    auto parsed = parse_certificates(c.bytes);
    ASSERT_FALSE(parsed) << c.name;
    EXPECT_EQ(parsed.error().code, c.code) << c.name << ": " << parsed.error().message;
    EXPECT_NE(parsed.error().message.find(c.message_part), std::string::npos)
        << c.name << ": " << parsed.error().message;
    EXPECT_EQ(parsed.error().source, ErrorSource::kInput) << c.name;
  }
  // OpenSSL's error queue is left empty for the next caller.
  EXPECT_EQ(drain_openssl_errors(), "");
}

TEST_F(CertificateTest, Pkcs7GetsAHint) {
  auto parsed = parse_certificates("-----BEGIN PKCS7-----\nAAAA\n-----END PKCS7-----\n");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().hint.find("openssl pkcs7 -print_certs"), std::string::npos);
}

TEST_F(CertificateTest, CapsTheNumberOfCertificates) {
  auto a = make_cert(p256_, {});
  std::string pem = test::to_pem(a.get());
  std::string many;
  for (std::size_t i = 0; i <= kMaxCertificates; ++i) many += pem;
  auto parsed = parse_certificates(many);
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().code, "too_many_certificates");
}

// ---- inspect -----------------------------------------------------------------------------

TEST_F(CertificateTest, InspectsEveryField) {
  CertSpec spec;
  spec.subject_cns = {"*.salestim.io"};
  spec.organization = "Moat, Inc.";
  spec.issuer_cn = "Go Daddy Secure Certificate Authority - G2";
  spec.sans = {"DNS:*.salestim.io", "DNS:salestim.io",        "IP:192.0.2.1",
               "IP:2001:db8::1",    "email:ops@example.test", "URI:https://example.test/x"};
  spec.aia =
      "caIssuers;URI:http://certificates.godaddy.com/repository/gdig2.crt,OCSP;URI:http://"
      "ocsp.godaddy.com/";
  auto cert = make_cert(p256_, spec);
  // 2024-07-01T12:00:00Z: 183 days and 12 hours before not_after.
  CertificateInfo info = inspect(cert.get(), at(1719835200));

  EXPECT_EQ(info.domain, "*.salestim.io");
  EXPECT_EQ(info.subject.common_names, std::vector<std::string>{"*.salestim.io"});
  EXPECT_EQ(info.subject.dn, "CN=*.salestim.io,O=Moat\\, Inc.");
  EXPECT_EQ(info.issuer.dn, "CN=Go Daddy Secure Certificate Authority - G2");
  EXPECT_EQ(info.dns_names, (std::vector<std::string>{"*.salestim.io", "salestim.io"}));
  EXPECT_EQ(info.ip_addresses, (std::vector<std::string>{"192.0.2.1", "2001:db8::1"}));
  EXPECT_EQ(info.emails, std::vector<std::string>{"ops@example.test"});
  EXPECT_EQ(info.uris, std::vector<std::string>{"https://example.test/x"});
  EXPECT_EQ(info.ca_issuers,
            std::vector<std::string>{"http://certificates.godaddy.com/repository/gdig2.crt"});
  EXPECT_EQ(info.ocsp, std::vector<std::string>{"http://ocsp.godaddy.com/"});
  EXPECT_EQ(info.serial, "7eb6cb4ac0117946");
  EXPECT_EQ(info.key.description, "EC P-256");
  EXPECT_EQ(info.key.curve, "P-256");
  EXPECT_EQ(info.signature.name, "SHA256withECDSA");
  EXPECT_EQ(info.signature.openssl, "ecdsa-with-SHA256");
  EXPECT_EQ(info.signature.oid, "1.2.840.10045.4.3.2");
  EXPECT_EQ(info.not_before, "2024-01-01T00:00:00Z");
  EXPECT_EQ(info.not_after, "2025-01-01T00:00:00Z");
  EXPECT_EQ(info.days_left, 183);
  EXPECT_EQ(info.status, ValidityStatus::kValid);
  EXPECT_EQ(info.version, 3);
  EXPECT_FALSE(info.is_ca);
}

TEST_F(CertificateTest, FingerprintAndPinMatchIndependentComputations) {
  auto cert = make_cert(p256_, {});
  std::string der = test::to_der(cert.get());
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(der.data()), der.size(), md);
  std::string hex;
  for (unsigned char b : md) {
    char two[3];
    std::snprintf(two, sizeof two, "%02x", b);
    hex += two;
  }
  EXPECT_EQ(sha256_fingerprint(cert.get()), hex);

  // The pin from the key itself (i2d_PUBKEY), not from the certificate's SubjectPublicKeyInfo.
  unsigned char* spki = nullptr;
  int len = i2d_PUBKEY(p256_, &spki);
  ASSERT_GT(len, 0);
  SHA256(spki, static_cast<std::size_t>(len), md);
  OPENSSL_free(spki);
  unsigned char b64[64] = {};
  EVP_EncodeBlock(b64, md, sizeof md);
  EXPECT_EQ(spki_pin(cert.get()), reinterpret_cast<char*>(b64));
  auto info = inspect(cert.get());
  EXPECT_EQ(info.pin_sha256, spki_pin(cert.get()));
  EXPECT_EQ(0, std::memcmp(info.pin_raw.data(), md, 32));
  EXPECT_EQ(info.fingerprint_sha256.size(), 64u);
}

TEST_F(CertificateTest, KeyAndSignatureNames) {
  struct Case {
    const char* key;
    const EVP_MD* md;
    const char* description;
    const char* signature;
  };
  std::vector<Case> cases = {
      {"rsa2048", EVP_sha256(), "RSA 2048 bits (e 65537)", "SHA256withRSA"},
      {"p384", EVP_sha384(), "EC P-384", "SHA384withECDSA"},
      {"ed25519", nullptr, "Ed25519", "Ed25519"},
  };
  for (const auto& c : cases) {
    auto key = make_key(c.key);
    CertSpec spec;
    spec.digest = c.md;
    auto cert = make_cert(key.get(), spec);
    auto info = inspect(cert.get());
    EXPECT_EQ(info.key.description, c.description) << c.key;
    EXPECT_EQ(info.signature.name, c.signature) << c.key;
    if (std::string(c.key) == "rsa2048") {
      EXPECT_EQ(info.key.exponent, 65537u);
      EXPECT_EQ(info.key.bits, 2048);
    }
  }
}

TEST_F(CertificateTest, DomainFallsBackToFirstDnsSanAndUsesLastCn) {
  CertSpec spec;
  spec.subject_cns = {};
  spec.sans = {"DNS:first.example.test", "DNS:second.example.test"};
  auto no_cn = make_cert(p256_, spec);
  EXPECT_EQ(inspect(no_cn.get()).domain, "first.example.test");
  spec.subject_cns = {"general", "specific.example.test"};
  auto two_cns = make_cert(p256_, spec);
  auto info = inspect(two_cns.get());
  EXPECT_EQ(info.domain, "specific.example.test");
  EXPECT_EQ(info.subject.common_names,
            (std::vector<std::string>{"general", "specific.example.test"}));
}

TEST_F(CertificateTest, SerialSpellings) {
  CertSpec spec;
  spec.serial_hex = "00ff";
  EXPECT_EQ(inspect(make_cert(p256_, spec).get()).serial, "ff");
  spec.serial_hex = "1";
  EXPECT_EQ(inspect(make_cert(p256_, spec).get()).serial, "01");
  spec.serial_hex = "0";
  EXPECT_EQ(inspect(make_cert(p256_, spec).get()).serial, "00");
  spec.serial_hex = "abc";
  spec.negative_serial = true;
  EXPECT_EQ(inspect(make_cert(p256_, spec).get()).serial, "-0abc");
}

TEST_F(CertificateTest, ValidityAndDaysLeft) {
  auto cert = make_cert(p256_, {});  // 2024-01-01 .. 2025-01-01
  auto before = inspect(cert.get(), at(1704067200 - 1));
  EXPECT_EQ(before.status, ValidityStatus::kNotYetValid);
  EXPECT_EQ(inspect(cert.get(), at(1704067200)).status, ValidityStatus::kValid);
  auto last_second = inspect(cert.get(), at(1735689600));
  EXPECT_EQ(last_second.status, ValidityStatus::kValid);
  EXPECT_EQ(last_second.days_left, 0);
  auto one_second_before_a_day = inspect(cert.get(), at(1735689600 - 86400 + 1));
  EXPECT_EQ(one_second_before_a_day.days_left, 0);  // full days only
  EXPECT_EQ(inspect(cert.get(), at(1735689600 - 86400)).days_left, 1);
  auto after = inspect(cert.get(), at(1735689600 + 1));
  EXPECT_EQ(after.status, ValidityStatus::kExpired);
  EXPECT_EQ(after.days_left, -1);  // floor, so an expired certificate is never at 0
  EXPECT_EQ(inspect(cert.get(), at(1735689600 + 86400 * 10)).days_left, -10);
}

TEST_F(CertificateTest, GeneralizedTimeDates) {
  CertSpec spec;
  spec.not_before = 4102444800;  // 2100-01-01: GeneralizedTime
  spec.not_after = 4133980800;   // 2101-01-01
  auto info = inspect(make_cert(p256_, spec).get(), at(1704067200));
  EXPECT_EQ(info.not_before, "2100-01-01T00:00:00Z");
  EXPECT_EQ(info.not_after, "2101-01-01T00:00:00Z");
  EXPECT_EQ(info.status, ValidityStatus::kNotYetValid);
}

TEST_F(CertificateTest, DatesFarFromNow) {
  // 99991231235959Z ("no expiry", RFC 5280) and year 0: beyond nanosecond time_points.
  auto cert = make_cert(p256_, {});
  ASSERT_EQ(ASN1_TIME_set_string(X509_getm_notAfter(cert.get()), "99991231235959Z"), 1);
  ASSERT_EQ(ASN1_TIME_set_string(X509_getm_notBefore(cert.get()), "00000101000000Z"), 1);
  auto info = inspect(cert.get(), at(1704067200));
  EXPECT_EQ(info.not_after, "9999-12-31T23:59:59Z");
  EXPECT_EQ(info.not_before, "0000-01-01T00:00:00Z");
  EXPECT_EQ(info.status, ValidityStatus::kValid);
  EXPECT_EQ(info.days_left, 2913173);
}

TEST_F(CertificateTest, CaAndSelfSigned) {
  CertSpec spec;
  spec.subject_cns = {"Test CA"};
  spec.issuer_cn = "Test CA";
  spec.ca = true;
  auto info = inspect(make_cert(p256_, spec).get());
  EXPECT_TRUE(info.is_ca);
  EXPECT_TRUE(info.self_signed);
  EXPECT_FALSE(inspect(make_cert(p256_, {}).get()).self_signed);
}

// ---- RFC 6125 name matching ----------------------------------------------------------------

TEST(MatchDnsName, Rfc6125Rules) {
  struct Case {
    const char* pattern;
    const char* host;
    bool match;
  };
  std::vector<Case> cases = {
      {"example.com", "example.com", true},
      {"Example.COM", "example.com", true},
      {"example.com.", "example.com", true},
      {"example.com", "EXAMPLE.com.", true},
      {"example.com", "www.example.com", false},
      {"www.example.com", "example.com", false},
      {"*.example.com", "www.example.com", true},
      {"*.example.com", "WWW.Example.Com", true},
      {"*.example.com", "example.com", false},      // the parent is not covered
      {"*.example.com", "a.b.example.com", false},  // exactly one label
      {"*.example.com", ".example.com", false},     // empty label
      {"*.example.com", "wwwexample.com", false},   // no suffix matching
      {"*.example.com", "www.evilexample.com", false},
      {"*.com", "example.com", false},  // too broad
      {"*", "example", false},
      {"*.", "example.", false},
      {"w*.example.com", "www.example.com", false},  // partial wildcards are refused
      {"*w.example.com", "www.example.com", false},
      {"www.*.example.com", "www.a.example.com", false},
      {"*.*.example.com", "a.b.example.com", false},
      {"*.example.com", "*.example.com", false},  // a host never holds a wildcard
      {"", "example.com", false},
      {"example.com", "", false},
      {"xn--bcher-kva.example", "XN--BCHER-KVA.example", true},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(match_dns_name(c.pattern, c.host), c.match) << c.pattern << " vs " << c.host;
  }
  // An embedded NUL never matches the shorter name.
  EXPECT_FALSE(match_dns_name(std::string_view("example.com\0.evil.test", 22), "example.com"));
}

TEST_F(CertificateTest, MatchHostUsesSansThenCnAndIpsOnlyForIps) {
  CertSpec spec;
  spec.subject_cns = {"cn.example.test"};
  spec.sans = {"DNS:*.example.test", "IP:127.0.0.1", "IP:::1"};
  auto info = inspect(make_cert(p256_, spec).get());
  EXPECT_TRUE(match_host(info, "a.example.test").matched);
  EXPECT_EQ(match_host(info, "a.example.test").by, "*.example.test");
  EXPECT_TRUE(match_host(info, "cn.example.test").matched);  // via the wildcard SAN
  EXPECT_TRUE(match_host(info, "127.0.0.1").matched);
  EXPECT_TRUE(match_host(info, "::1").matched);
  EXPECT_TRUE(match_host(info, "[0:0::1]").matched);
  EXPECT_FALSE(match_host(info, "127.0.0.2").matched);
  EXPECT_FALSE(match_host(info, "example.test").matched);

  // With DNS SANs the CN is ignored (RFC 6125 6.4.4).
  spec.subject_cns = {"only-cn.test"};
  spec.sans = {"DNS:san.test"};
  info = inspect(make_cert(p256_, spec).get());
  EXPECT_FALSE(match_host(info, "only-cn.test").matched);
  // Without any DNS SAN, the CN counts; an IP host never matches a CN.
  spec.subject_cns = {"127.0.0.1"};
  spec.sans = {};
  info = inspect(make_cert(p256_, spec).get());
  EXPECT_FALSE(match_host(info, "127.0.0.1").matched);
  spec.subject_cns = {"legacy.test"};
  info = inspect(make_cert(p256_, spec).get());
  auto m = match_host(info, "legacy.test");
  EXPECT_TRUE(m.matched);
  EXPECT_TRUE(m.via_common_name);
}

}  // namespace
}  // namespace moat::core::tls

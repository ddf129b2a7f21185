#include "scan/grade.hpp"

#include <gtest/gtest.h>

#include "core/tls/client_hello.hpp"
#include "core/tls/sslv2.hpp"
#include "scan/cipher_suites.hpp"

namespace moat::scan {
namespace {

using core::tls::kSsl30;
using core::tls::kTls10;
using core::tls::kTls11;
using core::tls::kTls12;
using core::tls::kTls13;

TEST(CipherSuites, ClassifiesFromIanaNames) {
  auto gcm = find_cipher_suite(0xc02f);  // TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
  EXPECT_EQ(gcm.kx, KeyExchange::kEcdhe);
  EXPECT_EQ(gcm.bits, 128);
  EXPECT_TRUE(gcm.aead);
  EXPECT_TRUE(gcm.forward_secret());
  EXPECT_TRUE(gcm.tls12_only);
  auto des3 = find_cipher_suite(0x000a);  // TLS_RSA_WITH_3DES_EDE_CBC_SHA
  EXPECT_EQ(des3.kx, KeyExchange::kRsa);
  EXPECT_EQ(des3.bits, 112);
  EXPECT_TRUE(des3.block64);
  EXPECT_FALSE(des3.forward_secret());
  EXPECT_FALSE(des3.tls12_only);
  auto exp = find_cipher_suite(0x0003);  // TLS_RSA_EXPORT_WITH_RC4_40_MD5
  EXPECT_TRUE(exp.export_grade);
  EXPECT_TRUE(exp.rc4);
  EXPECT_EQ(exp.bits, 40);
  auto t13 = find_cipher_suite(0x1302);  // TLS_AES_256_GCM_SHA384
  EXPECT_TRUE(t13.tls13);
  EXPECT_EQ(t13.bits, 256);
  auto anon = find_cipher_suite(0x0034);  // TLS_DH_anon_WITH_AES_128_CBC_SHA
  EXPECT_TRUE(anon.anonymous());
  auto chacha = find_cipher_suite(0xcca8);
  EXPECT_EQ(chacha.bits, 256);
  EXPECT_TRUE(find_cipher_suite(0xfefe).name.empty());
}

// A modern TLS 1.2 + 1.3 server with an EC P-256 key and x25519, trusted, name matching.
GradeInput modern() {
  GradeInput in;
  in.versions = {kTls12, kTls13};
  for (std::uint16_t id : {0x1301, 0x1302, 0x1303}) in.accepted.push_back({kTls13, find_cipher_suite(id)});
  for (std::uint16_t id : {0xc02b, 0xc02c, 0xcca9}) in.accepted.push_back({kTls12, find_cipher_suite(id)});
  in.key_type = "EC";
  in.key_bits = 256;
  in.weakest_ephemeral_bits = 3072;
  in.secure_renegotiation = true;
  in.reference_version = kTls13;
  in.reference_suite = find_cipher_suite(0x1301);
  in.trusted = true;
  in.name_matches = true;
  in.signature = "SHA256withECDSA";
  return in;
}

bool has_cap(const Grade& g, const std::string& rule) {
  for (const auto& c : g.caps) {
    if (c.rule == rule) return true;
  }
  return false;
}

struct Case {
  const char* name;
  void (*mutate)(GradeInput&);
  const char* grade;
  const char* rule;  // a cap that must be present ("" none)
};

const Case kCases[] = {
    {"modern_no_hsts", [](GradeInput&) {}, "A", ""},
    {"modern_hsts_2y", [](GradeInput& in) { in.hsts_max_age = 63072000; }, "A+", ""},
    {"hsts_short", [](GradeInput& in) { in.hsts_max_age = 86400; }, "A", ""},
    {"ssl2", [](GradeInput& in) { in.versions.insert(in.versions.begin(), core::tls::kSsl20); }, "F",
     "ssl2"},
    {"heartbleed", [](GradeInput& in) { in.heartbleed = true; }, "F", "heartbleed"},
    {"ccs_injection", [](GradeInput& in) { in.ccs_injection = true; }, "F", "ccs_injection"},
    {"tls10_tls11",
     [](GradeInput& in) {
       in.versions = {kTls10, kTls11, kTls12, kTls13};
       in.accepted.push_back({kTls10, find_cipher_suite(0xc009)});
     },
     "B", "tls10_tls11"},
    {"no_tls12",
     [](GradeInput& in) {
       in.versions = {kTls10, kTls11};
       in.accepted = {{kTls10, find_cipher_suite(0xc009)}, {kTls11, find_cipher_suite(0xc00a)}};
     },
     "C", "no_tls12"},
    {"ssl3_only",
     [](GradeInput& in) {
       in.versions = {kSsl30};
       in.accepted = {{kSsl30, find_cipher_suite(0x000a)}};
     },
     "F", "ssl3_best"},
    {"rsa1024",
     [](GradeInput& in) {
       in.key_type = "RSA";
       in.key_bits = 1024;
     },
     "B", "key_lt_2048"},
    {"rsa512",
     [](GradeInput& in) {
       in.key_type = "RSA";
       in.key_bits = 512;
     },
     "F", "key_lt_1024"},
    {"3des_offered_last",
     [](GradeInput& in) { in.accepted.push_back({kTls12, find_cipher_suite(0x000a)}); }, "A", ""},
    {"3des_negotiated",
     [](GradeInput& in) {
       in.accepted.push_back({kTls12, find_cipher_suite(0x000a)});
       in.reference_version = kTls12;
       in.reference_suite = find_cipher_suite(0x000a);
     },
     "C", "3des_negotiated"},
    {"rsa_kx_negotiated",
     [](GradeInput& in) {
       in.versions = {kTls12};
       in.accepted = {{kTls12, find_cipher_suite(0x009c)}, {kTls12, find_cipher_suite(0xc02f)}};
       in.reference_version = kTls12;
       in.reference_suite = find_cipher_suite(0x009c);
     },
     "B", "no_fs"},
    {"export", [](GradeInput& in) { in.accepted.push_back({kTls12, find_cipher_suite(0x0003)}); },
     "F", "export_suites"},
    {"rc4", [](GradeInput& in) { in.accepted.push_back({kTls12, find_cipher_suite(0xc011)}); }, "C",
     "rc4_tls11"},
    {"compression", [](GradeInput& in) { in.compression = true; }, "C", "crime"},
    {"no_tls13",
     [](GradeInput& in) {
       in.versions = {kTls12};
       in.accepted.erase(in.accepted.begin(), in.accepted.begin() + 3);
       in.reference_version = kTls12;
       in.reference_suite = find_cipher_suite(0xc02b);
     },
     "A-", "no_tls13"},
    {"dh1024",
     [](GradeInput& in) {
       in.accepted.push_back({kTls12, find_cipher_suite(0x009e)});
       in.weakest_dh_bits = 1024;
       in.weakest_ephemeral_bits = 1024;
     },
     "B", "dh_lt_2048"},
    {"untrusted",
     [](GradeInput& in) {
       in.trusted = false;
       in.hsts_max_age = 63072000;
     },
     "T", "untrusted"},
    {"mismatch", [](GradeInput& in) { in.name_matches = false; }, "M", "name_mismatch"},
    {"anonymous", [](GradeInput& in) { in.accepted.push_back({kTls12, find_cipher_suite(0x0034)}); },
     "F", "anonymous_suites"},
};

TEST(Grade, RatingGuideCases) {
  for (const auto& c : kCases) {
    GradeInput in = modern();
    c.mutate(in);
    Grade g = grade(in);
    EXPECT_EQ(g.grade, c.grade) << c.name;
    if (*c.rule) {
      EXPECT_TRUE(has_cap(g, c.rule)) << c.name;
    }
  }
}

TEST(Grade, Scores) {
  Grade g = grade(modern());
  EXPECT_EQ(g.protocol_score, 100);
  EXPECT_EQ(g.key_exchange_score, 90);   // P-256 ~ RSA 3072
  EXPECT_EQ(g.cipher_score, 90);         // AES-128 and 256
  EXPECT_EQ(g.score, 30 + 27 + 36);
  GradeInput in = modern();
  in.trusted = false;
  Grade t = grade(in);
  EXPECT_EQ(t.grade, "T");
  EXPECT_EQ(t.grade_trust_ignored, "A");
}

TEST(Grade, Ranks) {
  EXPECT_GT(grade_rank("A+"), grade_rank("A"));
  EXPECT_GT(grade_rank("A"), grade_rank("A-"));
  EXPECT_GT(grade_rank("A-"), grade_rank("B"));
  EXPECT_GT(grade_rank("F"), grade_rank("T"));
  EXPECT_EQ(grade_rank("M"), grade_rank("T"));
  EXPECT_EQ(grade_rank("Z"), -1);
  EXPECT_EQ(protocol_score(kTls10), 90);
  EXPECT_EQ(key_strength_score(2048), 90);
  EXPECT_EQ(key_strength_score(1024), 80);
  EXPECT_EQ(cipher_strength_score(112), 20);
  EXPECT_EQ(rsa_equivalent_bits("EC", 384), 7680);
}

}  // namespace
}  // namespace moat::scan

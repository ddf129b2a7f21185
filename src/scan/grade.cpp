#include "scan/grade.hpp"

#include <algorithm>

#include "core/tls/client_hello.hpp"
#include "core/tls/sslv2.hpp"

namespace moat::scan {
namespace {

using core::tls::kSsl20;
using core::tls::kSsl30;
using core::tls::kTls10;
using core::tls::kTls11;
using core::tls::kTls12;
using core::tls::kTls13;

// Six months: the HSTS max-age that A+ requires (rating guide 2009e).
constexpr std::int64_t kHstsSixMonths = 15552000;

constexpr const char* kLetters[] = {"T", "F", "E", "D", "C", "B", "A-", "A", "A+"};

std::string letter_for_score(int score) {
  // Rating guide, "Letter grade translation".
  if (score >= 80) return "A";
  if (score >= 65) return "B";
  if (score >= 50) return "C";
  if (score >= 35) return "D";
  if (score >= 20) return "E";
  return "F";
}

bool has(const std::vector<std::uint16_t>& versions, std::uint16_t v) {
  return std::find(versions.begin(), versions.end(), v) != versions.end();
}

}  // namespace

int protocol_score(std::uint16_t version) {
  switch (version) {
    case kSsl30:
      return 80;
    case kTls10:
      return 90;
    case kTls11:
      return 95;
    case kTls12:
    case kTls13:  // not in the published table; scored like TLS 1.2 (as testssl.sh does)
      return 100;
    default:
      return 0;  // SSL 2.0 and unknown
  }
}

int key_strength_score(int bits) {
  if (bits <= 0) return 0;
  if (bits < 512) return 20;
  if (bits < 1024) return 40;
  if (bits < 2048) return 80;
  if (bits < 4096) return 90;
  return 100;
}

int cipher_strength_score(int bits) {
  if (bits <= 0) return 0;
  if (bits < 128) return 20;
  if (bits < 256) return 80;
  return 100;
}

int rsa_equivalent_bits(const std::string& key_type, int bits) {
  if (bits <= 0) return 0;
  if (key_type == "EC" || key_type == "Ed25519" || key_type == "Ed448" || key_type == "X25519" ||
      key_type == "X448") {
    // NIST SP 800-57 Part 1 Table 2 comparable strengths.
    if (bits < 160) return 512;
    if (bits < 224) return 1024;
    if (bits < 256) return 2048;
    if (bits < 384) return 3072;
    if (bits < 512) return 7680;
    return 15360;
  }
  return bits;  // RSA, DSA, DH
}

int grade_rank(const std::string& grade) {
  if (grade == "M") return 0;
  for (int i = 0; i < static_cast<int>(std::size(kLetters)); ++i) {
    if (grade == kLetters[i]) return i;
  }
  return -1;
}

Grade grade(const GradeInput& in) {
  Grade g;
  std::vector<GradeCap> caps;
  auto cap = [&](const char* grade_letter, const char* rule, std::string reason) {
    caps.push_back({grade_letter, rule, std::move(reason)});
  };

  // Step 2: category scores.
  int best = 0;
  int worst = 100;
  for (auto v : in.versions) {
    best = std::max(best, protocol_score(v));
    worst = std::min(worst, protocol_score(v));
  }
  g.protocol_score = in.versions.empty() ? 0 : (best + worst) / 2;

  bool anonymous = false;
  bool export_grade = false;
  bool rc4 = false;
  bool rc4_only = !in.accepted.empty();
  bool rc4_modern = false;
  bool weak_bits = false;
  bool null_cipher = false;
  bool any_fs = false;
  bool any_aead = false;
  int max_bits = 0;
  int min_bits = 1 << 20;
  for (const auto& a : in.accepted) {
    const CipherSuite& s = a.suite;
    anonymous = anonymous || s.anonymous();
    export_grade = export_grade || s.export_grade;
    rc4 = rc4 || s.rc4;
    rc4_only = rc4_only && s.rc4;
    rc4_modern = rc4_modern || (s.rc4 && a.version >= kTls11);
    null_cipher = null_cipher || s.null_cipher;
    weak_bits = weak_bits || (s.bits > 0 && s.bits < 112);
    any_fs = any_fs || s.forward_secret();
    any_aead = any_aead || s.aead;
    max_bits = std::max(max_bits, s.bits);
    min_bits = std::min(min_bits, s.bits);
  }
  if (in.accepted.empty()) min_bits = 0;
  g.cipher_score = (cipher_strength_score(max_bits) + cipher_strength_score(min_bits)) / 2;

  int server_key = rsa_equivalent_bits(in.key_type, in.key_bits);
  int kx_bits = server_key;
  if (in.weakest_ephemeral_bits) {
    kx_bits = kx_bits == 0 ? *in.weakest_ephemeral_bits : std::min(kx_bits, *in.weakest_ephemeral_bits);
  }
  g.key_exchange_score = key_strength_score(kx_bits);
  if (export_grade) g.key_exchange_score = std::min(g.key_exchange_score, 40);
  if (anonymous) g.key_exchange_score = 0;

  int total = g.protocol_score * 30 / 100 + g.key_exchange_score * 30 / 100 + g.cipher_score * 40 / 100;
  if (g.protocol_score == 0 || g.key_exchange_score == 0 || g.cipher_score == 0) total = 0;
  g.score = total;

  // Step 1 (hard F) and step 3: caps.
  if (in.md5_or_md2_signature) cap("F", "md5_signature", "certificate signed with MD5 or MD2");
  if (server_key > 0 && server_key < 1024) {
    cap("F", "key_lt_1024", "server key smaller than 1024 bits (RSA equivalent)");
  }
  if (has(in.versions, kSsl20)) cap("F", "ssl2", "SSL 2.0 supported (DROWN)");
  if (in.heartbleed) cap("F", "heartbleed", "vulnerable to Heartbleed (CVE-2014-0160)");
  if (in.ccs_injection) cap("F", "ccs_injection", "vulnerable to CCS injection (CVE-2014-0224)");
  if (!in.versions.empty() && best > 0 && best <= protocol_score(kSsl30)) {
    cap("F", "ssl3_best", "SSL 3.0 is the best protocol offered");
  }
  if (export_grade) cap("F", "export_suites", "export cipher suites accepted");
  if (anonymous) cap("F", "anonymous_suites", "anonymous (unauthenticated) suites accepted");
  if (null_cipher) cap("F", "null_suites", "NULL (unencrypted) suites accepted");
  if (weak_bits) cap("F", "cipher_lt_112", "cipher suites weaker than 112 bits accepted (DES, export)");
  if (rc4_only) cap("F", "rc4_only", "only RC4 suites accepted");
  if (g.key_exchange_score > 0 && g.key_exchange_score <= 40) {
    cap("F", "key_exchange_weak", "key exchange score 40 or less");
  }
  if (!in.versions.empty() && !has(in.versions, kTls12) && !has(in.versions, kTls13)) {
    cap("C", "no_tls12", "TLS 1.2 not supported (guide 2009j)");
  }
  if (in.compression) cap("C", "crime", "TLS compression enabled (CRIME, guide 2009j)");
  if (rc4_modern) cap("C", "rc4_tls11", "RC4 used with TLS 1.1 or newer (guide 2009j)");
  if (in.reference_suite && in.reference_suite->block64 && in.reference_version &&
      *in.reference_version >= kTls11) {
    cap("C", "3des_negotiated",
        "a modern client negotiates a 64-bit block cipher (3DES, SWEET32; January 2017)");
  }
  if (has(in.versions, kSsl30)) cap("B", "ssl3", "SSL 3.0 supported (POODLE, guide 2009h)");
  if (rc4 && !rc4_only) cap("B", "rc4", "RC4 accepted (guide 2009i)");
  if (has(in.versions, kTls10) || has(in.versions, kTls11)) {
    cap("B", "tls10_tls11", "TLS 1.0 or TLS 1.1 supported (guide 2009q, January 2020)");
  }
  if (server_key >= 1024 && server_key < 2048) {
    cap("B", "key_lt_2048", "server key smaller than 2048 bits (guide 2009e)");
  }
  if (in.weakest_dh_bits && *in.weakest_dh_bits < 2048) {
    cap("B", "dh_lt_2048", "DH parameters smaller than 2048 bits (guide 2009j)");
  }
  bool reference_fs = in.reference_suite ? in.reference_suite->forward_secret() : any_fs;
  if (!in.accepted.empty() && !reference_fs) {
    cap("B", "no_fs", any_fs ? "a modern client negotiates a suite without forward secrecy"
                             : "no forward secrecy (March 2018)");
  }
  if (!in.accepted.empty() && !any_aead) cap("B", "no_aead", "no AEAD suite (March 2018)");
  // Step 4: warnings (A-).
  if (!in.versions.empty() && !has(in.versions, kTls13)) {
    cap("A-", "no_tls13", "TLS 1.3 not supported (guide 2009r warning)");
  }
  if (in.secure_renegotiation && !*in.secure_renegotiation) {
    cap("A-", "no_secure_renegotiation", "secure renegotiation (RFC 5746) not supported");
  }

  std::string letter = letter_for_score(total);
  for (const auto& c : caps) {
    if (grade_rank(c.grade) < grade_rank(letter)) letter = c.grade;
  }
  // A+: an A with no warnings and an exceptional configuration (guide 2009e/2009f).
  if (letter == "A") {
    bool hsts = in.hsts_max_age && *in.hsts_max_age >= kHstsSixMonths;
    if (!hsts) {
      g.plus.push_back(in.hsts_max_age ? "HSTS max-age below 6 months (15552000 s)"
                                       : "no HSTS header");
    }
    if (in.sha1_signature) g.plus.push_back("SHA-1 certificate signature");
    if (g.plus.empty()) {
      letter = "A+";
      g.plus.push_back("HSTS max-age at least 6 months");
    }
  }
  g.grade_trust_ignored = letter;
  if (in.trusted && !*in.trusted) {
    cap("T", "untrusted",
        "certificate not trusted" + (in.trust_reason.empty() ? "" : ": " + in.trust_reason));
    letter = "T";
  }
  if (in.name_matches && !*in.name_matches) {
    cap("M", "name_mismatch", "certificate name does not match the host");
    letter = "M";
  }
  std::stable_sort(caps.begin(), caps.end(), [](const GradeCap& a, const GradeCap& b) {
    return grade_rank(a.grade) < grade_rank(b.grade);
  });
  g.caps = std::move(caps);
  g.grade = letter;
  return g;
}

}  // namespace moat::scan

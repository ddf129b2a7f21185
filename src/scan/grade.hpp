// scan: the grade, following the SSL Labs SSL Server Rating Guide (2009k text plus the later
// changes up to 2009r, restated in ../shared/research/tls-audit-anchors.md section b): a
// certificate gate (T, M, hard F), three scores (protocol 30 %, key exchange 30 %, cipher
// strength 40 %), caps (the lowest wins), then A-/A+. Pure: facts in, grade out.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "scan/cipher_suites.hpp"

namespace moat::scan {

inline constexpr const char* kRuleset = "ssllabs-2009r/moat-2";  // moat-2: SSL 2.0, Heartbleed, CCS caps

// What the grade depends on, extracted from a scan (or written by hand in tests).
struct GradeInput {
  std::vector<std::uint16_t> versions;  // supported protocol versions (kSsl20, kSsl30 .. kTls13)
  struct Accepted {
    std::uint16_t version = 0;
    CipherSuite suite;
  };
  std::vector<Accepted> accepted;  // every (version, suite) the server accepted

  // The leaf's key: "RSA", "EC", "Ed25519", "DSA"... and its size in bits (0: unknown).
  std::string key_type;
  int key_bits = 0;
  // Weakest ephemeral key exchange seen, RSA-equivalent bits (DHE prime size; ECDHE curve
  // mapped: P-256/X25519 3072, P-384/X448 7680, P-521 15360). Unset: none seen.
  std::optional<int> weakest_ephemeral_bits;
  std::optional<int> weakest_dh_bits;  // finite-field DHE prime, for the DH < 2048 cap

  bool compression = false;                   // the server accepted DEFLATE (CRIME)
  bool heartbleed = false;                    // CVE-2014-0160
  bool ccs_injection = false;                 // CVE-2014-0224
  std::optional<bool> secure_renegotiation;   // RFC 5746 answered (unset: not TLS <= 1.2)
  // What a modern reference client negotiates (approximating SSL Labs' browser simulations).
  std::optional<std::uint16_t> reference_version;
  std::optional<CipherSuite> reference_suite;

  // Certificate gate. Unset trust/name: the certificate could not be read (no cap).
  std::optional<bool> trusted;
  std::string trust_reason;  // "certificate has expired", "self-signed certificate"...
  std::optional<bool> name_matches;
  std::string signature;      // leaf signature algorithm, "SHA256withRSA"
  bool md5_or_md2_signature = false;
  bool sha1_signature = false;

  std::optional<std::int64_t> hsts_max_age;  // seconds; unset: no (valid) HSTS header
};

struct GradeCap {
  std::string grade;  // "F", "C", "B", "A-", "T", "M"
  std::string rule;   // stable id: "tls10_tls11", "no_fs", "key_lt_2048"...
  std::string reason;
};

struct Grade {
  std::string grade;               // "A+" "A" "A-" "B" "C" "D" "E" "F" "T" "M"
  std::string grade_trust_ignored;  // the grade if T/M did not apply
  int score = 0;                   // 0..100 before caps
  int protocol_score = 0;
  int key_exchange_score = 0;
  int cipher_score = 0;
  std::vector<GradeCap> caps;        // every cap that applied, lowest first
  std::vector<std::string> plus;     // why A+ was (or was not) given
  std::string ruleset = kRuleset;
};

Grade grade(const GradeInput& input);

// Order of grades for --fail-under: A+ highest, T and M below F. -1 for an unknown grade.
int grade_rank(const std::string& grade);

// Rating guide tables.
int protocol_score(std::uint16_t version);   // SSL 3 80, TLS 1.0 90, 1.1 95, 1.2/1.3 100
int key_strength_score(int rsa_equivalent_bits);
int cipher_strength_score(int bits);
int rsa_equivalent_bits(const std::string& key_type, int bits);

}  // namespace moat::scan

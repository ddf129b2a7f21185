// core/tls: certificate inspection: parsing PEM/DER input, fingerprints, RFC 7469 SPKI pins, the
// fields of a vendor's "certificate table", and RFC 6125 name matching. No trust decisions here.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/types.h>

#include "core/base/result.hpp"

namespace moat::core::tls {

// RAII owners for OpenSSL handles (deleters are out of line so callers need only openssl/types.h).
struct X509Deleter {
  void operator()(X509* x) const;
};
struct EvpPkeyDeleter {
  void operator()(EVP_PKEY* k) const;
};
struct BioDeleter {
  void operator()(BIO* b) const;
};
struct SslCtxDeleter {
  void operator()(SSL_CTX* c) const;
};
struct SslDeleter {
  void operator()(SSL* s) const;
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyDeleter>;
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;
using SslPtr = std::unique_ptr<SSL, SslDeleter>;

// Empties this thread's OpenSSL error queue into one line ("asn1 encoding routines: header too
// long; ..."); empty when the queue was empty. Call it where an OpenSSL call failed.
std::string drain_openssl_errors();

// More certificates than this in one input is refused (a chain has a handful).
inline constexpr std::size_t kMaxCertificates = 1000;

// Parses one or more certificates: PEM (any number of CERTIFICATE blocks; text between blocks
// is ignored, as OpenSSL does) or DER (one certificate, or several concatenated). Errors
// (source kInput, `offset` set where known): "empty", "pem_truncated" (BEGIN without END),
// "pem_invalid" (a block that does not decode), "no_certificate" (PEM without a certificate
// block, or neither PEM nor DER), "der_truncated", "der_invalid", "der_trailing_data",
// "too_many_certificates".
Result<std::vector<X509Ptr>> parse_certificates(std::string_view bytes);

struct DistinguishedName {
  std::string dn;                         // RFC 4514 / 2253 string, UTF-8: "CN=a,O=b\, Inc.,C=US"
  std::vector<std::string> common_names;  // every CN attribute, in order of the encoding
};

struct KeyInfo {
  std::string type;   // "RSA", "EC", "Ed25519", "Ed448", "DSA", "RSA-PSS", or the OID name
  int bits = 0;       // 0 when unknown
  std::string curve;  // EC only: NIST name ("P-256") when there is one, else OpenSSL's
  std::optional<std::uint64_t> exponent;  // RSA only, when it fits
  std::string description;                // "RSA 2048 bits (e 65537)", "EC P-256", "Ed25519"
};

struct SignatureAlgorithm {
  std::string name;  // Java/JCA style as vendor pages write it: "SHA256withRSA", "SHA256withECDSA"
  std::string openssl;  // OpenSSL's long name: "sha256WithRSAEncryption", "ecdsa-with-SHA256"
  std::string oid;      // dotted
};

enum class ValidityStatus { kValid, kExpired, kNotYetValid };
const char* to_string(ValidityStatus status);

struct CertificateInfo {
  std::string domain;              // the subject's (last, most specific) CN, else the first DNS SAN
  std::string fingerprint_sha256;  // lowercase hex of SHA-256 over the DER certificate, 64 chars
  std::string pin_sha256;          // RFC 7469: base64(SHA-256(DER SubjectPublicKeyInfo))
  std::array<std::uint8_t, 32> pin_raw{};
  DistinguishedName subject;
  DistinguishedName issuer;
  std::vector<std::string> dns_names;     // subjectAltName dNSName, in order
  std::vector<std::string> ip_addresses;  // subjectAltName iPAddress, canonical text
  std::vector<std::string> emails;        // rfc822Name
  std::vector<std::string> uris;          // uniformResourceIdentifier
  std::string serial;                     // lowercase hex, even digit count, "-" prefix if negative
  KeyInfo key;
  std::vector<std::string> ca_issuers;  // AIA caIssuers URIs
  std::vector<std::string> ocsp;        // AIA OCSP URIs
  SignatureAlgorithm signature;
  std::string not_before;  // ISO 8601 UTC "2024-01-31T12:00:00Z"; empty if undecodable
  std::string not_after;
  std::int64_t days_left = 0;  // floor((not_after - now) / 1 day); negative once expired
  ValidityStatus status = ValidityStatus::kValid;
  int version = 0;     // 1..3
  bool is_ca = false;  // basicConstraints CA:TRUE
  bool self_signed = false;
};

// All fields of `cert` as of `now`. Never fails: a field OpenSSL cannot decode stays empty.
CertificateInfo inspect(X509* cert, std::chrono::system_clock::time_point now);
CertificateInfo inspect(X509* cert);

std::string spki_pin(X509* cert);            // base64 SHA-256 of the DER SubjectPublicKeyInfo
std::string sha256_fingerprint(X509* cert);  // lowercase hex SHA-256 of the DER certificate

// RFC 6125 matching of one DNS-ID presented in a certificate against a reference host name:
// case-insensitive, one trailing dot ignored on either; '*' only as the whole leftmost label
// of a pattern with at least two more labels, matching exactly one non-empty label.
bool match_dns_name(std::string_view pattern, std::string_view host);

struct NameMatch {
  bool matched = false;
  std::string by;                // the presented identifier that matched ("*.example.com")
  bool via_common_name = false;  // matched the subject CN because there is no DNS SAN
};

// Does the certificate cover `host`? An IP literal is compared with iPAddress SANs only; a name
// with the DNS SANs, or (RFC 6125 6.4.4) with the subject CNs only if there is no DNS SAN.
NameMatch match_host(const CertificateInfo& info, std::string_view host);

}  // namespace moat::core::tls

namespace moat::core::tls {

// The rows of the reference page's certificate table, in the page's order ("Domain",
// "Fingerprint", "Pin SHA256", ...), then what the page leaves out (OCSP, validity, days left).
// Empty values read "(none)". Shared by `moat cert` and `moat scan`.
std::vector<std::pair<std::string, std::string>> certificate_table(const CertificateInfo& c);

// An ASN1_TIME (UTCTime or GeneralizedTime) as seconds since the epoch; nullopt if malformed.
// Seconds, not system_clock's nanoseconds: certificate dates span years 0 to 9999
// (99991231235959Z means "no expiry", RFC 5280 4.1.2.5), far beyond +-292 years of nanoseconds.
std::optional<std::chrono::sys_seconds> asn1_time_seconds(const ASN1_TIME* t);
// "2026-11-28T22:06:05Z": how certificate and OCSP dates are shown.
std::string iso8601(std::chrono::sys_seconds tp);

}  // namespace moat::core::tls

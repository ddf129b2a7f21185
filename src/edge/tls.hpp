// edge: the server-side TLS contexts. Certificates whose leaves carry the same names share one
// SSL_CTX, one per key type (an RSA and an ECDSA certificate for the same site): OpenSSL then
// serves the one the client can verify, by its signature_algorithms (TLS 1.3) or its ECDHE-ECDSA /
// ECDHE-RSA suites (TLS 1.2). Every context has the same settings (TLS 1.2 and 1.3 only, Mozilla
// intermediate ciphers, X25519MLKEM768 where OpenSSL offers it then X25519/P-256/P-384, ALPN h2
// and http/1.1, session tickets), an SNI callback that moves the connection to the context whose
// certificates cover the name, and OCSP stapling from files. Built once per config snapshot;
// shared by every worker (an SSL_CTX may be used by many threads).
#pragma once

#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/x509.h>
#include <asio/ssl/context.hpp>

#include "core/base/result.hpp"
#include "core/tls/certificate.hpp"
#include "edge/config.hpp"

namespace moat::edge {

// Mozilla "intermediate" for TLS 1.2: ECDHE key exchange with AEAD ciphers only (no CBC, no
// static RSA, no DHE). TLS 1.3 suites are OpenSSL's defaults, which are the same three.
inline constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
inline constexpr const char* kTls13Suites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
// Tried first: the hybrid post-quantum group (OpenSSL 3.5+). An OpenSSL without it refuses the
// whole list, and the classical list is used instead.
inline constexpr const char* kGroupsWithPq = "X25519MLKEM768:X25519:P-256:P-384";
inline constexpr const char* kGroups = "X25519:P-256:P-384";

// A validated OCSP response for one leaf certificate, stapled when a client asks for it.
struct OcspStaple {
  std::string der;               // the OCSPResponse as read from the file
  std::time_t next_update = 0;   // 0: the response has no nextUpdate
  std::string next_update_text;  // ISO 8601, or "none"
};

// Checks a DER OCSPResponse against `leaf` and its `issuer`: it parses, the responder's status
// is successful, it is signed by the issuer or a responder the issuer delegated to (OCSPSigning),
// one of its responses names this certificate (CertID with the response's own hash), that status
// is good, thisUpdate is not in the future and nextUpdate (when present) not in the past.
core::Result<OcspStaple> check_ocsp_response(std::string der, X509* leaf, X509* issuer,
                                             STACK_OF(X509) * untrusted);

class TlsContexts {
 public:
  // Loads every certificate and key (the key must match), in config order, grouping those with
  // the same names (at most one per key type); the group of the first certificate is the default
  // for clients without SNI or with a name no certificate covers. Errors name the certificate's
  // place in the config (file:line:column).
  static core::Result<std::shared_ptr<TlsContexts>> build(const EdgeConfig& config);

  TlsContexts(const TlsContexts&) = delete;
  TlsContexts& operator=(const TlsContexts&) = delete;

  asio::ssl::context& default_context() { return *entries_.front().context; }
  std::size_t size() const { return entries_.size(); }
  // The group covering `host` (normalized), or the default.
  std::size_t select(std::string_view host) const;
  // "site.crt [EC P-256] + site-rsa.crt [RSA 2048 bits] (CN=a; DNS a, *.b); OCSP ..."
  const std::string& summary(std::size_t i) const { return entries_[i].summary; }
  // The key exchange groups offered, as given to OpenSSL.
  const std::string& groups() const { return groups_; }

 private:
  TlsContexts() = default;
  struct Staple {
    X509* leaf = nullptr;  // owned by the entry's context
    OcspStaple response;
  };
  struct Entry {
    std::unique_ptr<asio::ssl::context> context;
    core::tls::CertificateInfo info;  // of the group's first certificate: the names for SNI
    std::string summary;
    std::vector<Staple> staples;
  };
  static int on_server_name(SSL* ssl, int* alert, void* arg);
  static int on_status_request(SSL* ssl, void* arg);
  std::vector<Entry> entries_;
  std::string groups_;
};

}  // namespace moat::edge

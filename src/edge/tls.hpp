// edge: the server-side TLS contexts: one SSL_CTX per certificate, all with the same settings
// (TLS 1.2 and 1.3 only, Mozilla intermediate ciphers, X25519/P-256/P-384, ALPN h2 and http/1.1,
// session tickets), and an SNI callback that moves the connection to the context whose
// certificate covers the name. Built once per config snapshot; shared by every worker (an SSL_CTX
// may be used by many threads).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

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
inline constexpr const char* kGroups = "X25519:P-256:P-384";

class TlsContexts {
 public:
  // Loads every certificate and key (the key must match), in config order; the first is the
  // default for clients without SNI or with a name no certificate covers.
  static core::Result<std::shared_ptr<TlsContexts>> build(const EdgeConfig& config);

  TlsContexts(const TlsContexts&) = delete;
  TlsContexts& operator=(const TlsContexts&) = delete;

  asio::ssl::context& default_context() { return *entries_.front().context; }
  std::size_t size() const { return entries_.size(); }
  // The certificate covering `host` (normalized), or the default.
  std::size_t select(std::string_view host) const;
  const std::string& summary(std::size_t i) const { return entries_[i].summary; }

 private:
  TlsContexts() = default;
  struct Entry {
    std::unique_ptr<asio::ssl::context> context;
    core::tls::CertificateInfo info;
    std::string summary;  // "site.crt (CN=a; DNS a, *.b)"
  };
  static int on_server_name(SSL* ssl, int* alert, void* arg);
  std::vector<Entry> entries_;
};

}  // namespace moat::edge

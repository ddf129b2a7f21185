// core/tls: fetching the certificate chain a TLS server presents, for reporting. The client does
// NOT verify anything (trust is the caller's business): it connects, sends SNI, completes a
// TLS 1.2+ handshake under one total deadline, and returns the chain exactly as sent.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/tls/certificate.hpp"

namespace moat::core::tls {

struct FetchOptions {
  std::string host;  // name or IP literal (no brackets) to resolve and connect to
  std::uint16_t port = 443;
  std::string sni;              // server name to send; empty: none (an IP literal is never sent)
  std::string connect_address;  // IP literal to connect to instead of resolving `host`
  std::chrono::milliseconds timeout{10000};  // resolve + connect + handshake, in total
};

struct FetchedChain {
  std::vector<X509Ptr> chain;  // as the server sent it, leaf first
  std::string protocol;        // "TLSv1.3"
  std::string cipher;          // "TLS_AES_256_GCM_SHA384"
  std::string peer;            // "127.0.0.1:8443" or "[::1]:8443", the address connected to
  std::string sni;             // the server name sent, empty if none
};

// Errors (source kUpstream): "resolve_failed", "resolve_timeout", "connect_refused",
// "connect_failed", "connect_timeout", "handshake_failed" (with OpenSSL's reason and, for a
// peer that is not TLS, a hint), "handshake_timeout", "handshake_closed", "no_certificate".
// The process must ignore SIGPIPE (a peer may close mid-handshake).
Result<FetchedChain> fetch_chain(const FetchOptions& options);

}  // namespace moat::core::tls

#include "edge/tls.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <fmt/format.h>

#include "core/policy/host_pattern.hpp"

namespace moat::edge {

namespace {

// RFC 7301 3.2: the server picks, in its own order: h2, then http/1.1. No overlap is a fatal
// no_application_protocol alert (what nginx does), never a silent guess.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
  static const unsigned char kServer[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  unsigned char selected_length = 0;
  if (SSL_select_next_proto(&selected, &selected_length, kServer, sizeof kServer, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  *outlen = selected_length;
  return SSL_TLSEXT_ERR_OK;
}

core::Error tls_error(std::string what) {
  std::string detail = core::tls::drain_openssl_errors();
  return core::Error::config("tls_config", detail.empty() ? what : what + ": " + detail);
}

}  // namespace

int TlsContexts::on_server_name(SSL* ssl, int* /*alert*/, void* arg) {
  auto* self = static_cast<TlsContexts*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_OK;  // no SNI: the default certificate
  auto host = core::policy::normalize_host(name);
  if (!host) return SSL_TLSEXT_ERR_OK;
  std::size_t i = self->select(host->host);
  if (i != 0) SSL_set_SSL_CTX(ssl, self->entries_[i].context->native_handle());
  return SSL_TLSEXT_ERR_OK;
}

std::size_t TlsContexts::select(std::string_view host) const {
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (core::tls::match_host(entries_[i].info, host).matched) return i;
  }
  return 0;
}

core::Result<std::shared_ptr<TlsContexts>> TlsContexts::build(const EdgeConfig& config) {
  std::shared_ptr<TlsContexts> out(new TlsContexts());
  for (const auto& files : config.certificates) {
    auto context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    SSL_CTX* ctx = context->native_handle();
    ERR_clear_error();
    const int min_version = config.min_tls_version >= 0x0304 ? TLS1_3_VERSION : TLS1_2_VERSION;
    if (SSL_CTX_set_min_proto_version(ctx, min_version) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
      return tls_error("cannot set the TLS versions");
    }
    if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, kTls13Suites) != 1) {
      return tls_error("cannot set the cipher suites");
    }
    if (SSL_CTX_set1_groups_list(ctx, kGroups) != 1) return tls_error("cannot set the groups");
    // No compression (CRIME), no renegotiation (a client-driven CPU cost), client cipher order
    // (Mozilla intermediate: every offered suite is strong, so let clients without AES-NI pick
    // ChaCha20).
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_clear_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET |
                                   SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
    // Resumption: stateless tickets (TLS 1.2 and 1.3) with keys OpenSSL generates per context;
    // every worker shares the contexts, so a ticket works on any worker. Rotation and sharing
    // across instances come with the ticket-key file (docs/edge.md).
    static const unsigned char kSessionContext[] = "moat-edge";
    SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
    if (SSL_CTX_use_certificate_chain_file(ctx, files.cert.c_str()) != 1) {
      return tls_error(fmt::format("cannot load the certificate chain '{}'", files.cert));
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, files.key.c_str(), SSL_FILETYPE_PEM) != 1) {
      return tls_error(fmt::format("cannot load the private key '{}'", files.key));
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      return tls_error(fmt::format("the key '{}' does not match the certificate '{}'", files.key,
                                   files.cert));
    }
    Entry e;
    e.info = core::tls::inspect(SSL_CTX_get0_certificate(ctx));
    std::string names;
    for (const auto& n : e.info.dns_names) names += (names.empty() ? "" : ", ") + n;
    e.summary = fmt::format("{} (CN={}; DNS {})", files.cert, e.info.domain,
                            names.empty() ? "-" : names);
    e.context = std::move(context);
    out->entries_.push_back(std::move(e));
  }
  if (out->entries_.empty()) return core::Error::config("tls_config", "no certificate");
  // The SNI callback runs on the context the connection started with: the default one. It is
  // set on every context so that whichever is first stays correct after a reorder.
  for (auto& e : out->entries_) {
    SSL_CTX_set_tlsext_servername_callback(e.context->native_handle(), on_server_name);
    SSL_CTX_set_tlsext_servername_arg(e.context->native_handle(), out.get());
  }
  return out;
}

}  // namespace moat::edge

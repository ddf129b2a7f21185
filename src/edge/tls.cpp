#include "edge/tls.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <optional>

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

#include "core/base/file.hpp"
#include "core/policy/host_pattern.hpp"

namespace moat::edge {

namespace {

constexpr std::size_t kMaxPemBytes = 1024 * 1024;
constexpr std::size_t kMaxOcspBytes = 64 * 1024;  // a response is a few KiB
constexpr long kOcspClockSkew = 300;  // seconds of slack for thisUpdate, as OpenSSL's tools

struct OcspResponseDeleter {
  void operator()(OCSP_RESPONSE* r) const { OCSP_RESPONSE_free(r); }
};
struct OcspBasicDeleter {
  void operator()(OCSP_BASICRESP* b) const { OCSP_BASICRESP_free(b); }
};
struct OcspCertIdDeleter {
  void operator()(OCSP_CERTID* c) const { OCSP_CERTID_free(c); }
};
struct X509StoreDeleter {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};

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

// A key file with a passphrase is refused instead of prompting on the terminal.
int no_passphrase(char*, int, int, void*) { return 0; }

// "edge.yaml:12:7", where an error about one configured certificate points.
std::string where_in_config(const CertificateFiles& files) {
  if (files.at.file.empty()) return {};
  return fmt::format("{}:{}:{}", files.at.file, files.at.line, files.at.column);
}

core::Error tls_error(std::string what) {
  std::string detail = core::tls::drain_openssl_errors();
  return core::Error::config("tls_config", detail.empty() ? what : what + ": " + detail);
}

std::string key_kind(const core::tls::KeyInfo& key) {
  return key.type == "EC" ? std::string("ECDSA") : key.type;
}

// The names a certificate is chosen by: certificates with the same ones form a group.
std::string names_key(const core::tls::CertificateInfo& info) {
  auto lower_sorted = [](std::vector<std::string> v) {
    for (auto& s : v) {
      std::transform(s.begin(), s.end(), s.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    }
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    std::string out;
    for (const auto& s : v) out += s + ",";
    return out;
  };
  // RFC 6125 6.4.4: the CN counts only when there is no DNS SAN.
  return lower_sorted(info.dns_names.empty() ? info.subject.common_names : info.dns_names) + "|" +
         lower_sorted(info.ip_addresses);
}

std::string names_text(const core::tls::CertificateInfo& info) {
  std::string names;
  for (const auto& n : info.dns_names) names += (names.empty() ? "" : ", ") + n;
  for (const auto& n : info.ip_addresses) names += (names.empty() ? "IP " : ", IP ") + n;
  return names.empty() ? "-" : names;
}

// The settings every context shares. `groups`: the list to set; false if OpenSSL refuses it.
core::Result<bool> configure(SSL_CTX* ctx, const EdgeConfig& config, const char* groups) {
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
  if (SSL_CTX_set1_groups_list(ctx, groups) != 1) {
    ERR_clear_error();
    return false;
  }
  // No compression (CRIME), no renegotiation (a client-driven CPU cost), client cipher order
  // (Mozilla intermediate: every offered suite is strong, so let clients without AES-NI pick
  // ChaCha20).
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  // Idle connections give their 16 KiB read and write buffers back (nginx does the same).
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_clear_options(
      ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET | SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
  // Resumption: stateless tickets (TLS 1.2 and 1.3) with keys OpenSSL generates per context;
  // every worker shares the contexts, so a ticket works on any worker. Rotation and sharing
  // across instances come with the ticket-key file (docs/edge.md).
  // One TLS 1.3 ticket per handshake instead of OpenSSL's two: a browser resumes with one, and
  // each ticket costs an encryption and a write on every new connection.
  SSL_CTX_set_num_tickets(ctx, 1);
  static const unsigned char kSessionContext[] = "moat-edge";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
  SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
  return true;
}

// One configured certificate, read before the contexts are built so that they can be grouped.
struct Loaded {
  const CertificateFiles* files = nullptr;
  core::tls::CertificateInfo info;
  std::string names;  // names_key
  std::string kind;   // "ECDSA", "RSA", ...: at most one of each per group
};

core::Result<Loaded> read_leaf(const CertificateFiles& files) {
  auto bytes = core::read_file_capped(files.cert, kMaxPemBytes);
  if (!bytes) {
    return core::Error::config(
        "tls_config", fmt::format("cannot read the certificate chain '{}': {}", files.cert,
                                  bytes.error().message));
  }
  auto certs = core::tls::parse_certificates(*bytes);
  if (!certs) {
    return core::Error::config("tls_config",
                               fmt::format("'{}' is not a certificate chain: {}", files.cert,
                                           certs.error().message));
  }
  Loaded out;
  out.files = &files;
  out.info = core::tls::inspect(certs->front().get());
  out.names = names_key(out.info);
  out.kind = key_kind(out.info.key);
  return out;
}

// Adds one certificate with its key to `ctx` (OpenSSL keeps one per key type) and checks its
// OCSP response against it.
core::Result<std::optional<OcspStaple>> load_into(SSL_CTX* ctx, const CertificateFiles& files) {
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(ctx, files.cert.c_str()) != 1) {
    return tls_error(fmt::format("cannot load the certificate chain '{}'", files.cert));
  }
  X509* leaf = SSL_CTX_get0_certificate(ctx);  // the one just loaded
  // Read and matched here rather than with SSL_CTX_check_private_key: with several key types in
  // one context, that checks whichever slot is current, not necessarily this certificate's.
  core::tls::BioPtr bio(BIO_new_file(files.key.c_str(), "r"));
  core::tls::EvpPkeyPtr key(
      bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr) : nullptr);
  if (!key) {
    return tls_error(fmt::format("cannot load the private key '{}'", files.key));
  }
  if (X509_check_private_key(leaf, key.get()) != 1) {
    ERR_clear_error();
    return core::Error::config(
        "tls_config", fmt::format("the key '{}' does not match the certificate '{}'", files.key,
                                  files.cert));
  }
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1) {
    return tls_error(fmt::format("cannot use the private key '{}'", files.key));
  }
  if (files.ocsp.empty()) return std::optional<OcspStaple>();

  STACK_OF(X509)* chain = nullptr;
  SSL_CTX_get0_chain_certs(ctx, &chain);
  X509* issuer = nullptr;
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
    if (X509_check_issued(sk_X509_value(chain, i), leaf) == X509_V_OK) {
      issuer = sk_X509_value(chain, i);
      break;
    }
  }
  if (issuer == nullptr) {
    return core::Error::config(
        "tls_config",
        fmt::format("ocsp '{}': the chain '{}' must carry the issuer of the certificate, to "
                    "check the response against",
                    files.ocsp, files.cert));
  }
  auto der = core::read_file_capped(files.ocsp, kMaxOcspBytes);
  if (!der) {
    return core::Error::config("tls_config", fmt::format("cannot read the OCSP response '{}': {}",
                                                         files.ocsp, der.error().message));
  }
  auto staple = check_ocsp_response(std::move(*der), leaf, issuer, chain);
  if (!staple) {
    return core::Error::config(
        "tls_config", fmt::format("ocsp '{}' {}", files.ocsp, staple.error().message));
  }
  return std::optional<OcspStaple>(std::move(*staple));
}

}  // namespace

core::Result<OcspStaple> check_ocsp_response(std::string der, X509* leaf, X509* issuer,
                                             STACK_OF(X509) * untrusted) {
  auto fail = [](std::string what) { return core::Error::config("ocsp", std::move(what)); };
  ERR_clear_error();
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<OCSP_RESPONSE, OcspResponseDeleter> response(
      d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(der.size())));
  if (!response || p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    ERR_clear_error();
    return fail("is not a DER OCSP response (openssl ocsp -respout writes one)");
  }
  const int status = OCSP_response_status(response.get());
  if (status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
    return fail(fmt::format("carries the responder status '{}', not 'successful'",
                            OCSP_response_status_str(status)));
  }
  std::unique_ptr<OCSP_BASICRESP, OcspBasicDeleter> basic(OCSP_response_get1_basic(response.get()));
  if (!basic) {
    ERR_clear_error();
    return fail("carries no basic OCSP response");
  }
  // Signed by the issuer itself, or by a responder certificate it issued for OCSPSigning
  // (RFC 6960 4.2.2.2). The issuer is trusted as given: its own chain is the TLS chain's concern.
  std::unique_ptr<X509_STORE, X509StoreDeleter> store(X509_STORE_new());
  if (!store || X509_STORE_add_cert(store.get(), issuer) != 1) return fail("cannot be checked");
  X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN);
  if (OCSP_basic_verify(basic.get(), untrusted, store.get(), 0) != 1) {
    std::string detail = core::tls::drain_openssl_errors();
    return fail("is not signed by the certificate's issuer or a responder it delegated to" +
                (detail.empty() ? std::string() : " (" + detail + ")"));
  }
  // Find this certificate's entry: each CertID names its own hash algorithm.
  OCSP_SINGLERESP* single = nullptr;
  for (int i = 0; i < OCSP_resp_count(basic.get()); ++i) {
    OCSP_SINGLERESP* candidate = OCSP_resp_get0(basic.get(), i);
    auto* id = const_cast<OCSP_CERTID*>(OCSP_SINGLERESP_get0_id(candidate));
    ASN1_OBJECT* hash = nullptr;
    if (OCSP_id_get0_info(nullptr, &hash, nullptr, nullptr, id) != 1) continue;
    const EVP_MD* md = EVP_get_digestbyobj(hash);
    if (md == nullptr) continue;
    std::unique_ptr<OCSP_CERTID, OcspCertIdDeleter> ours(OCSP_cert_to_id(md, leaf, issuer));
    if (ours && OCSP_id_cmp(ours.get(), id) == 0) {
      single = candidate;
      break;
    }
  }
  ERR_clear_error();
  if (single == nullptr) {
    return fail(
        "is for another certificate: none of its responses names this certificate "
        "(serial and issuer)");
  }
  int reason = 0;
  ASN1_GENERALIZEDTIME* revoked_at = nullptr;
  ASN1_GENERALIZEDTIME* this_update = nullptr;
  ASN1_GENERALIZEDTIME* next_update = nullptr;
  const int cert_status =
      OCSP_single_get0_status(single, &reason, &revoked_at, &this_update, &next_update);
  if (cert_status != V_OCSP_CERTSTATUS_GOOD) {
    return fail(
        fmt::format("says the certificate is {}, not good", OCSP_cert_status_str(cert_status)));
  }
  OcspStaple out;
  out.next_update_text = "none";
  if (auto next = core::tls::asn1_time_seconds(next_update)) {
    out.next_update = static_cast<std::time_t>(next->time_since_epoch().count());
    out.next_update_text = core::tls::iso8601(*next);
    if (out.next_update <= std::time(nullptr)) {
      return fail(fmt::format("has expired: nextUpdate {} is past", out.next_update_text));
    }
  }
  if (OCSP_check_validity(this_update, next_update, kOcspClockSkew, -1) != 1) {
    ERR_clear_error();
    return fail("is not valid yet: thisUpdate is in the future");
  }
  out.der = std::move(der);
  return out;
}

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

// Called once the certificate is chosen (SSL_get_certificate is it), only when the client sent
// status_request. A response past its nextUpdate is no longer stapled: a client may hard-fail on
// a stale staple, while no staple only makes it look elsewhere.
int TlsContexts::on_status_request(SSL* ssl, void* arg) {
  auto* self = static_cast<TlsContexts*>(arg);
  X509* leaf = SSL_get_certificate(ssl);
  if (leaf == nullptr) return SSL_TLSEXT_ERR_NOACK;
  for (const auto& e : self->entries_) {
    for (const auto& s : e.staples) {
      if (s.leaf != leaf) continue;
      if (s.response.next_update != 0 && s.response.next_update <= std::time(nullptr)) {
        return SSL_TLSEXT_ERR_NOACK;
      }
      void* copy = OPENSSL_memdup(s.response.der.data(), s.response.der.size());
      if (copy == nullptr) return SSL_TLSEXT_ERR_NOACK;
      SSL_set_tlsext_status_ocsp_resp(ssl, static_cast<unsigned char*>(copy),
                                      static_cast<long>(s.response.der.size()));
      return SSL_TLSEXT_ERR_OK;
    }
  }
  return SSL_TLSEXT_ERR_NOACK;
}

std::size_t TlsContexts::select(std::string_view host) const {
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (core::tls::match_host(entries_[i].info, host).matched) return i;
  }
  return 0;
}

core::Result<std::shared_ptr<TlsContexts>> TlsContexts::build(const EdgeConfig& config) {
  // Group by names, in config order; one certificate per key type in a group.
  std::vector<std::vector<Loaded>> groups;
  for (const auto& files : config.certificates) {
    auto loaded = read_leaf(files);
    if (!loaded) return core::Error(loaded.error()).located(where_in_config(files));
    auto group = std::find_if(groups.begin(), groups.end(),
                              [&](const auto& g) { return g.front().names == loaded->names; });
    if (group == groups.end()) {
      groups.push_back({std::move(*loaded)});
      continue;
    }
    for (const auto& other : *group) {
      if (other.kind == loaded->kind) {
        return core::Error::config(
            "tls_config",
            fmt::format("'{}' and '{}' are both {} certificates for the same names ({}): one "
                        "certificate per key type and set of names (an RSA and an ECDSA one may "
                        "share names)",
                        files.cert, other.files->cert, loaded->kind,
                        names_text(loaded->info)))
            .located(where_in_config(files));
      }
    }
    group->push_back(std::move(*loaded));
  }
  if (groups.empty()) return core::Error::config("tls_config", "no certificate");

  std::shared_ptr<TlsContexts> out(new TlsContexts());
  for (const auto& group : groups) {
    auto context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    SSL_CTX* ctx = context->native_handle();
    // The hybrid post-quantum group first, where this OpenSSL has it; decided on the first
    // context, the others follow.
    if (out->groups_.empty()) {
      auto with_pq = configure(ctx, config, kGroupsWithPq);
      if (!with_pq) return with_pq.error();
      out->groups_ = *with_pq ? kGroupsWithPq : kGroups;
      if (!*with_pq) {
        auto classical = configure(ctx, config, kGroups);
        if (!classical) return classical.error();
        if (!*classical) return tls_error("cannot set the groups");
      }
    } else {
      auto same = configure(ctx, config, out->groups_.c_str());
      if (!same) return same.error();
      if (!*same) return tls_error("cannot set the groups");
    }
    Entry e;
    std::string files_text;
    std::string ocsp_text;
    for (const auto& member : group) {
      auto staple = load_into(ctx, *member.files);
      if (!staple) return core::Error(staple.error()).located(where_in_config(*member.files));
      files_text += fmt::format("{}{} [{}]", files_text.empty() ? "" : " + ", member.files->cert,
                                member.info.key.description);
      if (*staple) {
        ocsp_text += fmt::format("; OCSP {} for the {} certificate, good, nextUpdate {}",
                                 member.files->ocsp, member.kind, (*staple)->next_update_text);
        e.staples.push_back(Staple{SSL_CTX_get0_certificate(ctx), std::move(**staple)});
      }
    }
    e.info = group.front().info;
    e.summary = fmt::format("{} (CN={}; DNS {}){}", files_text, e.info.domain, names_text(e.info),
                            ocsp_text);
    e.context = std::move(context);
    out->entries_.push_back(std::move(e));
  }
  // The SNI callback runs on the context the connection started with: the default one; the
  // status callback on the context it ended on. Both are set on every context.
  for (auto& e : out->entries_) {
    SSL_CTX* ctx = e.context->native_handle();
    SSL_CTX_set_tlsext_servername_callback(ctx, on_server_name);
    SSL_CTX_set_tlsext_servername_arg(ctx, out.get());
    SSL_CTX_set_tlsext_status_cb(ctx, on_status_request);
    SSL_CTX_set_tlsext_status_arg(ctx, out.get());
  }
  return out;
}

}  // namespace moat::edge

// Test helper: certificates built in memory with the OpenSSL API, with every field chosen, so the
// expected values of inspect() are known exactly.
#pragma once

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/tls/certificate.hpp"

namespace moat::test {

using core::tls::EvpPkeyPtr;
using core::tls::X509Ptr;

inline EvpPkeyPtr make_key(const std::string& kind) {
  EVP_PKEY* key = nullptr;
  if (kind == "rsa2048")
    key = EVP_RSA_gen(2048);
  else if (kind == "p256")
    key = EVP_EC_gen("P-256");
  else if (kind == "p384")
    key = EVP_EC_gen("P-384");
  else if (kind == "ed25519")
    key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (key == nullptr) throw std::runtime_error("keygen failed: " + kind);
  return EvpPkeyPtr(key);
}

struct CertSpec {
  std::vector<std::string> subject_cns = {"leaf.example.test"};
  std::string organization;
  std::string issuer_cn = "Test CA";
  std::vector<std::string> sans;  // "DNS:x", "IP:1.2.3.4", "email:a@b", "URI:http://x"
  std::string aia;                // "caIssuers;URI:http://a,OCSP;URI:http://o"
  std::string serial_hex = "7eb6cb4ac0117946";
  bool negative_serial = false;
  long not_before = 1704067200;  // 2024-01-01T00:00:00Z
  long not_after = 1735689600;   // 2025-01-01T00:00:00Z
  bool ca = false;
  const EVP_MD* digest = nullptr;  // default SHA-256 (none for Ed25519)
};

inline void add_ext(X509* cert, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) throw std::runtime_error("bad extension " + value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// Signed with `key` itself (the issuer name is only a name here).
inline X509Ptr make_cert(EVP_PKEY* key, const CertSpec& spec) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  BIGNUM* bn = nullptr;
  BN_hex2bn(&bn, spec.serial_hex.c_str());
  BN_set_negative(bn, spec.negative_serial ? 1 : 0);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (!spec.organization.empty()) {
    X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(spec.organization.c_str()),
                               -1, -1, 0);
  }
  for (const auto& cn : spec.subject_cns) {
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  }
  X509_NAME* issuer = X509_get_issuer_name(cert.get());
  X509_NAME_add_entry_by_txt(issuer, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(spec.issuer_cn.c_str()), -1, -1,
                             0);
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), spec.not_before);
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), spec.not_after);
  X509_set_pubkey(cert.get(), key);
  if (!spec.sans.empty()) {
    std::string joined;
    for (const auto& s : spec.sans) joined += (joined.empty() ? "" : ",") + s;
    add_ext(cert.get(), NID_subject_alt_name, joined);
  }
  if (!spec.aia.empty()) add_ext(cert.get(), NID_info_access, spec.aia);
  add_ext(cert.get(), NID_basic_constraints, spec.ca ? "critical,CA:TRUE" : "CA:FALSE");
  const EVP_MD* md = spec.digest;
  if (md == nullptr && EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519) md = EVP_sha256();
  if (X509_sign(cert.get(), key, md) <= 0) throw std::runtime_error("sign failed");
  return cert;
}

inline std::string to_pem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

inline std::string to_der(X509* cert) {
  unsigned char* buf = nullptr;
  int n = i2d_X509(cert, &buf);
  std::string out(reinterpret_cast<char*>(buf), static_cast<std::size_t>(n));
  OPENSSL_free(buf);
  return out;
}

}  // namespace moat::test

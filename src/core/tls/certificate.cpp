#include "core/tls/certificate.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include <fmt/format.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace moat::core::tls {

void X509Deleter::operator()(X509* x) const { X509_free(x); }
void EvpPkeyDeleter::operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
void BioDeleter::operator()(BIO* b) const { BIO_free_all(b); }
void SslCtxDeleter::operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
void SslDeleter::operator()(SSL* s) const { SSL_free(s); }

namespace {

template <typename T, void (*Free)(T*)>
struct Freer {
  void operator()(T* p) const { Free(p); }
};
void free_general_names(GENERAL_NAMES* n) { GENERAL_NAMES_free(n); }
void free_aia(AUTHORITY_INFO_ACCESS* a) { AUTHORITY_INFO_ACCESS_free(a); }
void free_basic_constraints(BASIC_CONSTRAINTS* b) { BASIC_CONSTRAINTS_free(b); }
void free_bignum(BIGNUM* b) { BN_free(b); }
void free_openssl_bytes(unsigned char* p) { OPENSSL_free(p); }
void free_openssl_chars(char* p) { OPENSSL_free(p); }

using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Freer<GENERAL_NAMES, free_general_names>>;
using AiaPtr = std::unique_ptr<AUTHORITY_INFO_ACCESS, Freer<AUTHORITY_INFO_ACCESS, free_aia>>;
using BasicConstraintsPtr =
    std::unique_ptr<BASIC_CONSTRAINTS, Freer<BASIC_CONSTRAINTS, free_basic_constraints>>;
using BignumPtr = std::unique_ptr<BIGNUM, Freer<BIGNUM, free_bignum>>;
using OpensslBytes = std::unique_ptr<unsigned char, Freer<unsigned char, free_openssl_bytes>>;
using OpensslChars = std::unique_ptr<char, Freer<char, free_openssl_chars>>;

constexpr std::string_view kPemBegin = "-----BEGIN ";
constexpr std::string_view kPemDashes = "-----";

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

std::string to_hex(const unsigned char* data, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0x0f]);
  }
  return out;
}

std::string to_base64(const unsigned char* data, std::size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

// An ASN1 string (any type) as UTF-8; the raw bytes if OpenSSL cannot convert it.
std::string asn1_to_utf8(const ASN1_STRING* s) {
  if (s == nullptr) return {};
  unsigned char* out = nullptr;
  int n = ASN1_STRING_to_UTF8(&out, s);
  if (n >= 0) {
    OpensslBytes owner(out);
    return std::string(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
  }
  ERR_clear_error();
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<std::size_t>(std::max(0, ASN1_STRING_length(s))));
}

std::string ia5_to_string(const ASN1_IA5STRING* s) {
  if (s == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<std::size_t>(std::max(0, ASN1_STRING_length(s))));
}

std::string bio_contents(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

DistinguishedName describe_name(const X509_NAME* name) {
  DistinguishedName out;
  if (name == nullptr) return out;
  BioPtr bio(BIO_new(BIO_s_mem()));
  // RFC 2253 order and escaping, but UTF-8 kept as is (not \XX escaped).
  if (bio && X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
    out.dn = bio_contents(bio.get());
  }
  int pos = -1;
  while ((pos = X509_NAME_get_index_by_NID(name, NID_commonName, pos)) >= 0) {
    const X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, pos);
    out.common_names.push_back(asn1_to_utf8(X509_NAME_ENTRY_get_data(entry)));
  }
  ERR_clear_error();
  return out;
}

std::string ip_to_string(const ASN1_OCTET_STRING* ip) {
  const unsigned char* data = ASN1_STRING_get0_data(ip);
  int len = ASN1_STRING_length(ip);
  char buf[INET6_ADDRSTRLEN] = {};
  if (len == 4 && inet_ntop(AF_INET, data, buf, sizeof buf) != nullptr) return buf;
  if (len == 16 && inet_ntop(AF_INET6, data, buf, sizeof buf) != nullptr) return buf;
  // Not an address (a name constraint style value, or garbage): keep it visible, not silent.
  return "invalid:" + to_hex(data, static_cast<std::size_t>(std::max(0, len)));
}

void read_alt_names(X509* cert, CertificateInfo& info) {
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    switch (gn->type) {
      case GEN_DNS: info.dns_names.push_back(ia5_to_string(gn->d.dNSName)); break;
      case GEN_IPADD: info.ip_addresses.push_back(ip_to_string(gn->d.iPAddress)); break;
      case GEN_EMAIL: info.emails.push_back(ia5_to_string(gn->d.rfc822Name)); break;
      case GEN_URI: info.uris.push_back(ia5_to_string(gn->d.uniformResourceIdentifier)); break;
      default: break;
    }
  }
}

void read_aia(X509* cert, CertificateInfo& info) {
  AiaPtr aia(static_cast<AUTHORITY_INFO_ACCESS*>(
      X509_get_ext_d2i(cert, NID_info_access, nullptr, nullptr)));
  if (!aia) return;
  for (int i = 0; i < sk_ACCESS_DESCRIPTION_num(aia.get()); ++i) {
    const ACCESS_DESCRIPTION* ad = sk_ACCESS_DESCRIPTION_value(aia.get(), i);
    if (ad->location == nullptr || ad->location->type != GEN_URI) continue;
    std::string uri = ia5_to_string(ad->location->d.uniformResourceIdentifier);
    int method = OBJ_obj2nid(ad->method);
    if (method == NID_ad_OCSP) info.ocsp.push_back(std::move(uri));
    if (method == NID_ad_ca_issuers) info.ca_issuers.push_back(std::move(uri));
  }
}

std::string read_serial(X509* cert) {
  const ASN1_INTEGER* serial = X509_get0_serialNumber(cert);
  if (serial == nullptr) return {};
  int len = ASN1_STRING_length(serial);
  // ASN1_INTEGER holds the magnitude; the sign is in the type. Same digits as `openssl x509
  // -serial` (i2a_ASN1_INTEGER), lowercase.
  std::string hex = len > 0 ? to_hex(ASN1_STRING_get0_data(serial), static_cast<std::size_t>(len))
                            : std::string("00");
  if (ASN1_STRING_type(serial) == V_ASN1_NEG_INTEGER) hex.insert(0, "-");
  return hex;
}

std::string object_text(const ASN1_OBJECT* obj, bool numeric) {
  char buf[128] = {};
  int n = OBJ_obj2txt(buf, sizeof buf, obj, numeric ? 1 : 0);
  if (n <= 0) return {};
  return std::string(buf, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof buf - 1));
}

KeyInfo read_key(X509* cert) {
  KeyInfo key;
  EVP_PKEY* pkey = X509_get0_pubkey(cert);
  if (pkey == nullptr) {
    ERR_clear_error();
    ASN1_OBJECT* alg = nullptr;
    X509_PUBKEY* pub = X509_get_X509_PUBKEY(cert);
    if (pub != nullptr) X509_PUBKEY_get0_param(&alg, nullptr, nullptr, nullptr, pub);
    key.type = alg != nullptr ? object_text(alg, false) : "unknown";
    key.description = key.type + " (key not decodable)";
    return key;
  }
  key.bits = EVP_PKEY_get_bits(pkey);
  switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS: {
      key.type = EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA ? "RSA" : "RSA-PSS";
      BIGNUM* e = nullptr;
      std::string e_text = "?";
      if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) == 1) {
        BignumPtr owner(e);
        OpensslChars dec(BN_bn2dec(e));
        if (dec) e_text = dec.get();
        if (BN_num_bits(e) <= 64) {
          unsigned char bytes[8] = {};
          if (BN_bn2binpad(e, bytes, sizeof bytes) == sizeof bytes) {
            std::uint64_t v = 0;
            for (unsigned char b : bytes) v = (v << 8) | b;
            key.exponent = v;
          }
        }
      }
      key.description = fmt::format("{} {} bits (e {})", key.type, key.bits, e_text);
      break;
    }
    case EVP_PKEY_EC: {
      key.type = "EC";
      char group[80] = {};
      std::size_t len = 0;
      if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                         &len) == 1) {
        int nid = OBJ_sn2nid(group);
        if (nid == NID_undef) nid = OBJ_ln2nid(group);
        const char* nist = nid != NID_undef ? EC_curve_nid2nist(nid) : nullptr;
        key.curve = nist != nullptr ? nist : group;
        key.description = "EC " + key.curve;
      } else {
        key.description = fmt::format("EC {} bits (explicit curve parameters)", key.bits);
      }
      break;
    }
    case EVP_PKEY_ED25519: key.type = key.description = "Ed25519"; break;
    case EVP_PKEY_ED448: key.type = key.description = "Ed448"; break;
    case EVP_PKEY_DSA:
      key.type = "DSA";
      key.description = fmt::format("DSA {} bits", key.bits);
      break;
    default: {
      const char* name = OBJ_nid2sn(EVP_PKEY_get_base_id(pkey));
      key.type = name != nullptr ? name : "unknown";
      key.description = fmt::format("{} {} bits", key.type, key.bits);
      break;
    }
  }
  ERR_clear_error();
  return key;
}

SignatureAlgorithm read_signature(X509* cert) {
  SignatureAlgorithm sig;
  const X509_ALGOR* alg = nullptr;
  X509_get0_signature(nullptr, &alg, cert);
  if (alg != nullptr) {
    const ASN1_OBJECT* obj = nullptr;
    X509_ALGOR_get0(&obj, nullptr, nullptr, alg);
    if (obj != nullptr) {
      sig.openssl = object_text(obj, false);
      sig.oid = object_text(obj, true);
    }
  }
  int nid = X509_get_signature_nid(cert);
  int md = NID_undef;
  int pk = NID_undef;
  if (nid == NID_rsassaPss) {
    sig.name = "RSASSA-PSS";
  } else if (nid == NID_ED25519) {
    sig.name = "Ed25519";
  } else if (nid == NID_ED448) {
    sig.name = "Ed448";
  } else if (nid != NID_undef && OBJ_find_sigid_algs(nid, &md, &pk) == 1 && md != NID_undef) {
    const char* pk_name = nullptr;
    if (pk == NID_rsaEncryption) pk_name = "RSA";
    if (pk == NID_X9_62_id_ecPublicKey) pk_name = "ECDSA";
    if (pk == NID_dsa) pk_name = "DSA";
    const char* md_name = OBJ_nid2sn(md);
    if (pk_name != nullptr && md_name != nullptr)
      sig.name = fmt::format("{}with{}", md_name, pk_name);
  }
  if (sig.name.empty()) sig.name = sig.openssl;
  return sig;
}

// Seconds, not system_clock's nanoseconds (see asn1_time_seconds).
using Seconds = std::chrono::sys_seconds;


std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

std::string_view strip_trailing_dot(std::string_view s) {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  return s;
}

// Reads a DER TLV header at `pos`; returns the total element size, or 0 with `truncated` set
// when the header or the declared content runs past the end.
std::size_t der_element_size(std::string_view bytes, std::size_t pos, bool& truncated) {
  truncated = false;
  std::size_t avail = bytes.size() - pos;
  if (avail < 2) {
    truncated = true;
    return 0;
  }
  auto b = static_cast<unsigned char>(bytes[pos + 1]);
  std::size_t header = 2;
  std::size_t length = 0;
  if (b < 0x80) {
    length = b;
  } else {
    std::size_t n = b & 0x7f;
    if (n == 0 || n > 4) return 0;  // indefinite or absurd: not DER for a certificate
    if (avail < 2 + n) {
      truncated = true;
      return 0;
    }
    for (std::size_t i = 0; i < n; ++i) {
      length = (length << 8) | static_cast<unsigned char>(bytes[pos + 2 + i]);
    }
    header += n;
  }
  if (length > avail - header) {
    truncated = true;
    return header + length;
  }
  return header + length;
}

Result<std::vector<X509Ptr>> parse_der(std::string_view bytes) {
  std::vector<X509Ptr> certs;
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    if (static_cast<unsigned char>(bytes[pos]) != 0x30) {
      return Error::input("der_trailing_data",
                          fmt::format("{} bytes of trailing data after the DER certificate "
                                      "ending at byte {}",
                                      bytes.size() - pos, pos))
          .at(pos);
    }
    if (certs.size() >= kMaxCertificates) {
      return Error::input("too_many_certificates",
                          fmt::format("more than {} certificates", kMaxCertificates));
    }
    bool truncated = false;
    std::size_t size = der_element_size(bytes, pos, truncated);
    if (truncated) {
      return Error::input("der_truncated",
                          size == 0 ? fmt::format("DER certificate at byte {} is truncated "
                                                  "(incomplete header)",
                                                  pos)
                                    : fmt::format("DER certificate at byte {} is truncated: it "
                                                  "declares {} bytes, only {} remain",
                                                  pos, size, bytes.size() - pos))
          .at(pos);
    }
    if (size == 0) {
      return Error::input("der_invalid",
                          fmt::format("DER certificate at byte {}: invalid length encoding", pos))
          .at(pos);
    }
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + pos);
    const unsigned char* start = p;
    X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(size)));
    if (!cert || static_cast<std::size_t>(p - start) != size) {
      std::string why = drain_openssl_errors();
      return Error::input("der_invalid",
                          fmt::format("DER certificate at byte {} does not decode{}{}", pos,
                                      why.empty() ? "" : ": ", why))
          .at(pos);
    }
    certs.push_back(std::move(cert));
    pos += size;
  }
  return certs;
}

bool is_certificate_label(std::string_view label) {
  return label == "CERTIFICATE" || label == "X509 CERTIFICATE" || label == "TRUSTED CERTIFICATE";
}

Result<std::vector<X509Ptr>> parse_pem(std::string_view bytes) {
  std::vector<X509Ptr> certs;
  std::vector<std::string> other_labels;
  std::size_t pos = 0;
  while ((pos = bytes.find(kPemBegin, pos)) != std::string_view::npos) {
    std::size_t label_start = pos + kPemBegin.size();
    std::size_t line_end = bytes.find('\n', label_start);
    std::size_t label_end = bytes.find(kPemDashes, label_start);
    if (label_end == std::string_view::npos ||
        (line_end != std::string_view::npos && label_end > line_end)) {
      return Error::input("pem_truncated",
                          fmt::format("PEM BEGIN line at byte {} is incomplete", pos))
          .at(pos);
    }
    std::string label(bytes.substr(label_start, label_end - label_start));
    std::string end_marker = "-----END " + label + "-----";
    std::size_t end = bytes.find(end_marker, label_end);
    std::size_t next_begin = bytes.find(kPemBegin, label_end);
    if (end == std::string_view::npos ||
        (next_begin != std::string_view::npos && next_begin < end)) {
      return Error::input("pem_truncated",
                          fmt::format("PEM {} block at byte {} has no '{}' line (truncated?)",
                                      label, pos, end_marker))
          .at(pos);
    }
    std::size_t block_end = end + end_marker.size();
    if (!is_certificate_label(label)) {
      if (std::find(other_labels.begin(), other_labels.end(), label) == other_labels.end()) {
        other_labels.push_back(label);
      }
      pos = block_end;
      continue;
    }
    if (certs.size() >= kMaxCertificates) {
      return Error::input("too_many_certificates",
                          fmt::format("more than {} certificates", kMaxCertificates));
    }
    std::string_view block = bytes.substr(pos, block_end - pos);
    BioPtr bio(BIO_new_mem_buf(block.data(), static_cast<int>(block.size())));
    X509Ptr cert(bio ? PEM_read_bio_X509_AUX(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!cert) {
      std::string why = drain_openssl_errors();
      return Error::input("pem_invalid",
                          fmt::format("PEM certificate {} (block at byte {}) does not decode{}{}",
                                      certs.size() + 1, pos, why.empty() ? "" : ": ", why))
          .at(pos);
    }
    certs.push_back(std::move(cert));
    pos = block_end;
  }
  if (certs.empty()) {
    std::string found;
    for (const auto& l : other_labels) found += (found.empty() ? "" : ", ") + l;
    Error e = Error::input("no_certificate",
                           fmt::format("no certificate in the PEM input (it holds: {})", found));
    if (std::find(other_labels.begin(), other_labels.end(), "PKCS7") != other_labels.end()) {
      return std::move(e).with_hint(
          "extract the certificates: openssl pkcs7 -print_certs -in FILE");
    }
    return e;
  }
  return certs;
}

}  // namespace

std::string drain_openssl_errors() {
  std::string out;
  unsigned long code = 0;
  while ((code = ERR_get_error()) != 0) {
    const char* lib = ERR_lib_error_string(code);
    const char* reason = ERR_reason_error_string(code);
    std::string one = reason != nullptr ? reason : fmt::format("error {:#x}", code);
    if (lib != nullptr) one = std::string(lib) + ": " + one;
    if (out.find(one) != std::string::npos) continue;  // OpenSSL often repeats itself
    if (!out.empty()) out += "; ";
    out += one;
  }
  return out;
}

Result<std::vector<X509Ptr>> parse_certificates(std::string_view bytes) {
  ERR_clear_error();
  bool blank = std::all_of(bytes.begin(), bytes.end(),
                           [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
  if (blank) return Error::input("empty", "the input is empty");
  // Certificates are longer than 127 bytes, so DER starts with SEQUENCE and a long-form length.
  bool der = bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x30 &&
             (static_cast<unsigned char>(bytes[1]) & 0x80) != 0;
  if (der) return parse_der(bytes);
  if (bytes.find(kPemBegin) != std::string_view::npos) return parse_pem(bytes);
  if (static_cast<unsigned char>(bytes[0]) == 0x30) return parse_der(bytes);
  return Error::input("no_certificate",
                      "not a certificate: neither PEM (no '-----BEGIN CERTIFICATE-----' line) "
                      "nor DER");
}

const char* to_string(ValidityStatus status) {
  switch (status) {
    case ValidityStatus::kValid: return "valid";
    case ValidityStatus::kExpired: return "expired";
    case ValidityStatus::kNotYetValid: return "not_yet_valid";
  }
  return "valid";
}

std::string sha256_fingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) {
    ERR_clear_error();
    return {};
  }
  return to_hex(md, len);
}

namespace {
bool spki_sha256(X509* cert, unsigned char out[32]) {
  X509_PUBKEY* pub = X509_get_X509_PUBKEY(cert);
  unsigned char* der = nullptr;
  int len = pub != nullptr ? i2d_X509_PUBKEY(pub, &der) : -1;
  if (len <= 0) {
    ERR_clear_error();
    return false;
  }
  OpensslBytes owner(der);
  unsigned int md_len = 0;
  return EVP_Digest(der, static_cast<std::size_t>(len), out, &md_len, EVP_sha256(), nullptr) == 1;
}
}  // namespace

std::string spki_pin(X509* cert) {
  unsigned char md[32];
  if (!spki_sha256(cert, md)) return {};
  return to_base64(md, sizeof md);
}

CertificateInfo inspect(X509* cert) { return inspect(cert, std::chrono::system_clock::now()); }

CertificateInfo inspect(X509* cert, std::chrono::system_clock::time_point now) {
  CertificateInfo info;
  info.fingerprint_sha256 = sha256_fingerprint(cert);
  if (spki_sha256(cert, info.pin_raw.data())) {
    info.pin_sha256 = to_base64(info.pin_raw.data(), info.pin_raw.size());
  }
  info.subject = describe_name(X509_get_subject_name(cert));
  info.issuer = describe_name(X509_get_issuer_name(cert));
  read_alt_names(cert, info);
  read_aia(cert, info);
  info.serial = read_serial(cert);
  info.key = read_key(cert);
  info.signature = read_signature(cert);
  if (!info.subject.common_names.empty()) {
    info.domain = info.subject.common_names.back();
  } else if (!info.dns_names.empty()) {
    info.domain = info.dns_names.front();
  }

  auto not_before = asn1_time_seconds(X509_get0_notBefore(cert));
  auto not_after = asn1_time_seconds(X509_get0_notAfter(cert));
  Seconds now_s = std::chrono::floor<std::chrono::seconds>(now);
  if (not_before) info.not_before = iso8601(*not_before);
  if (not_after) {
    info.not_after = iso8601(*not_after);
    info.days_left = floor_div((*not_after - now_s).count(), 86400);
  }
  if (not_after && now_s > *not_after) {
    info.status = ValidityStatus::kExpired;
  } else if (not_before && now_s < *not_before) {
    info.status = ValidityStatus::kNotYetValid;
  } else if (!not_before || !not_after) {
    info.status = ValidityStatus::kExpired;  // undecodable dates: never call it valid
  }

  info.version = static_cast<int>(X509_get_version(cert)) + 1;
  BasicConstraintsPtr bc(static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(cert, NID_basic_constraints, nullptr, nullptr)));
  info.is_ca = bc && bc->ca != 0;
  info.self_signed = X509_self_signed(cert, 0) == 1;
  ERR_clear_error();
  return info;
}

bool match_dns_name(std::string_view pattern, std::string_view host) {
  pattern = strip_trailing_dot(pattern);
  host = strip_trailing_dot(host);
  if (pattern.empty() || host.empty()) return false;
  if (host.find('*') != std::string_view::npos) return false;
  if (pattern.size() > 2 && pattern.substr(0, 2) == "*.") {
    std::string_view parent = pattern.substr(2);
    // "*.com" style patterns and further wildcards are refused (RFC 6125 6.4.3, CA/B).
    if (parent.find('.') == std::string_view::npos || parent.find('*') != std::string_view::npos ||
        parent.front() == '.') {
      return false;
    }
    std::size_t dot = host.find('.');
    if (dot == std::string_view::npos || dot == 0) return false;
    return iequals(host.substr(dot + 1), parent);
  }
  if (pattern.find('*') != std::string_view::npos) return false;  // partial-label wildcards
  return iequals(pattern, host);
}

NameMatch match_host(const CertificateInfo& info, std::string_view host) {
  NameMatch result;
  std::string bare(host);
  if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']')
    bare = bare.substr(1, bare.size() - 2);
  unsigned char addr[16];
  int family = 0;
  if (inet_pton(AF_INET, bare.c_str(), addr) == 1)
    family = AF_INET;
  else if (inet_pton(AF_INET6, bare.c_str(), addr) == 1)
    family = AF_INET6;
  if (family != 0) {
    char canonical[INET6_ADDRSTRLEN] = {};
    inet_ntop(family, addr, canonical, sizeof canonical);
    for (const auto& ip : info.ip_addresses) {
      if (ip == canonical) {
        result.matched = true;
        result.by = ip;
        return result;
      }
    }
    return result;
  }
  const auto& names = info.dns_names.empty() ? info.subject.common_names : info.dns_names;
  for (const auto& name : names) {
    if (match_dns_name(name, host)) {
      result.matched = true;
      result.by = name;
      result.via_common_name = info.dns_names.empty();
      return result;
    }
  }
  return result;
}

std::string iso8601(std::chrono::sys_seconds tp) {
  using namespace std::chrono;
  auto day_point = floor<days>(tp);
  year_month_day ymd{day_point};
  hh_mm_ss hms{tp - day_point};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     hms.hours().count(), hms.minutes().count(), hms.seconds().count());
}

std::optional<std::chrono::sys_seconds> asn1_time_seconds(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    ERR_clear_error();
    return std::nullopt;
  }
  using namespace std::chrono;
  year_month_day ymd{year{tm.tm_year + 1900}, month{static_cast<unsigned>(tm.tm_mon + 1)},
                     day{static_cast<unsigned>(tm.tm_mday)}};
  if (!ymd.ok()) return std::nullopt;
  return sys_seconds{sys_days{ymd}} + hours{tm.tm_hour} + minutes{tm.tm_min} + seconds{tm.tm_sec};
}

}  // namespace moat::core::tls

#include "core/tls/client_hello_builder.hpp"

#include <algorithm>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/tls/certificate.hpp"
#include "core/tls/server_hello.hpp"

namespace moat::core::tls {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::uint8_t kHandshakeTypeClientHello = 1;

void put8(Bytes& out, std::size_t v) { out.push_back(static_cast<std::uint8_t>(v)); }
void put16(Bytes& out, std::size_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}
void put24(Bytes& out, std::size_t v) {
  put8(out, v >> 16);
  put16(out, v & 0xffff);
}
void append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }

// Each extension: type, then its data as an opaque<0..2^16-1> (RFC 8446 4.2).
void put_extension(Bytes& out, std::uint16_t type, const Bytes& data) {
  put16(out, type);
  put16(out, data.size());
  append(out, data);
}

Bytes u16_vector(const std::vector<std::uint16_t>& values) {
  Bytes out;
  put16(out, values.size() * 2);
  for (auto v : values) put16(out, v);
  return out;
}

Bytes random_bytes(std::size_t n) {
  Bytes out(n);
  // A hello's random only has to be unpredictable enough not to collide; a failure of the DRBG
  // still leaves a usable (zero) value, and the handshake is never completed.
  if (RAND_bytes(out.data(), static_cast<int>(n)) != 1) (void)drain_openssl_errors();
  return out;
}

bool valid_server_name(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    auto b = static_cast<unsigned char>(c);
    if (b <= 0x20 || b >= 0x7f) return false;
  }
  return true;
}

const char* key_share_algorithm(std::uint16_t group, const char** curve) {
  *curve = nullptr;
  switch (group) {
    case kGroupX25519:
      return "X25519";
    case kGroupX448:
      return "X448";
    case kGroupSecp256r1:
      *curve = "P-256";
      return "EC";
    case kGroupSecp384r1:
      *curve = "P-384";
      return "EC";
    case kGroupSecp521r1:
      *curve = "P-521";
      return "EC";
    default:
      return nullptr;
  }
}

}  // namespace

Result<KeyShare> make_key_share(std::uint16_t group) {
  const char* curve = nullptr;
  const char* algorithm = key_share_algorithm(group, &curve);
  if (algorithm == nullptr) {
    return Error::input("key_share_group", "no key share can be made for this group");
  }
  EvpPkeyPtr key(curve != nullptr ? EVP_PKEY_Q_keygen(nullptr, nullptr, algorithm, curve)
                                  : EVP_PKEY_Q_keygen(nullptr, nullptr, algorithm));
  if (!key) return Error::internal("key_share_failed", "keygen: " + drain_openssl_errors());
  KeyShare share;
  share.group = group;
  // X25519/X448: the raw public key (RFC 7748); NIST curves: the uncompressed point
  // (RFC 8446 4.2.8.2), which is what OpenSSL's encoded public key is.
  std::size_t length = 0;
  if (EVP_PKEY_get_octet_string_param(key.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0,
                                      &length) != 1 ||
      length == 0 || length > 256) {
    return Error::internal("key_share_failed", "public key: " + drain_openssl_errors());
  }
  share.public_key.resize(length);
  if (EVP_PKEY_get_octet_string_param(key.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
                                      share.public_key.data(), length, &length) != 1) {
    return Error::internal("key_share_failed", "public key: " + drain_openssl_errors());
  }
  share.public_key.resize(length);
  return share;
}

const std::vector<std::uint16_t>& default_signature_algorithms() {
  static const std::vector<std::uint16_t> kSchemes = {
      0x0403, 0x0503, 0x0603,          // ecdsa_secp256r1_sha256 .. secp521r1_sha512
      0x0807, 0x0808,                  // ed25519, ed448
      0x0804, 0x0805, 0x0806,          // rsa_pss_rsae_sha256 .. sha512
      0x0809, 0x080a, 0x080b,          // rsa_pss_pss_sha256 .. sha512
      0x0401, 0x0501, 0x0601,          // rsa_pkcs1_sha256 .. sha512
      0x0303, 0x0301, 0x0302,          // sha224 ecdsa / rsa / dsa (TLS 1.2 legacy pairs)
      0x0203, 0x0201, 0x0202,          // ecdsa_sha1, rsa_pkcs1_sha1, dsa_sha1
      0x0402, 0x0502, 0x0602,          // dsa with sha256 .. sha512
  };
  return kSchemes;
}

Result<std::vector<std::uint8_t>> build_client_hello(const ClientHelloSpec& spec) {
  if (spec.version < kSsl30 || spec.version > kTls13) {
    return Error::input("version_invalid", "version must be SSL 3.0 .. TLS 1.3");
  }
  bool tls13 = spec.version == kTls13;
  if (tls13 && (spec.min_version < kSsl30 || spec.min_version > kTls13)) {
    return Error::input("version_invalid", "min_version must be SSL 3.0 .. TLS 1.3");
  }
  if (spec.cipher_suites.empty()) return Error::input("no_cipher_suites", "no cipher suite");
  if (!spec.server_name.empty() && !valid_server_name(spec.server_name)) {
    return Error::input("server_name_invalid", "server name must be 1..253 printable characters");
  }

  std::vector<std::uint16_t> suites = spec.cipher_suites;
  if (spec.renegotiation_scsv) suites.push_back(kSuiteEmptyRenegotiationInfoScsv);
  if (spec.fallback_scsv) suites.push_back(kSuiteFallbackScsv);
  if (suites.size() > 0x7fff) return Error::input("list_too_long", "too many cipher suites");

  Bytes body;
  put16(body, tls13 ? kTls12 : spec.version);
  append(body, random_bytes(32));
  // TLS 1.3 middlebox compatibility mode (RFC 8446 D.4): a non-empty legacy_session_id.
  Bytes session_id = tls13 ? random_bytes(32) : Bytes{};
  put8(body, session_id.size());
  append(body, session_id);
  append(body, u16_vector(suites));
  if (spec.deflate) {
    put8(body, 2);
    put8(body, kCompressionDeflate);
  } else {
    put8(body, 1);
  }
  put8(body, kCompressionNull);

  if (spec.extensions) {
    bool tls12_up = spec.version >= kTls12;
    Bytes ext;
    if (!spec.server_name.empty()) {
      Bytes list;
      put8(list, 0);  // host_name
      put16(list, spec.server_name.size());
      list.insert(list.end(), spec.server_name.begin(), spec.server_name.end());
      Bytes data;
      put16(data, list.size());
      append(data, list);
      put_extension(ext, kExtServerName, data);
    }
    if (spec.renegotiation_info) put_extension(ext, kExtRenegotiationInfo, Bytes{0});
    if (spec.extended_master_secret) put_extension(ext, kExtExtendedMasterSecret, {});
    if (spec.session_ticket) put_extension(ext, kExtSessionTicket, {});
    if (spec.heartbeat) put_extension(ext, kExtHeartbeat, Bytes{1});  // peer_allowed_to_send
    if (!spec.supported_groups.empty()) {
      put_extension(ext, kExtSupportedGroups, u16_vector(spec.supported_groups));
      if (spec.ec_point_formats) put_extension(ext, kExtEcPointFormats, Bytes{1, 0});
    }
    if (tls12_up) {
      const auto& schemes = spec.signature_algorithms.empty() ? default_signature_algorithms()
                                                              : spec.signature_algorithms;
      put_extension(ext, kExtSignatureAlgorithms, u16_vector(schemes));
    }
    if (!spec.alpn.empty()) {
      Bytes list;
      for (const auto& name : spec.alpn) {
        if (name.empty() || name.size() > 255) {
          return Error::input("list_too_long", "ALPN names must be 1..255 bytes");
        }
        put8(list, name.size());
        list.insert(list.end(), name.begin(), name.end());
      }
      Bytes data;
      put16(data, list.size());
      append(data, list);
      put_extension(ext, kExtAlpn, data);
    }
    if (tls13) {
      Bytes versions;
      for (std::uint16_t v = kTls13; v >= spec.min_version && v >= kSsl30; --v) put16(versions, v);
      Bytes data;
      put8(data, versions.size());
      append(data, versions);
      put_extension(ext, kExtSupportedVersions, data);
      // psk_dhe_ke only: servers may refuse a 1.3 hello without this (RFC 8446 4.2.9).
      put_extension(ext, kExtPskKeyExchangeModes, Bytes{1, 1});
      Bytes shares;
      for (const auto& share : spec.key_shares) {
        put16(shares, share.group);
        put16(shares, share.public_key.size());
        append(shares, share.public_key);
      }
      Bytes share_data;
      put16(share_data, shares.size());
      append(share_data, shares);
      put_extension(ext, kExtKeyShare, share_data);
    }
    if (ext.size() > 0xffff) return Error::input("list_too_long", "extensions too long");
    put16(body, ext.size());
    append(body, ext);
  }
  if (body.size() > 0xffffff - kHandshakeHeaderBytes) {
    return Error::input("list_too_long", "hello too long");
  }

  Bytes message;
  put8(message, kHandshakeTypeClientHello);
  put24(message, body.size());
  append(message, body);

  std::uint16_t record_version = spec.version == kSsl30 ? kSsl30 : kTls10;
  Bytes out;
  for (std::size_t at = 0; at < message.size(); at += kMaxPlaintextRecord) {
    std::size_t n = std::min(kMaxPlaintextRecord, message.size() - at);
    put8(out, kContentTypeHandshake);
    put16(out, record_version);
    put16(out, n);
    out.insert(out.end(), message.begin() + static_cast<std::ptrdiff_t>(at),
               message.begin() + static_cast<std::ptrdiff_t>(at + n));
  }
  return out;
}

}  // namespace moat::core::tls

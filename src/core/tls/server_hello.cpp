#include "core/tls/server_hello.hpp"
#include "core/tls/wire_cursor.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

namespace moat::core::tls {

const std::uint8_t kHelloRetryRequestRandom[32] = {
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c};

namespace {

// RFC 8446 4.1.3: the last 8 bytes of a downgrading TLS 1.3 server's random ("DOWNGRD" + 1/0).
constexpr std::uint8_t kDowngradePrefix[7] = {0x44, 0x4f, 0x57, 0x4e, 0x47, 0x52, 0x44};

constexpr std::uint8_t kAlertWarning = 1;
constexpr std::uint8_t kAlertFatal = 2;
constexpr std::uint8_t kAlertUnrecognizedName = 112;

using wire::Cursor;
using wire::Failure;


bool has_duplicates(std::vector<std::uint16_t> values) {
  std::sort(values.begin(), values.end());
  return std::adjacent_find(values.begin(), values.end()) != values.end();
}

// Extensions that RFC 8446 4.2 places in other messages than a TLS 1.3 ServerHello (ClientHello
// only, EncryptedExtensions, Certificate...) or that TLS 1.3 removed. "If an implementation
// receives an extension which it recognizes and which is not specified for the message in which
// it appears, it MUST abort the handshake with an illegal_parameter alert."
bool misplaced_in_tls13_server_hello(std::uint16_t type, bool hello_retry_request) {
  switch (type) {
    case kExtPreSharedKey: return hello_retry_request;  // ServerHello only
    case kExtCookie: return !hello_retry_request;       // HelloRetryRequest only
    case kExtServerName:
    case 1:  // max_fragment_length
    case 5:  // status_request
    case kExtSupportedGroups:
    case 11:  // ec_point_formats
    case kExtSignatureAlgorithms:
    case 14:  // use_srtp
    case 15:  // heartbeat
    case kExtAlpn:
    case 18:  // signed_certificate_timestamp
    case 19:  // client_certificate_type
    case 20:  // server_certificate_type
    case 21:  // padding
    case 22:  // encrypt_then_mac
    case kExtExtendedMasterSecret:
    case 35:  // session_ticket
    case 42:  // early_data
    case 45:  // psk_key_exchange_modes
    case 47:  // certificate_authorities
    case 48:  // oid_filters
    case 49:  // post_handshake_auth
    case 50:  // signature_algorithms_cert
    case kExtRenegotiationInfo: return true;
    default: return false;
  }
}

// TLS 1.3 extensions a TLS <= 1.2 ServerHello cannot carry (supported_versions is checked apart).
bool misplaced_in_tls12_server_hello(std::uint16_t type) {
  switch (type) {
    case kExtPreSharedKey:
    case 42:  // early_data
    case kExtCookie:
    case 45:  // psk_key_exchange_modes
    case 47:  // certificate_authorities
    case 48:  // oid_filters
    case 49:  // post_handshake_auth
    case 50:  // signature_algorithms_cert
    case kExtKeyShare: return true;
    default: return false;
  }
}

std::optional<Failure> parse_server_extension(std::uint16_t type,
                                              std::span<const std::uint8_t> data, std::size_t base,
                                              ServerHello& out) {
  Cursor c(data, base);
  switch (type) {
    case kExtKeyShare: {
      const Failure bad{"bad_key_share", "malformed key_share extension", Alert::kDecodeError,
                        base};
      std::uint16_t group = 0;
      if (out.is_hello_retry_request) {
        // RFC 8446 4.2.8: struct { NamedGroup selected_group; } KeyShareHelloRetryRequest.
        if (!c.u16(group) || !c.empty()) return bad;
      } else {
        // KeyShareServerHello: KeyShareEntry server_share (group, opaque key_exchange<1..2^16-1>).
        std::span<const std::uint8_t> key;
        if (!c.u16(group) || !c.vec16(key) || key.empty() || !c.empty()) return bad;
      }
      out.key_share_group = group;
      return std::nullopt;
    }
    case kExtPreSharedKey: {
      // RFC 8446 4.2.11: uint16 selected_identity.
      std::uint16_t identity = 0;
      if (!c.u16(identity) || !c.empty()) {
        return Failure{"bad_pre_shared_key", "malformed pre_shared_key extension",
                       Alert::kDecodeError, base};
      }
      out.pre_shared_key = identity;
      return std::nullopt;
    }
    case kExtCookie: {
      // RFC 8446 4.2.2: opaque cookie<1..2^16-1>.
      std::span<const std::uint8_t> cookie;
      if (!c.vec16(cookie) || cookie.empty() || !c.empty()) {
        return Failure{"bad_cookie", "malformed cookie extension", Alert::kDecodeError, base};
      }
      out.cookie = true;
      return std::nullopt;
    }
    case kExtAlpn: {
      // RFC 7301 3.1: the server's ProtocolNameList "MUST contain exactly one ProtocolName".
      const Failure bad{"bad_alpn", "ALPN extension does not hold exactly one protocol name",
                        Alert::kDecodeError, base};
      std::span<const std::uint8_t> list;
      if (!c.vec16(list) || !c.empty()) return bad;
      Cursor names(list, base + 2);
      std::span<const std::uint8_t> name;
      if (!names.vec8(name) || name.empty() || !names.empty()) return bad;
      out.alpn = std::string_view(reinterpret_cast<const char*>(name.data()), name.size());
      return std::nullopt;
    }
    case kExtRenegotiationInfo: {
      // RFC 5746 3.6: on the initial handshake the server sends an empty renegotiated_connection.
      std::span<const std::uint8_t> renegotiated;
      if (!c.vec8(renegotiated) || !c.empty() || !renegotiated.empty()) {
        return Failure{"bad_renegotiation_info",
                       "renegotiation_info is not empty on an initial handshake",
                       Alert::kHandshakeFailure, base};
      }
      out.renegotiation_info = true;
      return std::nullopt;
    }
    case kExtExtendedMasterSecret:
      // RFC 7627 5.1: extension_data is empty.
      if (!data.empty()) {
        return Failure{"bad_extended_master_secret", "extended_master_secret is not empty",
                       Alert::kDecodeError, base};
      }
      out.extended_master_secret = true;
      return std::nullopt;
    case kExtServerName:
      // RFC 6066 3: a server's server_name "extension_data" field SHALL be empty.
      if (!data.empty()) {
        return Failure{"bad_server_name", "server's server_name extension is not empty",
                       Alert::kDecodeError, base};
      }
      return std::nullopt;
    default: return std::nullopt;  // carried, not interpreted
  }
}

// RFC 8446 4.1.3 / RFC 5246 7.4.1.3. `message` is the whole handshake message; offsets in
// failures are into it.
std::optional<Failure> parse_server_hello(std::span<const std::uint8_t> message, ServerHello& out) {
  out = ServerHello{};
  Cursor c(message.subspan(kHandshakeHeaderBytes), kHandshakeHeaderBytes);
  auto truncated = [&c] {
    return Failure{"server_hello_truncated", "ServerHello ends early", Alert::kDecodeError,
                   c.offset()};
  };

  const std::size_t version_at = c.offset();
  if (!c.u16(out.legacy_version)) return truncated();
  // A server never puts 0x0304 here: TLS 1.3 is selected by supported_versions (RFC 8446 4.1.3).
  if ((out.legacy_version >> 8) != 0x03 || out.legacy_version > kTls12) {
    return Failure{"bad_legacy_version", "ServerHello legacy_version outside 0x0300..0x0303",
                   Alert::kProtocolVersion, version_at};
  }
  if (!c.bytes(32, out.random)) return truncated();
  out.is_hello_retry_request =
      std::equal(out.random.begin(), out.random.end(), std::begin(kHelloRetryRequestRandom));

  const std::size_t session_at = c.offset();
  if (!c.vec8(out.session_id)) return truncated();
  if (out.session_id.size() > 32) {
    return Failure{"bad_session_id", "legacy_session_id longer than 32 bytes",
                   Alert::kIllegalParameter, session_at};
  }
  const std::size_t suite_at = c.offset();
  if (!c.u16(out.cipher_suite)) return truncated();
  const std::size_t compression_at = c.offset();
  if (!c.u8(out.compression)) return truncated();

  // RFC 5246 7.4.1.3: the extensions block may be absent (TLS <= 1.2 only, checked below).
  std::span<const std::uint8_t> extensions;
  const std::size_t extensions_at = c.offset();
  if (!c.empty() && (!c.vec16(extensions) || !c.empty())) {
    return Failure{"bad_extensions", "extensions length does not match the message",
                   Alert::kDecodeError, extensions_at};
  }

  // First pass: structure and duplicates (RFC 8446 4.2, RFC 5246 7.4.1.4: no type twice), and
  // supported_versions, which decides how the rest is read.
  std::size_t versions_at = 0;
  Cursor walk(extensions, extensions_at + 2);
  while (!walk.empty()) {
    const std::size_t at = walk.offset();
    std::uint16_t type = 0;
    std::span<const std::uint8_t> data;
    if (!walk.u16(type) || !walk.vec16(data)) {
      return Failure{"bad_extensions", "extension runs past the extensions block",
                     Alert::kDecodeError, at};
    }
    out.extension_types.push_back(type);
    if (type == kExtSupportedVersions) {
      // RFC 8446 4.2.1: struct { ProtocolVersion selected_version; } in ServerHello and HRR.
      std::uint16_t selected = 0;
      Cursor v(data, at + 4);
      if (!v.u16(selected) || !v.empty()) {
        return Failure{"bad_supported_versions", "malformed supported_versions extension",
                       Alert::kDecodeError, at + 4};
      }
      out.selected_version = selected;
      versions_at = at + 4;
    }
  }
  if (has_duplicates(out.extension_types)) {
    return Failure{"duplicate_extension", "an extension type appears twice",
                   Alert::kIllegalParameter, extensions_at};
  }

  const bool tls13 = out.selected_version.has_value();
  if (tls13) {
    // RFC 8446 4.2.1: a version prior to 1.3 here MUST be refused; drafts are not TLS 1.3.
    if (*out.selected_version != kTls13) {
      return Failure{"bad_selected_version", "supported_versions selects a version other than 1.3",
                     Alert::kIllegalParameter, versions_at};
    }
    // RFC 8446 4.1.3: legacy_version MUST be 0x0303 when TLS 1.3 is negotiated.
    if (out.legacy_version != kTls12) {
      return Failure{"bad_legacy_version", "TLS 1.3 ServerHello without legacy_version 0x0303",
                     Alert::kProtocolVersion, version_at};
    }
  } else if (out.is_hello_retry_request) {
    // RFC 8446 4.1.4: a HelloRetryRequest MUST contain supported_versions.
    return Failure{"hrr_without_supported_versions", "HelloRetryRequest without supported_versions",
                   Alert::kIllegalParameter, extensions_at};
  }

  // Values that cannot be negotiated: TLS_NULL_WITH_NULL_NULL (RFC 5246 A.5), the
  // EMPTY_RENEGOTIATION_INFO (RFC 5746) and FALLBACK (RFC 7507) signals, GREASE (RFC 8701); and
  // suites of the other protocol family (RFC 8446 B.4: TLS 1.3 suites are 0x13XX, and only them).
  const std::uint16_t suite = out.cipher_suite;
  if (suite == 0x0000 || suite == 0x00ff || suite == 0x5600 || is_grease(suite)) {
    return Failure{"bad_cipher_suite", "ServerHello selects a signalling cipher suite value",
                   Alert::kIllegalParameter, suite_at};
  }
  if (tls13 != ((suite >> 8) == 0x13)) {
    return Failure{"bad_cipher_suite", "cipher suite does not belong to the negotiated version",
                   Alert::kIllegalParameter, suite_at};
  }
  // RFC 8446 4.1.3: legacy_compression_method MUST be 0 in TLS 1.3.
  if (tls13 && out.compression != 0) {
    return Failure{"bad_compression", "TLS 1.3 ServerHello with a compression method",
                   Alert::kIllegalParameter, compression_at};
  }

  Cursor ext(extensions, extensions_at + 2);
  while (!ext.empty()) {
    const std::size_t at = ext.offset();
    std::uint16_t type = 0;
    std::span<const std::uint8_t> data;
    ext.u16(type);
    ext.vec16(data);
    const bool misplaced = tls13 ? misplaced_in_tls13_server_hello(type, out.is_hello_retry_request)
                                 : misplaced_in_tls12_server_hello(type);
    if (misplaced) {
      return Failure{"extension_not_allowed",
                     "extension not allowed in a ServerHello of the negotiated version",
                     Alert::kIllegalParameter, at};
    }
    if (auto failure = parse_server_extension(type, data, at + 4, out)) return failure;
  }

  // RFC 8446 4.2.8 / 4.2.11: a TLS 1.3 ServerHello carries a key share, a PSK, or both (an HRR
  // may carry neither group nor cookie only if nothing else changes, which the client checks).
  if (tls13 && !out.is_hello_retry_request && !out.key_share_group && !out.pre_shared_key) {
    return Failure{"missing_key_share", "TLS 1.3 ServerHello without key_share or pre_shared_key",
                   Alert::kIllegalParameter, extensions_at};
  }
  if (!tls13 && std::equal(std::begin(kDowngradePrefix), std::end(kDowngradePrefix),
                           out.random.begin() + 24)) {
    if (out.random[31] == 1) out.downgrade_sentinel = kTls12;
    if (out.random[31] == 0) out.downgrade_sentinel = kTls11;
  }
  return std::nullopt;
}

// RFC 5280 4.1: a Certificate is one DER SEQUENCE; checked just enough to refuse bytes that are
// not one (definite length, minimal length encoding, filling exactly the ASN.1Cert vector).
bool is_one_der_sequence(std::span<const std::uint8_t> der) {
  if (der.size() < 2 || der[0] != 0x30) return false;
  std::size_t length = 0;
  std::size_t header = 2;
  const std::uint8_t first = der[1];
  if (first < 0x80) {
    length = first;
  } else {
    const std::size_t n = first & 0x7f;
    if (n == 0 || n > 3 || der.size() < 2 + n || der[2] == 0) return false;
    for (std::size_t i = 0; i < n; ++i) length = (length << 8) | der[2 + i];
    if (length < 0x80) return false;  // the short form was required
    header += n;
  }
  return der.size() - header == length;
}

// RFC 5246 7.4.2: opaque ASN.1Cert<1..2^24-1>; ASN.1Cert certificate_list<0..2^24-1>.
std::optional<Failure> parse_certificate(std::span<const std::uint8_t> message,
                                         std::size_t max_certificates,
                                         std::vector<std::span<const std::uint8_t>>& out) {
  Cursor c(message.subspan(kHandshakeHeaderBytes), kHandshakeHeaderBytes);
  std::span<const std::uint8_t> list;
  if (!c.vec24(list) || !c.empty()) {
    return Failure{"bad_certificate_list", "certificate_list length does not match the message",
                   Alert::kDecodeError, kHandshakeHeaderBytes};
  }
  // A server's list is never empty: it sends Certificate only when its suite needs one.
  if (list.empty()) {
    return Failure{"empty_certificate_list", "server Certificate message without a certificate",
                   Alert::kDecodeError, kHandshakeHeaderBytes};
  }
  Cursor entries(list, kHandshakeHeaderBytes + 3);
  while (!entries.empty()) {
    const std::size_t at = entries.offset();
    std::span<const std::uint8_t> der;
    if (!entries.vec24(der)) {
      return Failure{"bad_certificate_list", "certificate entry runs past the list",
                     Alert::kDecodeError, at};
    }
    if (out.size() == max_certificates) {
      return Failure{"too_many_certificates", "more certificates than the limit",
                     Alert::kHandshakeFailure, at};
    }
    if (!is_one_der_sequence(der)) {
      return Failure{"bad_certificate_der", "certificate entry is not one DER SEQUENCE",
                     Alert::kDecodeError, at + 3};
    }
    out.push_back(der);
  }
  return std::nullopt;
}

enum class KeyExchange : std::uint8_t { kOther, kDhe, kEcdhe };

// The ServerKeyExchange format of a cipher suite (IANA TLS Cipher Suites registry): DHE_* and
// DH_anon_* send ServerDHParams (RFC 5246 7.4.3), ECDHE_* and ECDH_anon_* ServerECDHParams
// (RFC 8422 5.4). PSK variants (identity hint first), SRP, RSA_EXPORT, static DH/ECDH and RSA
// are kOther: their ServerKeyExchange, if any, is not interpreted.
KeyExchange key_exchange_of(std::uint16_t suite) {
  struct Range {
    std::uint16_t first;
    std::uint16_t last;
    KeyExchange kx;
  };
  static constexpr Range kRanges[] = {
      {0x0011, 0x001b, KeyExchange::kDhe},    // DHE_DSS/RSA (export, DES, 3DES), DH_anon
      {0x0032, 0x0034, KeyExchange::kDhe},    // DHE_DSS/RSA/DH_anon AES_128_CBC_SHA
      {0x0038, 0x003a, KeyExchange::kDhe},    // ... AES_256_CBC_SHA
      {0x0040, 0x0040, KeyExchange::kDhe},    // DHE_DSS AES_128_CBC_SHA256
      {0x0044, 0x0046, KeyExchange::kDhe},    // ... CAMELLIA_128_CBC_SHA
      {0x0067, 0x0067, KeyExchange::kDhe},    // DHE_RSA AES_128_CBC_SHA256
      {0x006a, 0x006d, KeyExchange::kDhe},    // DHE_DSS/RSA AES_256_CBC_SHA256, DH_anon SHA256
      {0x0087, 0x0089, KeyExchange::kDhe},    // ... CAMELLIA_256_CBC_SHA
      {0x0099, 0x009b, KeyExchange::kDhe},    // ... SEED_CBC_SHA
      {0x009e, 0x009f, KeyExchange::kDhe},    // DHE_RSA AES_GCM
      {0x00a2, 0x00a3, KeyExchange::kDhe},    // DHE_DSS AES_GCM
      {0x00a6, 0x00a7, KeyExchange::kDhe},    // DH_anon AES_GCM
      {0x00bd, 0x00bf, KeyExchange::kDhe},    // ... CAMELLIA_128_CBC_SHA256
      {0x00c3, 0x00c5, KeyExchange::kDhe},    // ... CAMELLIA_256_CBC_SHA256
      {0xc006, 0xc00a, KeyExchange::kEcdhe},  // ECDHE_ECDSA
      {0xc010, 0xc019, KeyExchange::kEcdhe},  // ECDHE_RSA, ECDH_anon
      {0xc023, 0xc024, KeyExchange::kEcdhe},  // ECDHE_ECDSA AES_CBC_SHA256/384
      {0xc027, 0xc028, KeyExchange::kEcdhe},  // ECDHE_RSA AES_CBC_SHA256/384
      {0xc02b, 0xc02c, KeyExchange::kEcdhe},  // ECDHE_ECDSA AES_GCM
      {0xc02f, 0xc030, KeyExchange::kEcdhe},  // ECDHE_RSA AES_GCM
      {0xc042, 0xc047, KeyExchange::kDhe},    // DHE_DSS/RSA, DH_anon ARIA_CBC
      {0xc048, 0xc049, KeyExchange::kEcdhe},  // ECDHE_ECDSA ARIA_CBC
      {0xc04c, 0xc04d, KeyExchange::kEcdhe},  // ECDHE_RSA ARIA_CBC
      {0xc052, 0xc053, KeyExchange::kDhe},    // DHE_RSA ARIA_GCM
      {0xc056, 0xc057, KeyExchange::kDhe},    // DHE_DSS ARIA_GCM
      {0xc05a, 0xc05b, KeyExchange::kDhe},    // DH_anon ARIA_GCM
      {0xc05c, 0xc05d, KeyExchange::kEcdhe},  // ECDHE_ECDSA ARIA_GCM
      {0xc060, 0xc061, KeyExchange::kEcdhe},  // ECDHE_RSA ARIA_GCM
      {0xc072, 0xc073, KeyExchange::kEcdhe},  // ECDHE_ECDSA CAMELLIA_CBC
      {0xc076, 0xc077, KeyExchange::kEcdhe},  // ECDHE_RSA CAMELLIA_CBC
      {0xc07c, 0xc07d, KeyExchange::kDhe},    // DHE_RSA CAMELLIA_GCM
      {0xc080, 0xc081, KeyExchange::kDhe},    // DHE_DSS CAMELLIA_GCM
      {0xc084, 0xc085, KeyExchange::kDhe},    // DH_anon CAMELLIA_GCM
      {0xc086, 0xc087, KeyExchange::kEcdhe},  // ECDHE_ECDSA CAMELLIA_GCM
      {0xc08a, 0xc08b, KeyExchange::kEcdhe},  // ECDHE_RSA CAMELLIA_GCM
      {0xc09e, 0xc09f, KeyExchange::kDhe},    // DHE_RSA AES_CCM
      {0xc0a2, 0xc0a3, KeyExchange::kDhe},    // DHE_RSA AES_CCM_8
      {0xc0ac, 0xc0af, KeyExchange::kEcdhe},  // ECDHE_ECDSA AES_CCM(_8)
      {0xcca8, 0xcca9, KeyExchange::kEcdhe},  // ECDHE_RSA/ECDSA CHACHA20_POLY1305
      {0xccaa, 0xccaa, KeyExchange::kDhe},    // DHE_RSA CHACHA20_POLY1305
  };
  for (const auto& r : kRanges) {
    if (suite >= r.first && suite <= r.last) return r.kx;
  }
  return KeyExchange::kOther;
}

// What follows the params: nothing for anonymous suites, else digitally-signed (RFC 5246 4.7):
// TLS 1.2 prefixes the signature with its SignatureAndHashAlgorithm (RFC 5246 7.4.3), earlier
// versions do not (RFC 4346 7.4.3).
std::optional<Failure> parse_ske_signature(Cursor& c, std::uint16_t version, ServerFlight& out) {
  if (c.empty()) return std::nullopt;
  const Failure bad{"bad_server_key_exchange", "malformed ServerKeyExchange signature",
                    Alert::kDecodeError, c.offset()};
  std::uint16_t scheme = 0;
  std::span<const std::uint8_t> signature;
  if (version >= kTls12 && !c.u16(scheme)) return bad;
  if (!c.vec16(signature) || signature.empty() || !c.empty()) return bad;
  if (version >= kTls12) out.ske_signature_scheme = scheme;
  return std::nullopt;
}

std::optional<Failure> parse_server_key_exchange(std::span<const std::uint8_t> message,
                                                 const ServerHello& hello, ServerFlight& out) {
  Cursor c(message.subspan(kHandshakeHeaderBytes), kHandshakeHeaderBytes);
  switch (key_exchange_of(hello.cipher_suite)) {
    case KeyExchange::kEcdhe: {
      // RFC 8422 5.4: ECParameters (ECCurveType, NamedCurve), ECPoint public<1..2^8-1>.
      std::uint8_t curve_type = 0;
      std::uint16_t curve = 0;
      std::span<const std::uint8_t> point;
      if (!c.u8(curve_type) || !c.u16(curve) || !c.vec8(point) || point.empty()) {
        return Failure{"bad_server_key_exchange", "malformed ServerECDHParams", Alert::kDecodeError,
                       c.offset()};
      }
      // RFC 8422 5.4: explicit_prime (1) and explicit_char2 (2) are deprecated and not sent.
      if (curve_type != 3) {
        return Failure{"bad_ec_curve_type", "ServerECDHParams curve type is not named_curve",
                       Alert::kIllegalParameter, kHandshakeHeaderBytes};
      }
      out.ecdhe_curve = curve;
      return parse_ske_signature(c, hello.negotiated_version(), out);
    }
    case KeyExchange::kDhe: {
      // RFC 5246 7.4.3: ServerDHParams { opaque dh_p<1..2^16-1>; dh_g<1..2^16-1>;
      // dh_Ys<1..2^16-1>; }.
      std::span<const std::uint8_t> p, g, ys;
      if (!c.vec16(p) || !c.vec16(g) || !c.vec16(ys) || p.empty() || g.empty() || ys.empty()) {
        return Failure{"bad_server_key_exchange", "malformed ServerDHParams", Alert::kDecodeError,
                       c.offset()};
      }
      const auto first = std::find_if(p.begin(), p.end(), [](std::uint8_t b) { return b != 0; });
      if (first == p.end()) {
        return Failure{"bad_dh_prime", "ServerDHParams prime is zero", Alert::kIllegalParameter,
                       kHandshakeHeaderBytes};
      }
      const std::size_t bytes = static_cast<std::size_t>(p.end() - first);
      out.dhe_prime_bits = 8 * (bytes - 1) + static_cast<std::size_t>(std::bit_width(*first));
      return parse_ske_signature(c, hello.negotiated_version(), out);
    }
    case KeyExchange::kOther: return std::nullopt;
  }
  return std::nullopt;
}

// The order of a TLS <= 1.2 server's first flight (RFC 5246 7.3, RFC 6066 8, RFC 5077 3.1):
// ServerHello, Certificate*, CertificateStatus*, ServerKeyExchange*, CertificateRequest*,
// ServerHelloDone; or, resuming, ServerHello, NewSessionTicket*, then ChangeCipherSpec.
bool may_follow(std::uint8_t last, std::uint8_t next) {
  switch (last) {
    case kHandshakeServerHello:
      return next == kHandshakeCertificate || next == kHandshakeServerKeyExchange ||
             next == kHandshakeCertificateRequest || next == kHandshakeServerHelloDone ||
             next == kHandshakeNewSessionTicket;
    case kHandshakeCertificate:
      return next == kHandshakeCertificateStatus || next == kHandshakeServerKeyExchange ||
             next == kHandshakeCertificateRequest || next == kHandshakeServerHelloDone;
    case kHandshakeCertificateStatus:
      return next == kHandshakeServerKeyExchange || next == kHandshakeCertificateRequest ||
             next == kHandshakeServerHelloDone;
    case kHandshakeServerKeyExchange:
      return next == kHandshakeCertificateRequest || next == kHandshakeServerHelloDone;
    case kHandshakeCertificateRequest: return next == kHandshakeServerHelloDone;
    default:
      return false;  // after NewSessionTicket only ChangeCipherSpec; nothing after the flight
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

bool ServerHello::has_extension(std::uint16_t type) const {
  return std::find(extension_types.begin(), extension_types.end(), type) != extension_types.end();
}

std::string_view ServerAlert::name() const {
  switch (description) {
    case 0: return "close_notify";
    case 10: return "unexpected_message";
    case 20: return "bad_record_mac";
    case 21: return "decryption_failed";
    case 22: return "record_overflow";
    case 30: return "decompression_failure";
    case 40: return "handshake_failure";
    case 41: return "no_certificate";
    case 42: return "bad_certificate";
    case 43: return "unsupported_certificate";
    case 44: return "certificate_revoked";
    case 45: return "certificate_expired";
    case 46: return "certificate_unknown";
    case 47: return "illegal_parameter";
    case 48: return "unknown_ca";
    case 49: return "access_denied";
    case 50: return "decode_error";
    case 51: return "decrypt_error";
    case 60: return "export_restriction";
    case 70: return "protocol_version";
    case 71: return "insufficient_security";
    case 80: return "internal_error";
    case 86: return "inappropriate_fallback";
    case 90: return "user_canceled";
    case 100: return "no_renegotiation";
    case 109: return "missing_extension";
    case 110: return "unsupported_extension";
    case 111: return "certificate_unobtainable";
    case 112: return "unrecognized_name";
    case 113: return "bad_certificate_status_response";
    case 114: return "bad_certificate_hash_value";
    case 115: return "unknown_psk_identity";
    case 116: return "certificate_required";
    case 120: return "no_application_protocol";
    default: return "unknown";
  }
}

std::string ServerAlert::describe() const {
  std::string out = level == kAlertWarning ? "warning " : "";
  out += name();
  out += '(';
  out += std::to_string(description);
  out += ')';
  return out;
}

std::string_view to_string(CertificateVisibility visibility) {
  switch (visibility) {
    case CertificateVisibility::kNotRead: return "certificate not read";
    case CertificateVisibility::kPresent: return "certificate visible";
    case CertificateVisibility::kNotSent: return "no certificate sent (anonymous or PSK suite)";
    case CertificateVisibility::kResumed: return "no certificate (session resumed)";
    case CertificateVisibility::kEncrypted: return "certificate not visible (TLS 1.3)";
    case CertificateVisibility::kHelloRetryRequest: return "no certificate (HelloRetryRequest)";
  }
  return "certificate not read";
}

bool ServerFlight::has_message(std::uint8_t type) const {
  return std::find(message_types.begin(), message_types.end(), type) != message_types.end();
}

ServerFlightReader::ServerFlightReader(Stop stop, ServerFlightLimits limits)
    : stop_(stop), limits_(limits), reassembler_(limits.handshake) {}

ParseStatus ServerFlightReader::fail(std::string_view code, std::string_view message, Alert alert,
                                     std::size_t offset) {
  error_ = ParseError{code, message, alert, offset};
  status_ = ParseStatus::kError;
  return status_;
}

ParseStatus ServerFlightReader::feed(std::string_view bytes) {
  return feed(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                            bytes.size()));
}

// The record layer is read here for every content type, so that an alert or a ChangeCipherSpec
// can end the flight at a record boundary; handshake records (header, then body) are handed to
// the reassembler a record at a time, so it never sees past the current record.
ParseStatus ServerFlightReader::feed(std::span<const std::uint8_t> bytes) {
  consumed_last_feed_ = 0;
  if (status_ != ParseStatus::kNeedMore) return status_;
  std::size_t i = 0;
  while (i < bytes.size() && status_ == ParseStatus::kNeedMore) {
    if (header_have_ < kRecordHeaderBytes) {
      record_header_byte(bytes[i]);
      ++i;
      continue;
    }
    if (header_[0] == kContentTypeHandshake) {
      i += handshake_bytes(bytes.subspan(i));
      continue;
    }
    // Alert (2 bytes) or ChangeCipherSpec (1 byte): lengths were checked with the header.
    record_body_[record_body_have_++] = bytes[i];
    ++i;
    ++consumed_;
    if (--record_remaining_ > 0) continue;
    header_have_ = 0;
    if (header_[0] == kContentTypeAlert) {
      on_alert();
    } else {
      on_change_cipher_spec();
    }
  }
  consumed_last_feed_ = i;
  return status_;
}

void ServerFlightReader::record_header_byte(std::uint8_t b) {
  const std::size_t at = consumed_;
  header_[header_have_++] = b;
  ++consumed_;
  switch (header_have_) {
    case 1:
      if (at == 0 && (b < kContentTypeChangeCipherSpec || b > kContentTypeApplicationData)) {
        // Decided on the first byte, before buffering anything: "HTTP/1.1 400", "SSH-2.0", or an
        // SSLv2 record (2-byte header with the top bit set, RFC 6101 E.1), which we do not read.
        if (b & 0x80) {
          fail("sslv2_server_hello", "SSLv2 record from the server", Alert::kProtocolVersion, at);
        } else {
          fail("not_tls", "not a TLS record", Alert::kUnexpectedMessage, at);
        }
        return;
      }
      if (b == kContentTypeChangeCipherSpec) {
        // RFC 5246 7.3 / RFC 5077 3.1: only an abbreviated handshake sends ChangeCipherSpec in
        // the server's first flight, right after ServerHello or NewSessionTicket, and never in
        // the middle of a handshake message. (TLS 1.3's compatibility CCS comes after the
        // ServerHello, where the reader has stopped.)
        const bool allowed =
            flight_.hello && reassembler_.message().empty() &&
            (last_message_ == kHandshakeServerHello || last_message_ == kHandshakeNewSessionTicket);
        if (!allowed) {
          fail("unexpected_change_cipher_spec", "ChangeCipherSpec before the flight allows it",
               Alert::kUnexpectedMessage, at);
        }
        return;
      }
      if (b != kContentTypeHandshake && b != kContentTypeAlert) {
        // application_data (encrypted) and unknown types: not part of a plaintext first flight.
        fail("unexpected_content_type", "record is neither handshake, alert nor ChangeCipherSpec",
             Alert::kUnexpectedMessage, at);
      }
      return;
    case 2:
      if (b != 0x03)
        fail("bad_record_version", "record version is not 3.x", Alert::kDecodeError, at);
      return;
    case 3:
      if (b > 0x04) {
        fail("bad_record_version", "record version outside 0x0300..0x0304", Alert::kDecodeError,
             at);
      }
      return;
    case kRecordHeaderBytes: {
      const std::size_t length = (std::size_t{header_[3]} << 8) | header_[4];
      record_remaining_ = length;
      record_body_have_ = 0;
      switch (header_[0]) {
        case kContentTypeHandshake:
          // RFC 8446 5.1 / RFC 5246 6.2.1: no zero-length handshake fragments; at most 2^14.
          if (length == 0) {
            fail("empty_record", "zero-length handshake record", Alert::kUnexpectedMessage, at - 1);
          } else if (length > kMaxPlaintextRecord) {
            fail("record_overflow", "record longer than 2^14 bytes", Alert::kRecordOverflow,
                 at - 1);
          } else {
            reassemble(std::span<const std::uint8_t>(header_), at + 1 - kRecordHeaderBytes);
          }
          return;
        case kContentTypeAlert:
          // RFC 8446 5.1: alerts are not fragmented; a plaintext alert is exactly level and
          // description (RFC 5246 7.2).
          if (length != 2) {
            fail("bad_alert_record", "alert record is not 2 bytes long", Alert::kDecodeError,
                 at - 1);
          }
          return;
        default:
          // RFC 5246 7.1: ChangeCipherSpec is a single byte of value 1.
          if (length != 1) {
            fail("bad_change_cipher_spec", "ChangeCipherSpec record is not 1 byte long",
                 Alert::kDecodeError, at - 1);
          }
          return;
      }
    }
    default: return;
  }
}

HandshakeReassembler::FeedResult ServerFlightReader::reassemble(std::span<const std::uint8_t> bytes,
                                                                std::size_t at) {
  const std::size_t wire_before = reassembler_.wire_bytes();
  const auto result = reassembler_.feed(bytes);
  if (result.status == ParseStatus::kError) {
    // The reassembler counts only the bytes it was given (skipped warning alerts are not): its
    // offsets, all in the bytes just fed, are moved to stream offsets.
    error_ = reassembler_.error();
    if (error_.offset != Error::kNoOffset) error_.offset = error_.offset - wire_before + at;
    status_ = ParseStatus::kError;
  }
  return result;
}

std::size_t ServerFlightReader::handshake_bytes(std::span<const std::uint8_t> bytes) {
  // A message's type byte goes in alone and is checked before anything else of the message, so
  // that an out-of-order message fails the same way whatever the split (and before its length
  // can trip a size limit).
  const bool starting = reassembler_.message().empty();
  const std::size_t take = starting ? 1 : std::min(bytes.size(), record_remaining_);
  const std::size_t at = consumed_;
  const auto result = reassemble(bytes.first(take), at);
  consumed_ += result.consumed;
  record_remaining_ -= std::min(record_remaining_, result.consumed);
  if (status_ == ParseStatus::kError) return result.consumed;
  if (record_remaining_ == 0) header_have_ = 0;
  if (starting) check_message_type(reassembler_.message()[0], at);
  if (status_ == ParseStatus::kNeedMore && result.status == ParseStatus::kComplete) on_message();
  return result.consumed;
}

void ServerFlightReader::check_message_type(std::uint8_t type, std::size_t at) {
  if (!flight_.hello) {
    if (type != kHandshakeServerHello) {
      fail("not_server_hello", "first handshake message is not a ServerHello",
           Alert::kUnexpectedMessage, at);
    }
    return;
  }
  if (!may_follow(last_message_, type)) {
    fail("unexpected_handshake_message", "handshake message out of order in the server's flight",
         Alert::kUnexpectedMessage, at);
  }
}

void ServerFlightReader::on_message() {
  const auto message = reassembler_.message();
  const std::uint8_t type = message[0];
  last_message_ = type;
  flight_.message_types.push_back(type);
  bool done = false;
  bool ends_record = false;  // the peer must now wait for us: nothing may follow in the record
  switch (type) {
    case kHandshakeServerHello: {
      kept_.emplace_back(message.begin(), message.end());
      ServerHello hello;
      if (auto failure = parse_server_hello(kept_.back(), hello)) {
        fail(failure->code, failure->message, failure->alert, failure->offset);
        return;
      }
      flight_.hello = std::move(hello);
      if (flight_.hello->is_hello_retry_request) {
        // RFC 8446 4.1.4: the server now waits for a second ClientHello.
        flight_.certificate = CertificateVisibility::kHelloRetryRequest;
        done = ends_record = true;
      } else if (flight_.hello->negotiated_version() >= kTls13) {
        // RFC 8446 5.1: the record carrying the ServerHello ends with it (a key change follows);
        // next come a compatibility ChangeCipherSpec and encrypted records.
        flight_.certificate = CertificateVisibility::kEncrypted;
        done = ends_record = true;
      } else {
        done = stop_ == Stop::kAfterServerHello;
      }
      break;
    }
    case kHandshakeCertificate: {
      kept_.emplace_back(message.begin(), message.end());
      if (auto failure =
              parse_certificate(kept_.back(), limits_.max_certificates, flight_.certificates)) {
        flight_.certificates.clear();
        fail(failure->code, failure->message, failure->alert, failure->offset);
        return;
      }
      flight_.certificate = CertificateVisibility::kPresent;
      done = stop_ == Stop::kAfterCertificate;
      break;
    }
    case kHandshakeServerKeyExchange: {
      kept_.emplace_back(message.begin(), message.end());
      if (auto failure = parse_server_key_exchange(kept_.back(), *flight_.hello, flight_)) {
        fail(failure->code, failure->message, failure->alert, failure->offset);
        return;
      }
      break;
    }
    case kHandshakeServerHelloDone:
      // RFC 5246 7.4.5: struct { } ServerHelloDone.
      if (message.size() != kHandshakeHeaderBytes) {
        fail("bad_server_hello_done", "ServerHelloDone is not empty", Alert::kDecodeError,
             kHandshakeHeaderBytes);
        return;
      }
      done = ends_record = true;
      break;
    default:  // CertificateStatus, CertificateRequest, NewSessionTicket: carried, not read
      break;
  }
  if (type != kHandshakeServerHello && type != kHandshakeNewSessionTicket &&
      flight_.certificate == CertificateVisibility::kNotRead) {
    // The flight went past where a Certificate goes (RFC 5246 7.3) without one.
    flight_.certificate = CertificateVisibility::kNotSent;
    done = done || stop_ == Stop::kAfterCertificate;
  }
  if (ends_record && reassembler_.record_bytes_remaining() != 0) {
    fail("trailing_record_data", "handshake record continues after the end of the flight",
         Alert::kUnexpectedMessage, consumed_);
    return;
  }
  if (done) {
    status_ = ParseStatus::kComplete;
    return;
  }
  reassembler_.next_message();
}

void ServerFlightReader::on_alert() {
  const ServerAlert alert{record_body_[0], record_body_[1]};
  if (alert.level != kAlertWarning && alert.level != kAlertFatal) {
    fail("bad_alert", "alert level is neither warning (1) nor fatal (2)", Alert::kIllegalParameter,
         consumed_ - 2);
    return;
  }
  // RFC 6066 3: a server that does not know the SNI name MAY send a warning-level
  // unrecognized_name alert and go on with the handshake. Any other alert (close_notify, fatal,
  // or warnings such as user_canceled that precede a close) ends the flight: the server refused.
  if (alert.level == kAlertWarning && alert.description == kAlertUnrecognizedName) {
    if (flight_.warnings.size() == limits_.max_warning_alerts) {
      fail("too_many_warnings", "too many warning alerts", Alert::kUnexpectedMessage,
           consumed_ - 2);
      return;
    }
    flight_.warnings.push_back(alert);
    return;
  }
  flight_.alert = alert;
  status_ = ParseStatus::kComplete;
}

void ServerFlightReader::on_change_cipher_spec() {
  if (record_body_[0] != 1) {
    fail("bad_change_cipher_spec", "ChangeCipherSpec byte is not 1", Alert::kDecodeError,
         consumed_ - 1);
    return;
  }
  // The records that follow are encrypted (the server's Finished).
  flight_.certificate = CertificateVisibility::kResumed;
  status_ = ParseStatus::kComplete;
}

std::size_t ServerFlightReader::bytes_needed_hint() const {
  if (status_ != ParseStatus::kNeedMore) return 0;
  if (header_have_ < kRecordHeaderBytes) return kRecordHeaderBytes - header_have_;
  if (header_[0] != kContentTypeHandshake) return record_remaining_;
  if (reassembler_.message().empty()) return 1;  // a type byte goes in alone
  return reassembler_.bytes_needed_hint();
}

}  // namespace moat::core::tls

// core/tls: building raw ClientHello records (RFC 8446 4.1.2, RFC 5246 7.4.1.2, RFC 6101 5.6.1.2)
// for any version from SSL 3.0 to TLS 1.3, without OpenSSL's state machine, so that `moat scan`
// can offer exactly what it wants to learn about (old versions and suites OpenSSL 3 no longer
// speaks, one group at a time, compression, SCSVs). The hello is never followed by a handshake:
// only the key shares are real (a TLS 1.3 server must be able to parse them).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/tls/client_hello.hpp"

namespace moat::core::tls {

// Named groups (IANA TLS Supported Groups registry).
constexpr std::uint16_t kGroupSecp256r1 = 0x0017;
constexpr std::uint16_t kGroupSecp384r1 = 0x0018;
constexpr std::uint16_t kGroupSecp521r1 = 0x0019;
constexpr std::uint16_t kGroupX25519 = 0x001d;
constexpr std::uint16_t kGroupX448 = 0x001e;
constexpr std::uint16_t kGroupFfdhe2048 = 0x0100;
constexpr std::uint16_t kGroupFfdhe3072 = 0x0101;
constexpr std::uint16_t kGroupFfdhe4096 = 0x0102;
constexpr std::uint16_t kGroupFfdhe6144 = 0x0103;
constexpr std::uint16_t kGroupFfdhe8192 = 0x0104;

// Signalling cipher suite values.
constexpr std::uint16_t kSuiteEmptyRenegotiationInfoScsv = 0x00ff;  // RFC 5746 3.3
constexpr std::uint16_t kSuiteFallbackScsv = 0x5600;                // RFC 7507

// Extension types the builder writes besides those of client_hello.hpp / server_hello.hpp.
constexpr std::uint16_t kExtEcPointFormats = 11;      // RFC 8422 5.1.2
constexpr std::uint16_t kExtSessionTicket = 35;       // RFC 5077
constexpr std::uint16_t kExtPskKeyExchangeModes = 45;  // RFC 8446 4.2.9
constexpr std::uint16_t kExtHeartbeat = 15;            // RFC 6520 2

// Compression methods (RFC 3749).
constexpr std::uint8_t kCompressionNull = 0;
constexpr std::uint8_t kCompressionDeflate = 1;

// A public key share for one group (RFC 8446 4.2.8).
struct KeyShare {
  std::uint16_t group = 0;
  std::vector<std::uint8_t> public_key;
};

// A fresh key pair's public half for x25519, x448, secp256r1, secp384r1 or secp521r1 (the private
// half is dropped: the handshake is never completed). Errors: "key_share_group" (a group it cannot
// make, e.g. ffdhe), "key_share_failed" (OpenSSL).
Result<KeyShare> make_key_share(std::uint16_t group);

// What to offer. Lists are written in the given order; an empty list omits its extension.
struct ClientHelloSpec {
  // The highest version offered: kSsl30 .. kTls13. Below TLS 1.3 it goes into legacy_version
  // (RFC 5246 E.1); for TLS 1.3, legacy_version is TLS 1.2 and supported_versions lists
  // kTls13 down to `min_version` (RFC 8446 4.2.1).
  std::uint16_t version = kTls12;
  std::uint16_t min_version = kTls13;  // TLS 1.3 only: lowest version in supported_versions
  std::vector<std::uint16_t> cipher_suites;
  std::string server_name;  // empty: no server_name extension (RFC 6066 3)
  std::vector<std::uint16_t> supported_groups;
  std::vector<std::uint16_t> signature_algorithms;  // written for TLS 1.2 and up only
  std::vector<KeyShare> key_shares;                 // written when TLS 1.3 is offered
  std::vector<std::string> alpn;
  bool renegotiation_info = true;      // the empty renegotiation_info extension (RFC 5746 3.4)
  bool renegotiation_scsv = false;     // append TLS_EMPTY_RENEGOTIATION_INFO_SCSV to the suites
  bool fallback_scsv = false;          // append TLS_FALLBACK_SCSV (RFC 7507 4)
  bool extended_master_secret = true;  // RFC 7627
  bool session_ticket = false;         // an empty session_ticket extension (RFC 5077 3.2)
  bool ec_point_formats = true;        // "uncompressed" only; written when groups are listed
  bool heartbeat = false;              // heartbeat, peer_allowed_to_send (RFC 6520 2; Heartbleed)
  bool deflate = false;                // offer DEFLATE before null compression (CRIME probe)
  bool extensions = true;              // false: no extension block at all (classic SSL 3.0)
};

// The ClientHello as TLS records (content type 22), ready to write to a socket. A hello larger
// than one record (2^14 bytes) is split over several (RFC 8446 5.1). The record layer version is
// SSL 3.0 for an SSL 3.0 hello and TLS 1.0 otherwise, as widely deployed clients do (RFC 8446
// 5.1: legacy_record_version 0x0301 for compatibility). Errors (source kInput):
// "version_invalid", "no_cipher_suites", "server_name_invalid", "list_too_long".
Result<std::vector<std::uint8_t>> build_client_hello(const ClientHelloSpec& spec);

// The signature algorithms offered by default: every scheme a server may choose from, SHA-1
// ones included, so that old servers answer (RFC 8446 4.2.3, RFC 5246 7.4.1.4.1).
const std::vector<std::uint16_t>& default_signature_algorithms();

}  // namespace moat::core::tls

// core/tls: reading a server's first flight (RFC 8446 4.1.3, RFC 5246 7.4.1.3-7.4.5, RFC 8422 5.4)
// from the raw bytes of a connection, without OpenSSL and without consuming anything for the
// peer: the egress proxy looks at the upstream's answer (version floor, cipher suite, the leaf's
// SPKI pin for TLS <= 1.2) while forwarding the very same bytes downstream; `moat scan` reads what
// a server answers to hand-built ClientHellos. Strict on structure, silent on policy
// (docs/parsers.md, "Server flight reader").
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.hpp"
#include "core/tls/client_hello.hpp"  // versions, extension types
#include "core/tls/handshake.hpp"

namespace moat::core::tls {

// Record content types (RFC 8446 5.1) other than handshake (kContentTypeHandshake, 22).
constexpr std::uint8_t kContentTypeChangeCipherSpec = 20;
constexpr std::uint8_t kContentTypeAlert = 21;
constexpr std::uint8_t kContentTypeApplicationData = 23;

// Handshake message types a server sends in its first flight (RFC 8446 4, RFC 5246 7.4,
// RFC 6066 8 for certificate_status).
constexpr std::uint8_t kHandshakeServerHello = 2;
constexpr std::uint8_t kHandshakeNewSessionTicket = 4;
constexpr std::uint8_t kHandshakeCertificate = 11;
constexpr std::uint8_t kHandshakeServerKeyExchange = 12;
constexpr std::uint8_t kHandshakeCertificateRequest = 13;
constexpr std::uint8_t kHandshakeServerHelloDone = 14;
constexpr std::uint8_t kHandshakeCertificateStatus = 22;

// Server-side extension types interpreted here (others: see client_hello.hpp).
constexpr std::uint16_t kExtExtendedMasterSecret = 23;   // RFC 7627
constexpr std::uint16_t kExtCookie = 44;                 // RFC 8446 4.2.2 (HelloRetryRequest)
constexpr std::uint16_t kExtRenegotiationInfo = 0xff01;  // RFC 5746

// RFC 8446 4.1.3: the ServerHello.random of a HelloRetryRequest, SHA-256("HelloRetryRequest").
extern const std::uint8_t kHelloRetryRequestRandom[32];

// The fields of a ServerHello (or HelloRetryRequest). Views point into the reader's storage
// (valid while the reader lives; moving the reader keeps them valid).
struct ServerHello {
  std::uint16_t legacy_version = 0;          // 0x0300..0x0303 (TLS 1.3 puts 0x0303 here)
  std::span<const std::uint8_t> random;      // 32 bytes
  bool is_hello_retry_request = false;       // random == kHelloRetryRequestRandom
  std::span<const std::uint8_t> session_id;  // 0..32 bytes (TLS 1.3: the client's, echoed)
  std::uint16_t cipher_suite = 0;
  std::uint8_t compression = 0;                // 0: null (always for TLS 1.3)
  std::vector<std::uint16_t> extension_types;  // in order of appearance; empty without a block

  std::optional<std::uint16_t> selected_version;  // supported_versions (RFC 8446 4.2.1)
  std::optional<std::uint16_t> key_share_group;   // key_share: the server's share, or HRR's group
  std::optional<std::uint16_t> pre_shared_key;    // TLS 1.3: the selected PSK identity index
  std::optional<std::string_view> alpn;           // TLS <= 1.2 only: 1.3 sends it encrypted
  bool renegotiation_info = false;                // RFC 5746, empty (initial handshake)
  bool extended_master_secret = false;            // RFC 7627
  bool cookie = false;                            // HRR only
  // RFC 8446 4.1.3: a TLS 1.3-capable server negotiating an older version ends its random with
  // "DOWNGRD" + 01 (TLS 1.2: kTls12) or + 00 (TLS 1.1 or below: kTls11).
  std::optional<std::uint16_t> downgrade_sentinel;

  // supported_versions' version if present (TLS 1.3), else legacy_version.
  std::uint16_t negotiated_version() const { return selected_version.value_or(legacy_version); }
  bool has_extension(std::uint16_t type) const;
};

// An alert record the server sent instead of (or in the middle of) its flight.
struct ServerAlert {
  std::uint8_t level = 0;        // 1 warning, 2 fatal
  std::uint8_t description = 0;  // RFC 8446 6 / RFC 5246 7.2

  bool fatal() const { return level == 2; }
  // "handshake_failure", "unknown" for values not in the registry.
  std::string_view name() const;
  // "handshake_failure(40)", "warning unrecognized_name(112)".
  std::string describe() const;
};

// What the flight says about the server's certificate.
enum class CertificateVisibility : std::uint8_t {
  kNotRead,            // the reader stopped (or the flight ended) before it could tell
  kPresent,            // TLS <= 1.2: a Certificate message was read (`certificates`)
  kNotSent,            // TLS <= 1.2: the server went on without one (anonymous or PSK suites)
  kResumed,            // TLS <= 1.2: abbreviated handshake (ChangeCipherSpec after ServerHello)
  kEncrypted,          // TLS 1.3: the Certificate is encrypted
  kHelloRetryRequest,  // TLS 1.3 HelloRetryRequest: no certificate in this flight
};
// "certificate not visible (TLS 1.3)" and the like, for logs and `moat scan`.
std::string_view to_string(CertificateVisibility visibility);

// The server's first flight, as far as it was read.
struct ServerFlight {
  std::optional<ServerHello> hello;         // absent if an alert came first
  std::vector<std::uint8_t> message_types;  // handshake messages read, in order
  // TLS <= 1.2 Certificate: each a DER certificate (leaf first), views into the reader's storage.
  std::vector<std::span<const std::uint8_t>> certificates;
  CertificateVisibility certificate = CertificateVisibility::kNotRead;

  // ServerKeyExchange (TLS <= 1.2), interpreted only for the suites whose key exchange is known
  // (ECDHE / ECDH_anon: the named curve; DHE / DH_anon: the size of p). No signature check.
  std::optional<std::uint16_t> ecdhe_curve;
  std::optional<std::size_t> dhe_prime_bits;
  std::optional<std::uint16_t> ske_signature_scheme;  // TLS 1.2 signed params: the scheme

  // The alert that ended the flight (status kComplete): any alert but a warning-level
  // unrecognized_name, which RFC 6066 3 lets a server send before going on.
  std::optional<ServerAlert> alert;
  // Warning-level unrecognized_name alerts skipped on the way (at most max_warning_alerts).
  std::vector<ServerAlert> warnings;

  bool certificate_visible() const { return certificate == CertificateVisibility::kPresent; }
  bool has_message(std::uint8_t type) const;
};

struct ServerFlightLimits {
  HandshakeLimits handshake;  // 64 KiB per message (Certificate), 128 KiB of handshake records
  std::size_t max_certificates = 100;  // entries in a Certificate message
  std::size_t max_warning_alerts = 4;  // warning alerts skipped before giving up
};

// Reads a server's first flight from the first byte it sends. Pure: bytes in, a status out;
// every check is made as soon as its bytes are in, so any split of the stream gives the same
// status, fields, error code and offset.
//
// kComplete when the flight was read as far as `Stop` asks, or when the server answered with an
// alert instead (`flight().alert` set: a result, not a parse error; check it first).
// TLS 1.3 and HelloRetryRequest always complete at the end of the ServerHello (what follows is a
// compatibility ChangeCipherSpec and encrypted records): `certificate` says kEncrypted /
// kHelloRetryRequest. TLS <= 1.2 goes on per `Stop`. The reader never takes bytes past the point
// where it completes; `consumed()` counts every byte it examined. Input that is not TLS fails on
// the first byte ("not_tls"; an SSLv2 server hello is "sslv2_server_hello").
class ServerFlightReader {
 public:
  enum class Stop : std::uint8_t {
    kAfterServerHello,      // TLS <= 1.2: complete after the ServerHello
    kAfterCertificate,      // ... after the Certificate, or the message that shows there is none
    kAfterServerHelloDone,  // ... after ServerHelloDone (ServerKeyExchange etc. read on the way)
  };

  explicit ServerFlightReader(Stop stop = Stop::kAfterCertificate, ServerFlightLimits limits = {});
  ServerFlightReader(const ServerFlightReader&) = delete;
  ServerFlightReader& operator=(const ServerFlightReader&) = delete;
  ServerFlightReader(ServerFlightReader&&) = default;
  ServerFlightReader& operator=(ServerFlightReader&&) = default;

  ParseStatus feed(std::span<const std::uint8_t> bytes);
  ParseStatus feed(std::string_view bytes);
  ParseStatus status() const { return status_; }

  // Stream bytes examined so far (all records, headers included); after kComplete, exactly up to
  // the last byte of the message or record that completed the flight.
  std::size_t consumed() const { return consumed_; }
  std::size_t consumed_last_feed() const { return consumed_last_feed_; }
  // The least number of further bytes that can make progress (0 once complete or failed).
  std::size_t bytes_needed_hint() const;

  // Filled as messages complete; final after kComplete.
  const ServerFlight& flight() const { return flight_; }
  // Valid after kError. Record-layer errors: `offset` in the stream; errors in a message's
  // content: offset inside that message (counting from its type byte).
  const ParseError& error() const { return error_; }

 private:
  ParseStatus fail(std::string_view code, std::string_view message, Alert alert,
                   std::size_t offset);
  void record_header_byte(std::uint8_t b);
  std::size_t handshake_bytes(std::span<const std::uint8_t> bytes);
  HandshakeReassembler::FeedResult reassemble(std::span<const std::uint8_t> bytes, std::size_t at);
  void check_message_type(std::uint8_t type, std::size_t at);
  void on_message();
  void on_alert();
  void on_change_cipher_spec();

  Stop stop_;
  ServerFlightLimits limits_;
  HandshakeReassembler reassembler_;
  ParseStatus status_ = ParseStatus::kNeedMore;
  std::size_t consumed_ = 0;
  std::size_t consumed_last_feed_ = 0;
  // The record being read (all content types; handshake bodies go through reassembler_).
  std::uint8_t header_[kRecordHeaderBytes] = {};
  std::size_t header_have_ = 0;
  std::size_t record_remaining_ = 0;
  std::uint8_t record_body_[2] = {};  // alert / change_cipher_spec body
  std::size_t record_body_have_ = 0;
  std::uint8_t last_message_ = 0xff;  // type of the last complete message (0xff: none)
  // Copies of the messages views point into (ServerHello, Certificate, ServerKeyExchange); the
  // inner buffers never move, so views stay valid when this vector grows or the reader moves.
  std::vector<std::vector<std::uint8_t>> kept_;
  ServerFlight flight_;
  ParseError error_;
};

// RFC 7469 pin of the leaf (first) certificate of a TLS <= 1.2 flight: base64(SHA-256(DER
// SubjectPublicKeyInfo)). Parses the DER with OpenSSL; no chain or signature check. Errors (source
// upstream): "no_certificate" (none read: TLS 1.3, resumption, alert...), "certificate_der_invalid"
// (not exactly one DER certificate), "spki_pin_failed". Defined in server_flight_pin.cpp.
Result<std::string> leaf_spki_pin(const ServerFlight& flight);

}  // namespace moat::core::tls

// core/tls: reading a client's TLS ClientHello (RFC 8446 4.1.2, RFC 5246 7.4.1.2, RFC 6066)
// from the raw bytes of a connection, without OpenSSL and without consuming anything for the
// peer: the egress proxy peeks it (SNI, offered versions, ALPN) before forwarding the very same
// bytes upstream. Strict on structure, silent on policy (docs/parsers.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "core/tls/handshake.hpp"

namespace moat::core::tls {

constexpr std::uint8_t kHandshakeClientHello = 1;

// TLS protocol versions as they appear on the wire.
constexpr std::uint16_t kSsl30 = 0x0300;
constexpr std::uint16_t kTls10 = 0x0301;
constexpr std::uint16_t kTls11 = 0x0302;
constexpr std::uint16_t kTls12 = 0x0303;
constexpr std::uint16_t kTls13 = 0x0304;

// Extension types (IANA TLS ExtensionType registry).
constexpr std::uint16_t kExtServerName = 0;
constexpr std::uint16_t kExtSupportedGroups = 10;
constexpr std::uint16_t kExtSignatureAlgorithms = 13;
constexpr std::uint16_t kExtAlpn = 16;
constexpr std::uint16_t kExtPreSharedKey = 41;
constexpr std::uint16_t kExtSupportedVersions = 43;
constexpr std::uint16_t kExtKeyShare = 51;

// RFC 8701: GREASE values 0x0A0A, 0x1A1A, ... 0xFAFA (cipher suites, extensions, groups,
// versions, signature algorithms).
constexpr bool is_grease(std::uint16_t value) {
  return (value & 0x0f0f) == 0x0a0a && (value >> 8) == (value & 0xff);
}

// A view of a vector of big-endian uint16 values inside the hello (no copy).
class U16List {
 public:
  U16List() = default;
  explicit U16List(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}
  std::size_t size() const { return bytes_.size() / 2; }
  bool empty() const { return bytes_.size() < 2; }
  std::uint16_t operator[](std::size_t i) const {
    return static_cast<std::uint16_t>((bytes_[2 * i] << 8) | bytes_[2 * i + 1]);
  }
  bool contains(std::uint16_t value) const;
  std::vector<std::uint16_t> to_vector() const;

 private:
  std::span<const std::uint8_t> bytes_;
};

// The fields of a ClientHello. Views point into the reader's buffer (valid while the reader
// lives, is not reset, and is not copied: it is move-only).
struct ClientHello {
  std::uint16_t legacy_version = 0;
  std::span<const std::uint8_t> random;      // 32 bytes
  std::span<const std::uint8_t> session_id;  // 0..32 bytes
  U16List cipher_suites;
  std::span<const std::uint8_t> compression_methods;
  std::vector<std::uint16_t> extension_types;  // in order of appearance (fingerprinting)

  std::optional<std::string_view> server_name;  // the raw host_name bytes of SNI, if present
  bool has_supported_versions = false;
  U16List supported_versions;
  std::vector<std::string_view> alpn;  // protocol names in the client's order
  U16List supported_groups;
  U16List signature_algorithms;
  std::vector<std::uint16_t> key_share_groups;  // groups with a key share, in order
  bool has_grease = false;  // any GREASE value in suites, extensions, versions, groups, shares

  // The highest version offered: from supported_versions if present (GREASE and values that are
  // not 3.x, e.g. drafts, ignored; 0 if nothing is left), else legacy_version capped at TLS 1.2
  // (RFC 8446 4.2.1: without supported_versions, 1.3 cannot be negotiated).
  std::uint16_t max_offered_version() const;
  // Whether some offered version is `version` or newer.
  bool offers_at_least(std::uint16_t version) const { return max_offered_version() >= version; }
  bool has_extension(std::uint16_t type) const;
};

struct ClientHelloLimits {
  HandshakeLimits handshake;  // 64 KiB hello body, 128 KiB of records
};

// Reads the first handshake message of a client connection. Stops at the last byte of the
// ClientHello: it never asks for bytes beyond it. Input that is not TLS fails on the first byte
// (code "not_tls"; an SSLv2-compatible hello, first byte 0x80, is "sslv2_hello").
class ClientHelloReader {
 public:
  explicit ClientHelloReader(ClientHelloLimits limits = {});
  ClientHelloReader(const ClientHelloReader&) = delete;
  ClientHelloReader& operator=(const ClientHelloReader&) = delete;
  ClientHelloReader(ClientHelloReader&&) = default;
  ClientHelloReader& operator=(ClientHelloReader&&) = default;

  ParseStatus feed(std::span<const std::uint8_t> bytes);
  ParseStatus feed(std::string_view bytes);
  ParseStatus status() const { return status_; }

  // Stream bytes that belong to the ClientHello's records so far; after kComplete, exactly the
  // records that carried it. Bytes of the last feed beyond that are not part of the hello.
  std::size_t consumed() const { return reassembler_.wire_bytes(); }
  std::size_t consumed_last_feed() const { return consumed_last_feed_; }
  std::size_t record_count() const { return reassembler_.record_count(); }
  // The least number of further bytes that can make progress (0 once complete or failed).
  std::size_t bytes_needed_hint() const;

  // Valid after kComplete.
  const ClientHello& hello() const { return hello_; }
  // Valid after kError.
  const ParseError& error() const { return error_; }

 private:
  ParseStatus fail(std::string_view code, std::string_view message, Alert alert,
                   std::size_t offset);
  ParseStatus parse_body();
  bool parse_extension(std::uint16_t type, std::span<const std::uint8_t> data, std::size_t offset);

  HandshakeReassembler reassembler_;
  ParseStatus status_ = ParseStatus::kNeedMore;
  std::size_t consumed_last_feed_ = 0;
  ClientHello hello_;
  ParseError error_;
};

}  // namespace moat::core::tls

// core/tls: TLS record layer to handshake messages (RFC 8446 5.1, RFC 5246 6.2.1), without
// OpenSSL: reassembles plaintext handshake messages that may be fragmented over many records,
// each of which may arrive in many pieces. Shared by the ClientHello reader and the (later)
// ServerHello/Certificate readers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "core/base/result.hpp"

namespace moat::core::tls {

enum class ParseStatus : std::uint8_t { kNeedMore, kComplete, kError };

// TLS alert descriptions (RFC 8446 6.2) worth sending when a peer's bytes are refused.
enum class Alert : std::uint8_t {
  kUnexpectedMessage = 10,
  kRecordOverflow = 22,
  kHandshakeFailure = 40,
  kIllegalParameter = 47,
  kDecodeError = 50,
  kProtocolVersion = 70,
};

// Why bytes were refused. `code` and `message` have static storage. `offset`: for record-layer
// errors, the byte offset in the stream; for message-content errors, the offset inside the
// handshake message (counting from its type byte).
struct ParseError {
  std::string_view code;
  std::string_view message;
  Alert alert = Alert::kDecodeError;
  std::size_t offset = Error::kNoOffset;

  // The same as a core Error: downstream for a client's bytes, upstream for a server's.
  Error to_error(ErrorSource source = ErrorSource::kDownstream) const;
};

constexpr std::uint8_t kContentTypeHandshake = 22;
constexpr std::size_t kRecordHeaderBytes = 5;
constexpr std::size_t kHandshakeHeaderBytes = 4;
constexpr std::size_t kMaxPlaintextRecord = 1u << 14;  // RFC 8446 5.1

struct HandshakeLimits {
  // Largest handshake message body accepted. 16 KiB is plenty for classic hellos, but
  // post-quantum key shares (X25519MLKEM768 alone is 1216 bytes, several of them, plus GREASE
  // and padding) and large Certificate messages need more: 64 KiB.
  std::size_t max_message_bytes = 64 * 1024;
  // Cap on record-layer bytes (headers included) read for the messages; bounds the 5-byte
  // per-record overhead of a peer that fragments into tiny records.
  std::size_t max_wire_bytes = 128 * 1024;
};

// Reads records of type handshake (22) and yields one complete handshake message at a time.
//
// feed() consumes bytes up to and including the last byte of the next message and no further, so
// the caller can tell which bytes carried it (`wire_bytes()`), and returns how many of the given
// bytes it took. After kComplete, message_type()/message() are valid until next_message(), which
// continues with the rest of the current record (if any) and then with new records.
class HandshakeReassembler {
 public:
  struct FeedResult {
    ParseStatus status = ParseStatus::kNeedMore;
    std::size_t consumed = 0;
  };

  explicit HandshakeReassembler(HandshakeLimits limits = {});

  FeedResult feed(std::span<const std::uint8_t> bytes);
  ParseStatus status() const { return status_; }

  // Refuse the next message as soon as its type byte arrives unless it has this type
  // (nullopt: any type). Failing early keeps errors independent of how the bytes were split.
  void expect_type(std::optional<std::uint8_t> type) { expected_type_ = type; }

  std::uint8_t message_type() const { return message_.empty() ? 0 : message_[0]; }
  // The whole message, its 4-byte header included. Valid after kComplete.
  std::span<const std::uint8_t> message() const { return message_; }
  // The message without its header.
  std::span<const std::uint8_t> message_body() const {
    return message().subspan(message_.size() < kHandshakeHeaderBytes ? message_.size()
                                                                      : kHandshakeHeaderBytes);
  }
  // Bytes of the current record that follow the message (0: the message ended with its record).
  std::size_t record_bytes_remaining() const { return record_remaining_; }
  // Every byte consumed so far, record headers included.
  std::size_t wire_bytes() const { return wire_bytes_; }
  // Records started so far.
  std::size_t record_count() const { return record_count_; }
  // The least number of further bytes that can change the state (1 at minimum while kNeedMore).
  std::size_t bytes_needed_hint() const;

  void next_message();

  const ParseError& error() const { return error_; }

 private:
  FeedResult fail(std::string_view code, std::string_view message, Alert alert, std::size_t offset,
                  std::size_t consumed);

  HandshakeLimits limits_;
  std::optional<std::uint8_t> expected_type_;
  ParseStatus status_ = ParseStatus::kNeedMore;
  std::uint8_t header_[kRecordHeaderBytes] = {};
  std::size_t header_have_ = 0;
  std::size_t record_remaining_ = 0;  // body bytes of the current record not yet consumed
  bool in_record_ = false;
  std::size_t wire_bytes_ = 0;
  std::size_t record_count_ = 0;
  std::size_t message_length_ = 0;  // body length, once the 4-byte header is in
  std::vector<std::uint8_t> message_;
  ParseError error_;
};

}  // namespace moat::core::tls

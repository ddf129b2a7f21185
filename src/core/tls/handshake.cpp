#include "core/tls/handshake.hpp"

#include <algorithm>
#include <string>

namespace moat::core::tls {

Error ParseError::to_error(ErrorSource source) const {
  Error e = Error::make(std::string(code), std::string(message), source, false);
  e.offset = offset;
  return e;
}

HandshakeReassembler::HandshakeReassembler(HandshakeLimits limits) : limits_(limits) {}

HandshakeReassembler::FeedResult HandshakeReassembler::fail(std::string_view code,
                                                            std::string_view message, Alert alert,
                                                            std::size_t offset,
                                                            std::size_t consumed) {
  error_.code = code;
  error_.message = message;
  error_.alert = alert;
  error_.offset = offset;
  status_ = ParseStatus::kError;
  return {status_, consumed};
}

// Checks are made in stream order as bytes arrive (record header bytes one by one, the
// handshake header as soon as its bytes are in), so the result never depends on how the stream
// was split into pieces.
HandshakeReassembler::FeedResult HandshakeReassembler::feed(std::span<const std::uint8_t> bytes) {
  if (status_ != ParseStatus::kNeedMore) return {status_, 0};
  std::size_t i = 0;
  while (i < bytes.size()) {
    if (wire_bytes_ >= limits_.max_wire_bytes) {
      return fail("too_many_bytes", "handshake spread over too many record-layer bytes",
                  Alert::kHandshakeFailure, wire_bytes_, i);
    }
    if (!in_record_) {
      const std::uint8_t b = bytes[i];
      const std::size_t at = wire_bytes_;
      header_[header_have_++] = b;
      ++i;
      ++wire_bytes_;
      switch (header_have_) {
        case 1:
          // RFC 8446 5: until keys are in use, a handshake is carried by records of type 22 only
          // (an alert or change_cipher_spec here is not a hello we can read).
          if (b != kContentTypeHandshake) {
            return fail("unexpected_content_type", "record is not a handshake record",
                        Alert::kUnexpectedMessage, at, i);
          }
          break;
        case 2:
          if (b != 0x03) {
            return fail("bad_record_version", "record version is not 3.x", Alert::kDecodeError,
                        at, i);
          }
          break;
        case 3:
          // SSL 3.0 (0x0300) to TLS 1.3 (0x0304); RFC 8446 5.1 fixes 0x0301/0x0303 for new
          // senders, older stacks put 0x0300 in a first ClientHello.
          if (b > 0x04) {
            return fail("bad_record_version", "record version outside 0x0300..0x0304",
                        Alert::kDecodeError, at, i);
          }
          break;
        case kRecordHeaderBytes: {
          const std::size_t length = (std::size_t{header_[3]} << 8) | header_[4];
          // RFC 8446 5.1 / RFC 5246 6.2.1: no zero-length handshake fragments; at most 2^14.
          if (length == 0) {
            return fail("empty_record", "zero-length handshake record", Alert::kUnexpectedMessage,
                        at - 1, i);
          }
          if (length > kMaxPlaintextRecord) {
            return fail("record_overflow", "record longer than 2^14 bytes", Alert::kRecordOverflow,
                        at - 1, i);
          }
          header_have_ = 0;
          record_remaining_ = length;
          in_record_ = true;
          ++record_count_;
          break;
        }
        default:
          break;
      }
      continue;
    }

    // Inside a record: take bytes for the handshake header first, then for the body, never past
    // the end of the current message.
    const std::size_t have = message_.size();
    const std::size_t want = have < kHandshakeHeaderBytes ? kHandshakeHeaderBytes - have
                                                          : kHandshakeHeaderBytes + message_length_ - have;
    const std::size_t take = std::min({bytes.size() - i, record_remaining_, want,
                                       limits_.max_wire_bytes - wire_bytes_});
    const std::size_t first_at = wire_bytes_;
    message_.insert(message_.end(), bytes.begin() + static_cast<std::ptrdiff_t>(i),
                    bytes.begin() + static_cast<std::ptrdiff_t>(i + take));
    i += take;
    wire_bytes_ += take;
    record_remaining_ -= take;
    if (record_remaining_ == 0) in_record_ = false;

    if (have == 0 && expected_type_ && message_[0] != *expected_type_) {
      return fail("unexpected_handshake_type", "handshake message of an unexpected type",
                  Alert::kUnexpectedMessage, first_at, i);
    }
    if (have < kHandshakeHeaderBytes && message_.size() == kHandshakeHeaderBytes) {
      message_length_ = (std::size_t{message_[1]} << 16) | (std::size_t{message_[2]} << 8) |
                        message_[3];
      if (message_length_ > limits_.max_message_bytes) {
        return fail("message_too_large", "handshake message exceeds the size limit",
                    Alert::kHandshakeFailure, wire_bytes_ - 1, i);
      }
      message_.reserve(kHandshakeHeaderBytes + message_length_);
    }
    if (message_.size() >= kHandshakeHeaderBytes &&
        message_.size() == kHandshakeHeaderBytes + message_length_) {
      status_ = ParseStatus::kComplete;
      return {status_, i};
    }
  }
  return {status_, bytes.size()};
}

std::size_t HandshakeReassembler::bytes_needed_hint() const {
  if (status_ != ParseStatus::kNeedMore) return 0;
  if (!in_record_) return kRecordHeaderBytes - header_have_;
  const std::size_t have = message_.size();
  const std::size_t want = have < kHandshakeHeaderBytes ? kHandshakeHeaderBytes - have
                                                        : kHandshakeHeaderBytes + message_length_ - have;
  return std::max<std::size_t>(1, std::min(record_remaining_, want));
}

void HandshakeReassembler::next_message() {
  if (status_ != ParseStatus::kComplete) return;
  message_.clear();
  message_length_ = 0;
  status_ = ParseStatus::kNeedMore;
}

}  // namespace moat::core::tls

#include "core/tls/sslv2.hpp"

#include <algorithm>

#include <openssl/rand.h>

namespace moat::core::tls {
namespace {

constexpr std::uint8_t kMsgClientHello = 1;
constexpr std::uint8_t kMsgServerHello = 4;
constexpr std::size_t kChallengeBytes = 16;
// SERVER-HELLO fixed part after the 2-byte header: type, session-id-hit, certificate type,
// version (2), certificate length (2), cipher specs length (2), connection id length (2).
constexpr std::size_t kServerHelloFixed = 11;

std::uint16_t get16(const std::vector<std::uint8_t>& b, std::size_t at) {
  return static_cast<std::uint16_t>((b[at] << 8) | b[at + 1]);
}

}  // namespace

const std::vector<std::uint32_t>& sslv2_cipher_kinds() {
  static const std::vector<std::uint32_t> kKinds = {
      kSsl2DesEde3CbcWithMd5, kSsl2Idea128CbcWithMd5,       kSsl2Rc2128CbcWithMd5,
      kSsl2Rc4128WithMd5,     kSsl2Des64CbcWithMd5,         kSsl2Rc2128CbcExport40WithMd5,
      kSsl2Rc4128Export40WithMd5};
  return kKinds;
}

std::string_view sslv2_cipher_name(std::uint32_t kind) {
  switch (kind) {
    case kSsl2Rc4128WithMd5:
      return "SSL_CK_RC4_128_WITH_MD5";
    case kSsl2Rc4128Export40WithMd5:
      return "SSL_CK_RC4_128_EXPORT40_WITH_MD5";
    case kSsl2Rc2128CbcWithMd5:
      return "SSL_CK_RC2_128_CBC_WITH_MD5";
    case kSsl2Rc2128CbcExport40WithMd5:
      return "SSL_CK_RC2_128_CBC_EXPORT40_WITH_MD5";
    case kSsl2Idea128CbcWithMd5:
      return "SSL_CK_IDEA_128_CBC_WITH_MD5";
    case kSsl2Des64CbcWithMd5:
      return "SSL_CK_DES_64_CBC_WITH_MD5";
    case kSsl2DesEde3CbcWithMd5:
      return "SSL_CK_DES_192_EDE3_CBC_WITH_MD5";
    default:
      return "";
  }
}

int sslv2_cipher_bits(std::uint32_t kind) {
  switch (kind) {
    case kSsl2Rc4128Export40WithMd5:
    case kSsl2Rc2128CbcExport40WithMd5:
      return 40;
    case kSsl2Des64CbcWithMd5:
      return 56;
    case kSsl2DesEde3CbcWithMd5:
      return 112;
    case kSsl2Rc4128WithMd5:
    case kSsl2Rc2128CbcWithMd5:
    case kSsl2Idea128CbcWithMd5:
      return 128;
    default:
      return 0;
  }
}

std::vector<std::uint8_t> build_sslv2_client_hello(std::span<const std::uint32_t> kinds) {
  if (kinds.empty()) kinds = sslv2_cipher_kinds();
  const std::size_t specs = kinds.size() * 3;
  const std::size_t body = 9 + specs + kChallengeBytes;
  // Written by index into a vector sized once (gcc 12 -O2 misreads a push_back sequence as an
  // out-of-bounds memcpy).
  std::vector<std::uint8_t> out(2 + body);
  // 2-byte header: top bit set, 15-bit length (draft-hickman, "SSL Record Header").
  out[0] = static_cast<std::uint8_t>(0x80 | (body >> 8));
  out[1] = static_cast<std::uint8_t>(body);
  out[2] = kMsgClientHello;
  out[3] = static_cast<std::uint8_t>(kSsl20 >> 8);
  out[4] = static_cast<std::uint8_t>(kSsl20);
  out[5] = static_cast<std::uint8_t>(specs >> 8);
  out[6] = static_cast<std::uint8_t>(specs);
  out[7] = 0;  // session id length
  out[8] = 0;
  out[9] = 0;  // challenge length
  out[10] = static_cast<std::uint8_t>(kChallengeBytes);
  std::size_t at = 11;
  for (auto kind : kinds) {
    out[at++] = static_cast<std::uint8_t>(kind >> 16);
    out[at++] = static_cast<std::uint8_t>(kind >> 8);
    out[at++] = static_cast<std::uint8_t>(kind);
  }
  // Only has to differ between hellos; a DRBG failure leaves zeros, the handshake never ends.
  (void)RAND_bytes(out.data() + at, static_cast<int>(kChallengeBytes));
  return out;
}

ParseStatus Sslv2ServerHelloReader::fail(std::string_view code, std::string_view message,
                                         std::size_t offset) {
  status_ = ParseStatus::kError;
  error_ = ParseError{code, message, Alert::kDecodeError, offset};
  return status_;
}

ParseStatus Sslv2ServerHelloReader::feed(std::span<const std::uint8_t> bytes) {
  for (std::size_t i = 0; i < bytes.size() && status_ == ParseStatus::kNeedMore; ++i) {
    std::uint8_t b = bytes[i];
    if (record_.empty() && (b & 0x80) == 0) {
      // Decided on the first byte, so that any split of the stream fails the same way.
      if (b == 21) return fail("tls_alert", "a TLS alert, not an SSL 2.0 record", 0);
      if (b >= 20 && b <= 23) return fail("tls_record", "a TLS record, not an SSL 2.0 record", 0);
      return fail("not_sslv2", "not an SSL 2.0 record with a 2-byte header", 0);
    }
    record_.push_back(b);
    if (record_.size() == 2) {
      length_ = (static_cast<std::size_t>(record_[0] & 0x7f) << 8) | record_[1];
      if (length_ > limits_.max_record) return fail("record_too_long", "record over the limit", 0);
      if (length_ < kServerHelloFixed) return fail("record_too_short", "record shorter than a SERVER-HELLO", 0);
    }
    if (record_.size() == 3 && record_[2] != kMsgServerHello) {
      return fail("not_server_hello", "the first message is not a SERVER-HELLO", 2);
    }
    if (record_.size() >= 2 && record_.size() == 2 + length_) parse();
  }
  return status_;
}

void Sslv2ServerHelloReader::parse() {
  const auto& r = record_;
  std::uint16_t version = get16(r, 5);
  if (version != kSsl20) {
    fail("version_invalid", "SERVER-HELLO version is not 0x0002", 5);
    return;
  }
  std::size_t cert_length = get16(r, 7);
  std::size_t specs_length = get16(r, 9);
  std::size_t id_length = get16(r, 11);
  if (2 + kServerHelloFixed + cert_length + specs_length + id_length != r.size()) {
    fail("lengths_invalid", "SERVER-HELLO lengths do not add up to the record", 7);
    return;
  }
  if (specs_length % 3 != 0) {
    fail("cipher_specs_invalid", "cipher specs length is not a multiple of 3", 9);
    return;
  }
  if (id_length < 16 || id_length > 32) {
    fail("connection_id_invalid", "connection id must be 16..32 bytes", 11);
    return;
  }
  hello_.session_id_hit = r[3] != 0;
  hello_.certificate_type = r[4];
  hello_.version = version;
  std::size_t at = 2 + kServerHelloFixed;
  hello_.certificate = std::span<const std::uint8_t>(r.data() + at, cert_length);
  at += cert_length;
  for (std::size_t i = 0; i < specs_length; i += 3) {
    hello_.cipher_kinds.push_back((std::uint32_t{r[at + i]} << 16) |
                                  (std::uint32_t{r[at + i + 1]} << 8) | r[at + i + 2]);
  }
  at += specs_length;
  hello_.connection_id = std::span<const std::uint8_t>(r.data() + at, id_length);
  status_ = ParseStatus::kComplete;
}

}  // namespace moat::core::tls

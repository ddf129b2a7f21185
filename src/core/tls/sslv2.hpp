// core/tls: SSL 2.0, only as far as `moat scan` needs to tell whether a server still speaks it
// (DROWN, CVE-2016-0800): a CLIENT-HELLO built by hand and a reader for the SERVER-HELLO answer
// (draft-hickman-netscape-ssl-00, "SSL Record Protocol Specification" and C.2/C.3). Nothing past
// the SERVER-HELLO is ever read or sent. The reader is strict on structure: a TLS alert, a TLS
// record or garbage is "not SSL 2.0", never misread as support.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/tls/handshake.hpp"

namespace moat::core::tls {

constexpr std::uint16_t kSsl20 = 0x0002;  // SSL 2.0's version number on the wire

// The seven SSL 2.0 CIPHER-KINDs (draft-hickman C.4), 3 bytes each on the wire.
constexpr std::uint32_t kSsl2Rc4128WithMd5 = 0x010080;
constexpr std::uint32_t kSsl2Rc4128Export40WithMd5 = 0x020080;
constexpr std::uint32_t kSsl2Rc2128CbcWithMd5 = 0x030080;
constexpr std::uint32_t kSsl2Rc2128CbcExport40WithMd5 = 0x040080;
constexpr std::uint32_t kSsl2Idea128CbcWithMd5 = 0x050080;
constexpr std::uint32_t kSsl2Des64CbcWithMd5 = 0x060040;
constexpr std::uint32_t kSsl2DesEde3CbcWithMd5 = 0x0700c0;

// All seven, strongest first (the order a client offers them in).
const std::vector<std::uint32_t>& sslv2_cipher_kinds();
// "SSL_CK_RC4_128_WITH_MD5"; "" for a value that is not one of the seven.
std::string_view sslv2_cipher_name(std::uint32_t kind);
// Secret key bits of a kind (40 for the export ones, 56 for DES, 112 for 3DES, 128 otherwise);
// 0 for an unknown kind.
int sslv2_cipher_bits(std::uint32_t kind);

// A CLIENT-HELLO (msg type 1, version 0x0002) in one record with the 2-byte header, offering
// `kinds` (all seven when empty), no session id and a 16-byte random challenge.
std::vector<std::uint8_t> build_sslv2_client_hello(std::span<const std::uint32_t> kinds = {});

// A parsed SERVER-HELLO (msg type 4). Views point into the reader's copy of the record.
struct Sslv2ServerHello {
  bool session_id_hit = false;
  std::uint8_t certificate_type = 0;  // 1: X.509
  std::uint16_t version = 0;          // 0x0002
  std::span<const std::uint8_t> certificate;
  std::vector<std::uint32_t> cipher_kinds;  // the kinds both sides share, as the server sent them
  std::span<const std::uint8_t> connection_id;  // 16..32 bytes
};

struct Sslv2Limits {
  std::size_t max_record = 0x7fff;  // the 2-byte header's limit (draft-hickman 1.1)
};

// Reads the first record a server sends back to an SSL 2.0 CLIENT-HELLO. Pure, incremental: any
// split of the stream gives the same status, fields and error. kComplete: `hello()` is set.
// Errors (codes): "tls_alert" / "tls_record" (the first byte is a TLS alert / other TLS
// record type: the server speaks TLS only), "not_sslv2" (any other first byte without the 2-byte
// header bit: text, or the 3-byte header form, which servers do not use for a SERVER-HELLO),
// "record_too_short", "not_server_hello" (an SSL 2.0 ERROR or other message), "version_invalid",
// "lengths_invalid" (the three lengths do not add up to the record), "cipher_specs_invalid"
// (not a multiple of 3), "connection_id_invalid" (not 16..32 bytes).
class Sslv2ServerHelloReader {
 public:
  explicit Sslv2ServerHelloReader(Sslv2Limits limits = {}) : limits_(limits) {}
  Sslv2ServerHelloReader(const Sslv2ServerHelloReader&) = delete;  // views into record_
  Sslv2ServerHelloReader& operator=(const Sslv2ServerHelloReader&) = delete;

  ParseStatus feed(std::span<const std::uint8_t> bytes);
  ParseStatus status() const { return status_; }
  // Bytes taken so far; after kComplete, exactly the record.
  std::size_t consumed() const { return record_.size(); }
  const Sslv2ServerHello& hello() const { return hello_; }
  const ParseError& error() const { return error_; }

 private:
  ParseStatus fail(std::string_view code, std::string_view message, std::size_t offset);
  void parse();

  Sslv2Limits limits_;
  ParseStatus status_ = ParseStatus::kNeedMore;
  std::vector<std::uint8_t> record_;  // header and body, as received
  std::size_t length_ = 0;            // body length, known once two bytes are in
  Sslv2ServerHello hello_;
  ParseError error_;
};

}  // namespace moat::core::tls

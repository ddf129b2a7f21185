// scan: the cipher suites `moat scan` offers, and what each one means for grading (key exchange,
// authentication, bulk cipher strength, AEAD, forward secrecy), derived from the IANA name.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace moat::scan {

enum class KeyExchange : std::uint8_t {
  kRsa,     // static RSA key transport: no forward secrecy
  kDh,      // static DH / ECDH (certificate key): no forward secrecy
  kDhe,     // ephemeral finite-field DH
  kEcdhe,   // ephemeral elliptic-curve DH
  kAnonDh,  // DH_anon / ECDH_anon: no authentication
  kTls13,   // TLS 1.3: key exchange is negotiated separately (always ephemeral)
  kOther,
};

struct CipherSuite {
  std::uint16_t id = 0;
  std::string_view name;  // IANA name, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
  KeyExchange kx = KeyExchange::kOther;
  bool ec = false;  // ECDHE / ECDH key exchange (needs supported_groups)
  int bits = 0;     // effective symmetric strength: 0 NULL, 40 export, 56 DES, 112 3DES, ...
  bool aead = false;
  bool cbc = false;
  bool export_grade = false;
  bool null_cipher = false;
  bool rc4 = false;
  bool block64 = false;     // 64-bit block cipher (3DES, IDEA, DES, RC2): SWEET32
  bool tls12_only = false;  // GCM/CCM/ChaCha, SHA-256/384 MACs: TLS 1.2 and up (RFC 5246 A.5)
  bool tls13 = false;       // a TLS 1.3 suite (RFC 8446 B.4): TLS 1.3 only

  bool forward_secret() const {
    return kx == KeyExchange::kDhe || kx == KeyExchange::kEcdhe || kx == KeyExchange::kTls13;
  }
  bool anonymous() const { return kx == KeyExchange::kAnonDh; }
};

// Every suite known here, by id.
std::span<const CipherSuite> all_cipher_suites();
// The suite with this id; a placeholder ("unknown 0xabcd" is not produced here: name empty) if
// the id is not in the table.
CipherSuite find_cipher_suite(std::uint16_t id);
// Classifies an IANA name (exposed for tests).
CipherSuite classify(std::uint16_t id, std::string_view name);

}  // namespace moat::scan

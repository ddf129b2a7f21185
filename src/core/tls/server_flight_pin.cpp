// The one part of the server flight reader that needs OpenSSL: the leaf's SPKI pin. Kept apart so
// that server_hello.cpp stays free of it (and the fuzz target can be built without it).
#include <openssl/x509.h>

#include "core/tls/certificate.hpp"
#include "core/tls/server_hello.hpp"

namespace moat::core::tls {

Result<std::string> leaf_spki_pin(const ServerFlight& flight) {
  if (flight.certificates.empty()) {
    return Error::upstream("no_certificate",
                           std::string("no certificate in the server's flight: ") +
                               std::string(to_string(flight.certificate)));
  }
  const auto der = flight.certificates.front();
  const unsigned char* p = der.data();
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert) {
    std::string why = drain_openssl_errors();
    return Error::upstream("certificate_der_invalid",
                           "the server's leaf certificate does not parse" +
                               (why.empty() ? std::string() : ": " + why));
  }
  if (p != der.data() + der.size()) {
    return Error::upstream("certificate_der_invalid",
                           "the server's leaf certificate has trailing bytes");
  }
  std::string pin = spki_pin(cert.get());
  if (pin.empty()) {
    return Error::upstream("spki_pin_failed", "cannot hash the leaf's SubjectPublicKeyInfo: " +
                                                  drain_openssl_errors());
  }
  return pin;
}

}  // namespace moat::core::tls

// libFuzzer target: certificate input as a user or a server hands it to `moat cert`. Every
// certificate parse_certificates() accepts is inspected field by field and name-matched.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/tls/certificate.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace moat::core::tls;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto certs = parse_certificates(bytes);
  if (!certs) {
    // Errors must carry a message, and must not leave OpenSSL errors behind for the next call.
    if (certs.error().message.empty()) __builtin_trap();
    if (!drain_openssl_errors().empty()) __builtin_trap();
    return 0;
  }
  // A fixed "now" keeps runs reproducible.
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1735689600));
  for (const auto& cert : certs.value()) {
    CertificateInfo info = inspect(cert.get(), now);
    if (info.fingerprint_sha256.size() != 64) __builtin_trap();
    (void)spki_pin(cert.get());
    (void)match_host(info, "www.example.com");
    (void)match_host(info, "127.0.0.1");
    (void)match_host(info, "::1");
    for (const auto& name : info.dns_names) {
      (void)match_dns_name(name, "a.example.com");
      (void)match_dns_name(name, name);
    }
  }
  return 0;
}

#include <string>
#include <utility>
#include <vector>

#include "core/tls/certificate.hpp"

namespace moat::core::tls {
namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ' ';
    out += item;
  }
  return out;
}

std::string or_none(std::string s) { return s.empty() ? "(none)" : s; }

}  // namespace

std::vector<std::pair<std::string, std::string>> certificate_table(const CertificateInfo& c) {
  std::vector<std::string> alt = c.dns_names;
  alt.insert(alt.end(), c.ip_addresses.begin(), c.ip_addresses.end());
  std::string issuer = c.issuer.common_names.empty() ? c.issuer.dn : c.issuer.common_names.back();
  std::string days = std::to_string(c.days_left);
  if (c.status != ValidityStatus::kValid) {
    days += c.status == ValidityStatus::kExpired ? " (expired)" : " (not yet valid)";
  }
  return {
      {"Domain", or_none(c.domain)},
      {"Fingerprint", "SHA256: " + c.fingerprint_sha256},
      {"Pin SHA256", or_none(c.pin_sha256)},
      {"Common names", or_none(join(c.subject.common_names))},
      {"Alternative names", or_none(join(alt))},
      {"Serial Number", or_none(c.serial)},
      {"Key", or_none(c.key.description)},
      {"Issuer", or_none(issuer)},
      {"AIA", or_none(join(c.ca_issuers))},
      {"OCSP", or_none(join(c.ocsp))},
      {"Signature algorithm", or_none(c.signature.name)},
      {"Valid from", or_none(c.not_before)},
      {"Valid until", or_none(c.not_after)},
      {"Days left", days},
  };
}

}  // namespace moat::core::tls

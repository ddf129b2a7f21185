// Renderers of the certificate table: text (aligned), markdown (the vendor page's two-column
// table), JSON (schema moat.cert/v1, documented in docs/cert.md; add fields, never rename).
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "cert/cert.hpp"

namespace moat::cert {
namespace {

using core::tls::CertificateInfo;

constexpr const char* kSchema = "moat.cert/v1";

std::string iso_now(std::chrono::system_clock::time_point now) {
  using namespace std::chrono;
  auto day_point = floor<days>(now);
  year_month_day ymd{day_point};
  hh_mm_ss hms{floor<seconds>(now - day_point)};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     hms.hours().count(), hms.minutes().count(), hms.seconds().count());
}

std::vector<std::pair<std::string, std::string>> rows(const CertificateInfo& c) {
  return core::tls::certificate_table(c);
}

std::string source_line(const Report& r) {
  const Source& s = *r.source;
  std::string where;
  if (s.kind == Source::Kind::kFile) {
    where = "file " + s.path;
  } else {
    where = fmt::format("{}:{} via {}, SNI {}, {} {}", s.host, s.port, s.peer,
                        s.sni.empty() ? "(none)" : s.sni, s.protocol, s.cipher);
  }
  return fmt::format("{}; {} certificate{}", where, r.chain_length, r.chain_length == 1 ? "" : "s");
}

std::string title(const CertificateInfo& c, std::size_t index) {
  return fmt::format("Certificate {} ({}): {}", index + 1, index == 0 ? "leaf" : "chain",
                     c.subject.dn.empty() ? "(empty subject)" : c.subject.dn);
}

std::string markdown_cell(const std::string& value) {
  std::string out;
  for (char ch : printable(value)) {
    if (ch == '|') out += '\\';
    out += ch;
  }
  return out;
}

nlohmann::ordered_json name_json(const core::tls::DistinguishedName& n) {
  return {{"cn", n.common_names.empty() ? nlohmann::ordered_json(nullptr)
                                        : nlohmann::ordered_json(n.common_names.back())},
          {"common_names", n.common_names},
          {"dn", n.dn}};
}

nlohmann::ordered_json nullable(const std::string& s) {
  return s.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(s);
}

nlohmann::ordered_json certificate_json(const CertificateInfo& c, std::size_t index) {
  nlohmann::ordered_json key = {
      {"type", c.key.type},
      {"bits", c.key.bits},
      {"curve", nullable(c.key.curve)},
      {"exponent",
       c.key.exponent ? nlohmann::ordered_json(*c.key.exponent) : nlohmann::ordered_json(nullptr)},
      {"description", c.key.description}};
  return {
      {"position", index},
      {"domain", nullable(c.domain)},
      {"fingerprint_sha256", c.fingerprint_sha256},
      {"pin_sha256", c.pin_sha256},
      {"subject", name_json(c.subject)},
      {"common_names", c.subject.common_names},
      {"alternative_names",
       {{"dns", c.dns_names}, {"ip", c.ip_addresses}, {"email", c.emails}, {"uri", c.uris}}},
      {"serial", c.serial},
      {"key", key},
      {"issuer", name_json(c.issuer)},
      {"aia", {{"ca_issuers", c.ca_issuers}, {"ocsp", c.ocsp}}},
      {"signature_algorithm",
       {{"name", c.signature.name}, {"openssl", c.signature.openssl}, {"oid", c.signature.oid}}},
      {"validity",
       {{"not_before", nullable(c.not_before)},
        {"not_after", nullable(c.not_after)},
        {"days_left", c.days_left},
        {"status", core::tls::to_string(c.status)}}},
      {"version", c.version},
      {"is_ca", c.is_ca},
      {"self_signed", c.self_signed},
  };
}

}  // namespace

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  auto escape = [&](unsigned char b) { out += fmt::format("\\x{:02x}", b); };
  for (std::size_t i = 0; i < text.size();) {
    auto b = static_cast<unsigned char>(text[i]);
    if (b < 0x80) {
      if (b < 0x20 || b == 0x7f)
        escape(b);
      else
        out += static_cast<char>(b);
      ++i;
      continue;
    }
    // Well-formed UTF-8 (no overlongs, surrogates or C1 controls) passes; each other byte is
    // escaped.
    std::size_t len = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc2 ? 2 : 0;
    bool good = len != 0 && b <= 0xf4 && i + len <= text.size();
    std::uint32_t cp = len == 2 ? (b & 0x1f) : len == 3 ? (b & 0x0f) : (b & 0x07);
    for (std::size_t k = 1; good && k < len; ++k) {
      auto c = static_cast<unsigned char>(text[i + k]);
      good = (c & 0xc0) == 0x80;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (good) {
      good = !(len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) &&
             !(len == 4 && (cp < 0x10000 || cp > 0x10ffff)) && !(cp >= 0x80 && cp <= 0x9f);
    }
    if (!good) {
      escape(b);
      ++i;
      continue;
    }
    out.append(text.substr(i, len));
    i += len;
  }
  return out;
}

std::string render_text(const Report& r) {
  std::string out = "Source: " + printable(source_line(r)) + "\n";
  for (std::size_t i = 0; i < r.certificates.size(); ++i) {
    out += "\n" + printable(title(r.certificates[i], i)) + "\n";
    for (const auto& [key, value] : rows(r.certificates[i])) {
      out += fmt::format("  {:<20} {}\n", key, printable(value));
    }
  }
  return out;
}

std::string render_markdown(const Report& r) {
  std::string out;
  bool several = r.certificates.size() > 1;
  for (std::size_t i = 0; i < r.certificates.size(); ++i) {
    if (several)
      out += (i == 0 ? "" : "\n") + std::string("### ") +
             markdown_cell(title(r.certificates[i], i)) + "\n\n";
    out += "| Key | Value |\n|-----|-------|\n";
    for (const auto& [key, value] : rows(r.certificates[i])) {
      out += "| " + key + " | " + markdown_cell(value) + " |\n";
    }
  }
  return out;
}

std::string render_json(const Report& r) {
  const Source& s = *r.source;
  nlohmann::ordered_json source;
  if (s.kind == Source::Kind::kFile) {
    source = {{"kind", "file"}, {"path", s.path}};
  } else {
    source = {{"kind", "tls"},          {"host", s.host}, {"port", s.port},
              {"sni", nullable(s.sni)}, {"peer", s.peer}, {"protocol", s.protocol},
              {"cipher", s.cipher}};
  }
  nlohmann::ordered_json certs = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < r.certificates.size(); ++i)
    certs.push_back(certificate_json(r.certificates[i], i));
  nlohmann::ordered_json doc = {{"schema", kSchema},
                                {"generated_at", iso_now(r.now)},
                                {"source", source},
                                {"chain_length", r.chain_length},
                                {"certificates", certs}};
  // Certificate strings are attacker-controlled: invalid UTF-8 becomes U+FFFD, never a throw.
  return doc.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

}  // namespace moat::cert

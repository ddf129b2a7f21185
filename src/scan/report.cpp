// Renderers: the text report (colour only when asked) and JSON (schema moat.scan/v1, documented
// in docs/scan.md; add fields, never rename or retype them).
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "core/tls/client_hello.hpp"
#include "core/tls/sslv2.hpp"
#include "scan/scan.hpp"

namespace moat::scan {
namespace {

using json = nlohmann::ordered_json;
using core::tls::CertificateInfo;

constexpr const char* kSchema = "moat.scan/v1";

// Certificate strings are attacker-controlled: control bytes become \xNN.
std::string clean(std::string_view text) {
  std::string out;
  for (char ch : text) {
    auto b = static_cast<unsigned char>(ch);
    if (b < 0x20 || b == 0x7f) {
      out += fmt::format("\\x{:02x}", b);
    } else {
      out += ch;
    }
  }
  return out;
}

std::string suite_name(std::uint16_t id) {
  auto s = find_cipher_suite(id);
  return s.name.empty() ? fmt::format("0x{:04x}", id) : std::string(s.name);
}

std::string join(const std::vector<std::string>& items, const char* sep = " ") {
  std::string out;
  for (const auto& i : items) {
    if (!out.empty()) out += sep;
    out += i;
  }
  return out;
}

// The rows of `moat cert show` (the vendor page's certificate table).
std::vector<std::pair<std::string, std::string>> certificate_rows(const CertificateInfo& c) {
  return core::tls::certificate_table(c);
}

struct Paint {
  bool on;
  std::string operator()(const std::string& text, const char* code) const {
    return on ? fmt::format("\x1b[{}m{}\x1b[0m", code, text) : text;
  }
};

const char* severity_colour(Severity s) {
  switch (s) {
    case Severity::kCritical:
    case Severity::kHigh:
      return "31";
    case Severity::kMedium:
      return "33";
    case Severity::kOk:
      return "32";
    default:
      return "0";
  }
}

const char* grade_colour(const std::string& grade) {
  if (grade.starts_with("A")) return "1;32";
  if (grade == "B" || grade == "C") return "1;33";
  return "1;31";
}

json nullable(const std::optional<bool>& v) { return v ? json(*v) : json(nullptr); }

json vulnerability(const VulnerabilityResult& v) {
  return {{"vulnerable", nullable(v.vulnerable)},
          {"detail", v.detail.empty() ? json(nullptr) : json(v.detail)}};
}

std::string sslv2_name(std::uint32_t kind) {
  auto name = core::tls::sslv2_cipher_name(kind);
  return name.empty() ? fmt::format("0x{:06x}", kind) : std::string(name);
}

}  // namespace

std::string render_text(const ScanResult& r, bool color) {
  Paint paint{color};
  std::string out = fmt::format("Target: {}:{} via {}, SNI {}\n", clean(r.host), r.port, r.address,
                                r.sni.empty() ? "(none)" : clean(r.sni));
  if (!r.error.empty()) {
    out += paint("Error: " + r.error, "1;31") + "\n";
    out += fmt::format("Scanned in {:.3f} s with {} connections\n", r.seconds, r.connections);
    return out;
  }
  out += fmt::format("\nGrade: {}  (score {}: protocol {}, key exchange {}, cipher {}; {})\n",
                     paint(r.grade.grade, grade_colour(r.grade.grade)), r.grade.score,
                     r.grade.protocol_score, r.grade.key_exchange_score, r.grade.cipher_score,
                     r.grade.ruleset);
  if (r.grade.grade != r.grade.grade_trust_ignored) {
    out += fmt::format("  if trust issues are ignored: {}\n", r.grade.grade_trust_ignored);
  }
  for (const auto& c : r.grade.caps) {
    out += fmt::format("  capped at {:<2} {} [{}]\n", c.grade, c.reason, c.rule);
  }
  for (const auto& p : r.grade.plus) out += fmt::format("  A+: {}\n", p);

  out += "\nProtocols\n";
  for (const auto& p : r.protocols) {
    out += fmt::format("  {:<8} {}\n", version_name(p.version),
                       p.supported ? paint("yes", p.version <= core::tls::kTls11 ? "33" : "32")
                                   : "no (" + clean(p.detail) + ")");
  }
  for (const auto& p : r.protocols) {
    if (!p.supported || p.sslv2_ciphers.empty()) continue;
    out += fmt::format("\nCipher kinds, {}\n", version_name(p.version));
    for (auto kind : p.sslv2_ciphers) {
      out += fmt::format("  0x{:06x} {:<46} {:>3} bits {}\n", kind, sslv2_name(kind),
                         core::tls::sslv2_cipher_bits(kind), paint("WEAK", "31"));
    }
  }
  for (const auto& p : r.protocols) {
    if (!p.supported || p.version == core::tls::kSsl20) continue;
    std::string order = p.server_order ? (*p.server_order ? "server order" : "client order")
                        : p.suites.size() == 1        ? "one suite"
                                                      : "order not tested";
    out += fmt::format("\nCipher suites, {} ({})\n", version_name(p.version), order);
    for (auto id : p.suites) {
      auto s = find_cipher_suite(id);
      std::vector<std::string> notes;
      if (s.forward_secret()) notes.push_back("FS");
      if (s.aead) notes.push_back("AEAD");
      if (s.bits == 112) notes.push_back(paint("3DES", "33"));
      if (s.kx == KeyExchange::kRsa) notes.push_back(paint("RSA kx", "33"));
      if (s.rc4 || s.export_grade || s.null_cipher || s.anonymous()) notes.push_back(paint("WEAK", "31"));
      out += fmt::format("  0x{:04x} {:<48} {:>3} bits {}{}\n", id, suite_name(id), s.bits,
                         join(notes), p.preferred && *p.preferred == id ? " (preferred)" : "");
    }
  }
  out += "\nKey exchange\n";
  std::vector<std::string> groups;
  for (const auto& g : r.groups) groups.push_back(g.name + " (" + version_name(g.version) + ")");
  out += "  groups       " + (groups.empty() ? std::string("(none)") : join(groups, ", ")) + "\n";
  if (r.dh_bits) out += fmt::format("  DH group     {} bits\n", *r.dh_bits);
  auto tri = [](const std::optional<bool>& v, const char* yes, const char* no) {
    return v ? std::string(*v ? yes : no) : std::string("n/a");
  };
  out += "\nFeatures\n";
  out += "  compression            " + tri(r.compression, "ENABLED", "off") + "\n";
  out += "  secure renegotiation   " + tri(r.secure_renegotiation, "yes", "NO") + "\n";
  out += "  TLS_FALLBACK_SCSV      " + tri(r.fallback_scsv, "yes", "no") + "\n";
  out += "  heartbeat extension    " + tri(r.heartbeat, "yes", "no") + "\n";
  auto vulnerable = [&](const VulnerabilityResult& v) {
    std::string verdict = v.vulnerable ? (*v.vulnerable ? paint("VULNERABLE", "1;31") : std::string("not vulnerable"))
                                       : std::string("n/a");
    return verdict + (v.detail.empty() ? "" : " (" + clean(v.detail) + ")") + "\n";
  };
  out += "  Heartbleed             " + vulnerable(r.heartbleed);
  out += "  CCS injection          " + vulnerable(r.ccs_injection);
  if (r.reference_version && r.reference_suite) {
    out += fmt::format("  modern client gets     {} {}\n", version_name(*r.reference_version),
                       suite_name(*r.reference_suite));
  }
  out += "  HSTS                   ";
  if (!r.http.read) {
    out += "n/a (" + clean(r.http.error) + ")\n";
  } else if (!r.http.hsts) {
    out += "no header\n";
  } else {
    out += clean(*r.http.hsts) + "\n";
  }

  const auto& c = r.certificate;
  out += "\nCertificate\n";
  if (!c.read) {
    out += "  not read: " + c.error + "\n";
  } else {
    out += fmt::format("  trust ({})   {}\n", c.trust_store,
                       c.trusted ? paint("trusted", "32") : paint("NOT trusted: " + c.trust_error, "31"));
    out += fmt::format("  name {}   {}\n", clean(c.name),
                       c.name_matches ? paint("matches", "32") : paint("MISMATCH", "31"));
    for (std::size_t i = 0; i < c.chain.size(); ++i) {
      out += fmt::format("\n  Certificate {} ({}): {}\n", i + 1, i == 0 ? "leaf" : "chain",
                         clean(c.chain[i].subject.dn));
      for (const auto& [k, v] : certificate_rows(c.chain[i])) {
        out += fmt::format("    {:<20} {}\n", k, clean(v));
      }
    }
  }
  out += "\nFindings\n";
  if (r.findings.empty()) out += "  (none)\n";
  for (const auto& f : r.findings) {
    out += fmt::format("  {:<8} {:<28} {}\n", paint(to_string(f.severity), severity_colour(f.severity)),
                       f.id, clean(f.text));
  }
  out += fmt::format("\nScanned in {:.3f} s with {} connections (at most {} at once)\n", r.seconds,
                     r.connections, r.concurrency.peak);
  return out;
}

std::string render_json(const ScanResult& r) {
  json protocols = json::array();
  for (const auto& p : r.protocols) {
    json suites = json::array();
    for (auto id : p.suites) {
      auto s = find_cipher_suite(id);
      suites.push_back({{"id", fmt::format("0x{:04x}", id)},
                        {"name", suite_name(id)},
                        {"bits", s.bits},
                        {"forward_secrecy", s.forward_secret()},
                        {"aead", s.aead}});
    }
    for (auto kind : p.sslv2_ciphers) {
      suites.push_back({{"id", fmt::format("0x{:06x}", kind)},
                        {"name", sslv2_name(kind)},
                        {"bits", core::tls::sslv2_cipher_bits(kind)},
                        {"forward_secrecy", false},
                        {"aead", false}});
    }
    protocols.push_back({{"version", version_name(p.version)},
                         {"supported", p.supported},
                         {"detail", p.detail.empty() ? json(nullptr) : json(p.detail)},
                         {"server_order", nullable(p.server_order)},
                         {"preferred", p.preferred ? json(suite_name(*p.preferred)) : json(nullptr)},
                         {"cipher_suites", suites}});
  }
  json groups = json::array();
  for (const auto& g : r.groups) {
    groups.push_back({{"id", fmt::format("0x{:04x}", g.id)}, {"name", g.name},
                      {"version", version_name(g.version)}});
  }
  json chain = json::array();
  for (const auto& c : r.certificate.chain) {
    std::vector<std::string> alt = c.dns_names;
    alt.insert(alt.end(), c.ip_addresses.begin(), c.ip_addresses.end());
    chain.push_back({{"subject", c.subject.dn},
                     {"domain", c.domain},
                     {"fingerprint_sha256", c.fingerprint_sha256},
                     {"pin_sha256", c.pin_sha256},
                     {"common_names", c.subject.common_names},
                     {"alternative_names", alt},
                     {"serial", c.serial},
                     {"key", {{"type", c.key.type}, {"bits", c.key.bits}, {"description", c.key.description}}},
                     {"issuer", c.issuer.dn},
                     {"aia_ca_issuers", c.ca_issuers},
                     {"signature_algorithm", c.signature.name},
                     {"not_before", c.not_before},
                     {"not_after", c.not_after},
                     {"days_left", c.days_left},
                     {"status", core::tls::to_string(c.status)},
                     {"self_signed", c.self_signed}});
  }
  const auto& c = r.certificate;
  json certificate = {{"read", c.read},
                      {"error", c.error.empty() ? json(nullptr) : json(c.error)},
                      {"trusted", c.read ? json(c.trusted) : json(nullptr)},
                      {"trust_error", c.trust_error.empty() ? json(nullptr) : json(c.trust_error)},
                      {"trust_store", c.trust_store},
                      {"name", c.name},
                      {"name_matches", c.read ? json(c.name_matches) : json(nullptr)},
                      {"chain", chain}};
  json hsts = nullptr;
  if (r.http.hsts) {
    hsts = {{"header", *r.http.hsts},
            {"max_age", r.http.max_age ? json(*r.http.max_age) : json(nullptr)},
            {"include_subdomains", r.http.include_subdomains},
            {"preload", r.http.preload}};
  }
  json http = {{"read", r.http.read},
               {"error", r.http.error.empty() ? json(nullptr) : json(r.http.error)},
               {"status", r.http.read ? json(r.http.status) : json(nullptr)},
               {"hsts", hsts}};
  json caps = json::array();
  for (const auto& cap : r.grade.caps) {
    caps.push_back({{"grade", cap.grade}, {"rule", cap.rule}, {"reason", cap.reason}});
  }
  json grade = nullptr;
  if (r.error.empty()) {
    grade = {{"grade", r.grade.grade},
             {"grade_trust_ignored", r.grade.grade_trust_ignored},
             {"score", r.grade.score},
             {"protocol_score", r.grade.protocol_score},
             {"key_exchange_score", r.grade.key_exchange_score},
             {"cipher_score", r.grade.cipher_score},
             {"caps", caps},
             {"plus", r.grade.plus},
             {"ruleset", r.grade.ruleset}};
  }
  json findings = json::array();
  for (const auto& f : r.findings) {
    findings.push_back({{"id", f.id}, {"severity", to_string(f.severity)}, {"text", f.text}});
  }
  json doc = {
      {"schema", kSchema},
      {"started_at", r.started_at},
      {"target", {{"host", r.host}, {"port", r.port}, {"sni", r.sni.empty() ? json(nullptr) : json(r.sni)},
                  {"address", r.address}}},
      {"error", r.error.empty() ? json(nullptr) : json(r.error)},
      {"grade", grade},
      {"protocols", protocols},
      {"groups", groups},
      {"dh_bits", r.dh_bits ? json(*r.dh_bits) : json(nullptr)},
      {"compression", nullable(r.compression)},
      {"secure_renegotiation", nullable(r.secure_renegotiation)},
      {"fallback_scsv", nullable(r.fallback_scsv)},
      {"heartbeat", nullable(r.heartbeat)},
      {"heartbleed", vulnerability(r.heartbleed)},
      {"ccs_injection", vulnerability(r.ccs_injection)},
      {"reference_client",
       r.reference_suite ? json{{"version", version_name(*r.reference_version)},
                                {"cipher_suite", suite_name(*r.reference_suite)}}
                         : json(nullptr)},
      {"certificate", certificate},
      {"http", http},
      {"findings", findings},
      {"connections", r.connections},
      {"concurrency", {{"limit", r.concurrency.limit},
                       {"final_limit", r.concurrency.final_limit},
                       {"peak", r.concurrency.peak},
                       {"backoffs", r.concurrency.backoffs}}},
      {"seconds", r.seconds},
  };
  return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace moat::scan

// Findings (stable ids, severities) and the grade's inputs, from a scan's facts.
#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "core/tls/client_hello.hpp"
#include "core/tls/client_hello_builder.hpp"
#include "core/tls/sslv2.hpp"
#include "scan/scan.hpp"

namespace moat::scan {
namespace {

namespace tls = core::tls;

int group_rsa_equivalent(std::uint16_t group) {
  switch (group) {
    case tls::kGroupX25519:
    case tls::kGroupSecp256r1:
      return 3072;
    case tls::kGroupX448:
    case tls::kGroupSecp384r1:
      return 7680;
    case tls::kGroupSecp521r1:
      return 15360;
    case tls::kGroupFfdhe2048:
      return 2048;
    case tls::kGroupFfdhe3072:
      return 3072;
    case tls::kGroupFfdhe4096:
      return 4096;
    case tls::kGroupFfdhe6144:
      return 6144;
    case tls::kGroupFfdhe8192:
      return 8192;
    default:
      return 0;
  }
}

}  // namespace

const char* to_string(Severity severity) {
  switch (severity) {
    case Severity::kOk:
      return "OK";
    case Severity::kInfo:
      return "INFO";
    case Severity::kLow:
      return "LOW";
    case Severity::kMedium:
      return "MEDIUM";
    case Severity::kHigh:
      return "HIGH";
    case Severity::kCritical:
      return "CRITICAL";
  }
  return "INFO";
}

GradeInput grade_input(const ScanResult& r) {
  GradeInput in;
  for (const auto& p : r.protocols) {
    if (!p.supported) continue;
    in.versions.push_back(p.version);
    for (auto id : p.suites) in.accepted.push_back({p.version, find_cipher_suite(id)});
  }
  bool ecdhe = false;
  bool dhe = false;
  for (const auto& a : in.accepted) {
    ecdhe = ecdhe || a.suite.kx == KeyExchange::kEcdhe || a.suite.kx == KeyExchange::kTls13;
    dhe = dhe || a.suite.kx == KeyExchange::kDhe;
  }
  if (ecdhe) {
    for (const auto& g : r.groups) {
      int bits = group_rsa_equivalent(g.id);
      if (bits > 0) {
        in.weakest_ephemeral_bits =
            in.weakest_ephemeral_bits ? std::min(*in.weakest_ephemeral_bits, bits) : bits;
      }
    }
  }
  if (dhe && r.dh_bits) {
    in.weakest_dh_bits = *r.dh_bits;
    in.weakest_ephemeral_bits =
        in.weakest_ephemeral_bits ? std::min(*in.weakest_ephemeral_bits, *r.dh_bits) : *r.dh_bits;
  }
  in.compression = r.compression.value_or(false);
  in.heartbleed = r.heartbleed.vulnerable.value_or(false);
  in.ccs_injection = r.ccs_injection.vulnerable.value_or(false);
  in.secure_renegotiation = r.secure_renegotiation;
  in.reference_version = r.reference_version;
  if (r.reference_suite) in.reference_suite = find_cipher_suite(*r.reference_suite);
  const auto& c = r.certificate;
  if (c.read && !c.chain.empty()) {
    const auto& leaf = c.chain.front();
    in.key_type = leaf.key.type;
    in.key_bits = leaf.key.bits;
    in.trusted = c.trusted;
    in.trust_reason = c.trust_error;
    in.name_matches = c.name_matches;
    in.signature = leaf.signature.name;
    std::string sig = leaf.signature.openssl;
    std::transform(sig.begin(), sig.end(), sig.begin(), ::tolower);
    in.md5_or_md2_signature = sig.find("md5") != std::string::npos ||
                              sig.find("md2") != std::string::npos;
    in.sha1_signature = sig.find("sha1") != std::string::npos && !leaf.self_signed;
  }
  if (r.http.read && r.http.max_age) in.hsts_max_age = *r.http.max_age;
  return in;
}

std::vector<Finding> findings(const ScanResult& r) {
  std::vector<Finding> out;
  auto add = [&](std::string id, Severity s, std::string text) {
    out.push_back({std::move(id), s, std::move(text)});
  };
  for (const auto& p : r.protocols) {
    std::string id = "protocol_" + version_name(p.version);
    id.erase(std::remove_if(id.begin(), id.end(), [](char c) { return c == ' ' || c == '.'; }),
             id.end());
    std::transform(id.begin(), id.end(), id.begin(), ::tolower);
    if (!p.supported) continue;
    switch (p.version) {
      case tls::kSsl20:
        add(id, Severity::kCritical, "SSL 2.0 supported (DROWN, CVE-2016-0800)");
        break;
      case tls::kSsl30:
        add(id, Severity::kCritical, "SSL 3.0 supported (POODLE)");
        break;
      case tls::kTls10:
      case tls::kTls11:
        add(id, Severity::kMedium, version_name(p.version) + " supported (deprecated, RFC 8996)");
        break;
      default:
        break;
    }
  }
  if (std::none_of(r.protocols.begin(), r.protocols.end(),
                   [](const ProtocolResult& p) { return p.version == tls::kTls13 && p.supported; })) {
    add("protocol_tls13_missing", Severity::kLow, "TLS 1.3 not supported");
  }
  std::set<std::string> seen;
  auto once = [&](const std::string& id, Severity s, const std::string& text) {
    if (seen.insert(id).second) add(id, s, text);
  };
  for (const auto& p : r.protocols) {
    for (auto id : p.suites) {
      auto s = find_cipher_suite(id);
      std::string name(s.name.empty() ? fmt::format("0x{:04x}", id) : std::string(s.name));
      if (s.export_grade) once("cipher_export", Severity::kCritical, "export suites accepted: " + name);
      if (s.null_cipher) once("cipher_null", Severity::kCritical, "NULL (unencrypted) suites accepted: " + name);
      if (s.anonymous()) once("cipher_anonymous", Severity::kCritical, "anonymous suites accepted: " + name);
      if (s.rc4) once("cipher_rc4", Severity::kHigh, "RC4 accepted: " + name);
      if (s.bits > 0 && s.bits < 112 && !s.export_grade) {
        once("cipher_des", Severity::kHigh, "DES (56-bit) accepted: " + name);
      }
      if (s.bits == 112) once("cipher_3des", Severity::kMedium, "3DES accepted (SWEET32): " + name);
      if (s.kx == KeyExchange::kRsa) {
        once("kx_rsa", Severity::kMedium, "RSA key exchange (no forward secrecy) accepted: " + name);
      }
      if (s.kx == KeyExchange::kDh) {
        once("kx_static_dh", Severity::kMedium, "static DH key exchange accepted: " + name);
      }
    }
  }
  if (r.dh_bits && *r.dh_bits < 2048) {
    add("kx_dh_small", *r.dh_bits < 1024 ? Severity::kHigh : Severity::kMedium,
        fmt::format("DH group of {} bits (LOGJAM; 2048 or more expected)", *r.dh_bits));
  }
  if (r.compression && *r.compression) add("compression", Severity::kHigh, "TLS compression enabled (CRIME)");
  if (r.secure_renegotiation && !*r.secure_renegotiation) {
    add("renegotiation_insecure", Severity::kHigh,
        "secure renegotiation (RFC 5746) not supported");
  }
  if (r.heartbeat && *r.heartbeat) {
    add("heartbeat_extension", Severity::kInfo,
        "heartbeat extension enabled (RFC 6520; no HTTPS client needs it)");
  }
  if (r.heartbleed.vulnerable && *r.heartbleed.vulnerable) {
    add("heartbleed", Severity::kCritical,
        "Heartbleed (CVE-2014-0160): " + r.heartbleed.detail);
  }
  if (r.ccs_injection.vulnerable && *r.ccs_injection.vulnerable) {
    add("ccs_injection", Severity::kCritical,
        "CCS injection (CVE-2014-0224): " + r.ccs_injection.detail);
  }
  if (r.fallback_scsv && !*r.fallback_scsv) {
    add("fallback_scsv_missing", Severity::kLow,
        "TLS_FALLBACK_SCSV not honoured (RFC 7507 downgrade protection)");
  }
  const auto& c = r.certificate;
  if (!c.read) {
    add("certificate_unread", Severity::kHigh, "certificate chain not read: " + c.error);
  } else if (!c.chain.empty()) {
    const auto& leaf = c.chain.front();
    if (!c.trusted) add("certificate_untrusted", Severity::kCritical, "certificate not trusted: " + c.trust_error);
    if (!c.name_matches) {
      add("certificate_name_mismatch", Severity::kCritical,
          "certificate does not cover " + c.name);
    }
    if (leaf.status == tls::ValidityStatus::kExpired) {
      add("certificate_expired", Severity::kCritical, "certificate expired " + leaf.not_after);
    } else if (leaf.status == tls::ValidityStatus::kNotYetValid) {
      add("certificate_not_yet_valid", Severity::kCritical, "certificate valid from " + leaf.not_before);
    } else if (leaf.days_left < 30) {
      add("certificate_expiring", Severity::kMedium, fmt::format("certificate expires in {} days", leaf.days_left));
    }
    int eq = rsa_equivalent_bits(leaf.key.type, leaf.key.bits);
    if (eq > 0 && eq < 2048) {
      add("certificate_key_small", eq < 1024 ? Severity::kCritical : Severity::kHigh,
          "certificate key " + leaf.key.description + " (2048-bit RSA or 256-bit EC expected)");
    }
    if (leaf.self_signed) add("certificate_self_signed", Severity::kHigh, "self-signed certificate");
  }
  if (r.http.read) {
    if (!r.http.hsts) {
      add("hsts_missing", Severity::kLow, "no Strict-Transport-Security header");
    } else if (!r.http.max_age) {
      add("hsts_invalid", Severity::kMedium, "Strict-Transport-Security without a valid max-age");
    } else if (*r.http.max_age < 15552000) {
      add("hsts_short", Severity::kLow,
          fmt::format("HSTS max-age {} s is below 6 months (15552000 s)", *r.http.max_age));
    }
  }
  return out;
}

}  // namespace moat::scan

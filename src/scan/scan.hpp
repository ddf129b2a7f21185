// scan: the `moat scan` mode: probe a TLS server with hand-built ClientHellos (protocols, cipher
// suites, server order, groups, SSL 2.0, Heartbleed, CCS injection), read its certificate chain and HSTS header over
// OpenSSL, grade it per the SSL Labs rating guide, and report as text or JSON (schema
// moat.scan/v1, docs/scan.md). Exit codes: 0 ok, 1 below --fail-under, 2 usage or unreachable.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/tls/certificate.hpp"
#include "scan/cipher_suites.hpp"
#include "scan/grade.hpp"

namespace moat::scan {

struct ScanOptions {
  std::string target;   // HOST[:PORT] or [V6][:PORT]; port 443 by default
  std::string sni;      // default: HOST unless it is an IP literal
  std::string connect;  // IP to connect to instead of resolving HOST
  std::string ca_file;  // trust anchors (PEM) instead of the system store
  double timeout_seconds = 5;    // per connection: connect plus the server's first flight
  double deadline_seconds = 30;  // the whole scan
  std::size_t max_connections = 8;  // probes in flight at once, at most (adaptive below it)
  bool json = false;
  std::string fail_under;  // grade; empty: never fail
  enum class Color { kAuto, kAlways, kNever } color = Color::kAuto;
};

enum class Severity { kOk, kInfo, kLow, kMedium, kHigh, kCritical };
const char* to_string(Severity severity);

struct Finding {
  std::string id;  // stable: "protocol_tls10", "cipher_3des", "hsts_missing"...
  Severity severity = Severity::kInfo;
  std::string text;
};

struct ProtocolResult {
  std::uint16_t version = 0;
  bool supported = false;
  std::string detail;  // why not: "alert protocol_version(70)", "server chose TLS 1.2"
  std::vector<std::uint16_t> suites;  // accepted; the server's choice first when it has an order
  std::optional<bool> server_order;   // unset: fewer than two suites
  std::optional<std::uint16_t> preferred;
  std::vector<std::uint32_t> sslv2_ciphers;  // SSL 2.0 only: the CIPHER-KINDs the server sent
};

// A vulnerability test: `vulnerable` unset when it could not be run (no TLS <= 1.2, no answer).
struct VulnerabilityResult {
  std::optional<bool> vulnerable;
  std::string detail;  // how it was decided: "no heartbeat extension", "alert ...", "timed out"
};

// How many connections were in flight (adaptive: halved on a reset or a failed connect, grown
// back by one after each `limit` successes, never above --connections).
struct ConcurrencyResult {
  std::size_t limit = 0;      // --connections
  std::size_t final_limit = 0;
  std::size_t peak = 0;       // most connections open at once
  std::size_t backoffs = 0;   // times the limit was halved
};

struct GroupResult {
  std::uint16_t id = 0;
  std::string name;  // "x25519", "secp256r1", "ffdhe2048"
  std::uint16_t version = 0;  // the version it was found with
};

struct CertificateResult {
  bool read = false;
  std::string error;  // why not read
  std::string protocol, cipher;  // what OpenSSL negotiated for the chain fetch
  std::vector<core::tls::CertificateInfo> chain;  // leaf first, as sent
  bool trusted = false;
  std::string trust_error;  // X509_verify_cert's reason
  std::string trust_store;  // "system" or the --ca path
  std::string name;         // the name checked
  bool name_matches = false;
};

struct HttpResult {
  bool read = false;
  std::string error;
  int status = 0;
  std::optional<std::string> hsts;  // the raw header value
  std::optional<std::int64_t> max_age;
  bool include_subdomains = false;
  bool preload = false;
};

struct ScanResult {
  std::string host;
  std::uint16_t port = 0;
  std::string sni;
  std::string address;  // "127.0.0.1:8443"
  std::string started_at;  // ISO 8601 UTC
  std::vector<ProtocolResult> protocols;  // SSL 2.0, SSL 3.0 .. TLS 1.3
  std::vector<GroupResult> groups;
  std::optional<int> dh_bits;  // smallest DHE prime seen
  std::optional<bool> compression;
  std::optional<bool> secure_renegotiation;
  std::optional<bool> fallback_scsv;  // unset: not applicable (one version)
  std::optional<bool> heartbeat;      // the heartbeat extension echoed (RFC 6520); unset: no TLS <= 1.2
  VulnerabilityResult heartbleed;     // CVE-2014-0160
  VulnerabilityResult ccs_injection;  // CVE-2014-0224
  std::optional<std::uint16_t> reference_version;  // what a modern client negotiates
  std::optional<std::uint16_t> reference_suite;
  CertificateResult certificate;
  HttpResult http;
  std::vector<Finding> findings;
  Grade grade;
  std::size_t connections = 0;
  ConcurrencyResult concurrency;
  double seconds = 0;
  bool reachable = false;
  bool speaks_tls = false;
  std::string error;  // set when nothing could be learned (unreachable, not TLS)
};

// Human names: "TLS 1.2", "SSL 3.0", "SSL 2.0"; group names.
std::string version_name(std::uint16_t version);
std::string group_name(std::uint16_t group);

// Runs the probes (engine.cpp). Errors only for bad options (kInput) or an unresolvable host;
// an unreachable or non-TLS server is a ScanResult with `error` set.
core::Result<ScanResult> scan(const ScanOptions& options);

// Findings and grade from the facts (findings.cpp); pure.
GradeInput grade_input(const ScanResult& result);
std::vector<Finding> findings(const ScanResult& result);

// Renderers (report.cpp).
std::string render_text(const ScanResult& result, bool color);
std::string render_json(const ScanResult& result);

// The command: scan, render to `out`, errors to `err`; returns the exit code.
int run(const ScanOptions& options, std::ostream& out, std::ostream& err);

}  // namespace moat::scan

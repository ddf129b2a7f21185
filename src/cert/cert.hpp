// cert: the `moat cert` mode: report a certificate (chain) as the vendor page's certificate
// table, print SPKI pins, and verify a presented chain against a policy's pins and names.
// Each command takes an options struct and streams, and returns the process exit code
// (0 ok, 1 a check failed, 2 usage or input error); errors go to `err` as "moat: error: ...".
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/tls/certificate.hpp"

namespace moat::cert {

enum class Format { kText, kMarkdown, kJson };

// Where the certificates come from: a PEM/DER file, or HOST:PORT fetched over TLS.
struct TargetOptions {
  std::string target;   // a path, or HOST:PORT / [V6]:PORT
  std::string sni;      // default: HOST when it is a name
  std::string connect;  // IP to connect to instead of resolving HOST
  double timeout_seconds = 10;
};

// What a target resolved to, with the chain as read or as sent (leaf first).
struct Source {
  enum class Kind { kFile, kTls };
  Kind kind = Kind::kFile;
  std::string path;  // kFile
  std::string host;  // kTls: as given (lowercase)
  std::uint16_t port = 0;
  std::string sni, peer, protocol, cipher;
  std::vector<core::tls::X509Ptr> chain;
};

// Files larger than this are refused before reading.
inline constexpr std::size_t kMaxCertificateFileBytes = 16 * 1024 * 1024;

// A TARGET is a file if something exists at that path or it contains '/'; else it must be
// HOST:PORT. Errors are input errors (exit 2).
core::Result<Source> load_source(const TargetOptions& options);

struct ShowOptions {
  TargetOptions target;
  bool chain = false;
  Format format = Format::kText;
};

struct PinOptions {
  TargetOptions target;
  bool chain = false;
};

struct VerifyOptions {
  TargetOptions target;
  std::vector<std::string> policies;
  std::string host;  // default: --sni, else HOST of HOST:PORT
  std::int64_t min_days = 0;
  bool allow_unpinned = false;
  Format format = Format::kText;  // text or json
};

int show(const ShowOptions& options, std::ostream& out, std::ostream& err);
int pin(const PinOptions& options, std::ostream& out, std::ostream& err);
int verify(const VerifyOptions& options, std::ostream& out, std::ostream& err);

// Renderers (report.cpp). `now` is the reference time of days_left.
struct Report {
  const Source* source = nullptr;
  std::vector<core::tls::CertificateInfo>
      certificates;              // leaf first; only the leaf without --chain
  std::size_t chain_length = 0;  // certificates presented in total
  std::chrono::system_clock::time_point now;
};
std::string render_text(const Report& report);
std::string render_markdown(const Report& report);
std::string render_json(const Report& report);

// Terminal- and table-safe text: control characters and invalid UTF-8 become \xNN escapes
// (certificate fields are attacker-controlled).
std::string printable(std::string_view text);

// One verification check as printed ("ok   pin   ...").
struct Check {
  std::string name;
  bool ok = false;
  std::string detail;
};

}  // namespace moat::cert

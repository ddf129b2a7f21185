// Turning a TARGET argument into a certificate chain: read a file, or fetch over TLS.
#include <arpa/inet.h>
#include <sys/stat.h>

#include <optional>

#include <fmt/format.h>

#include "cert/cert.hpp"
#include "core/base/file.hpp"
#include "core/tls/fetch.hpp"

namespace moat::cert {
namespace {

using core::Error;
using core::Result;

struct HostPort {
  std::string host;
  std::uint16_t port = 0;
};

std::optional<std::uint16_t> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

bool is_ip_literal(const std::string& text) {
  unsigned char buf[16];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

bool valid_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

// "host:port" or "[v6]:port". The host is lowercased; it is checked only for characters a DNS
// name or IPv4 literal may hold (the resolver decides the rest).
std::optional<HostPort> parse_host_port(std::string_view text) {
  HostPort out;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    std::size_t close = text.find("]:");
    if (close == std::string_view::npos) return std::nullopt;
    out.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
    unsigned char buf[16];
    if (inet_pton(AF_INET6, out.host.c_str(), buf) != 1) return std::nullopt;
  } else {
    std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return std::nullopt;
    out.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
    for (char c : out.host) {
      if (!valid_host_char(c)) return std::nullopt;
    }
  }
  auto p = parse_port(port);
  if (!p) return std::nullopt;
  out.port = *p;
  for (char& c : out.host) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

Result<Source> load_source(const TargetOptions& options) {
  const std::string& target = options.target;
  if (target.empty()) return Error::input("target_empty", "TARGET is empty");
  struct stat st {};
  bool exists = ::stat(target.c_str(), &st) == 0;
  if (exists || target.find('/') != std::string::npos) {
    auto bytes = core::read_file_capped(target, kMaxCertificateFileBytes);
    if (!bytes) return bytes.error();
    auto certs = core::tls::parse_certificates(bytes.value());
    if (!certs) {
      Error e = certs.error();
      e.message = target + ": " + e.message;
      return e;
    }
    Source source;
    source.kind = Source::Kind::kFile;
    source.path = target;
    source.chain = std::move(certs.value());
    return source;
  }

  auto hp = parse_host_port(target);
  if (!hp) {
    return Error::input("target_invalid",
                        fmt::format("{}: no such file, and not HOST:PORT", target))
        .with_hint("give a PEM or DER file, or HOST:PORT such as example.com:443 or [::1]:8443");
  }
  if (!(options.timeout_seconds > 0) || options.timeout_seconds > 3600) {
    return Error::input("timeout_invalid",
                        "--timeout must be more than 0 and at most 3600 seconds");
  }
  core::tls::FetchOptions fetch;
  fetch.host = hp->host;
  fetch.port = hp->port;
  fetch.sni = !options.sni.empty() ? options.sni : (is_ip_literal(hp->host) ? "" : hp->host);
  fetch.connect_address = options.connect;
  fetch.timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(options.timeout_seconds * 1000));
  if (!options.connect.empty() && !is_ip_literal(options.connect)) {
    return Error::input("connect_invalid",
                        fmt::format("--connect {}: not an IP address", options.connect));
  }
  auto fetched = core::tls::fetch_chain(fetch);
  if (!fetched) return fetched.error();
  Source source;
  source.kind = Source::Kind::kTls;
  source.host = hp->host;
  source.port = hp->port;
  source.sni = fetched->sni;
  source.peer = fetched->peer;
  source.protocol = fetched->protocol;
  source.cipher = fetched->cipher;
  source.chain = std::move(fetched->chain);
  return source;
}

}  // namespace moat::cert

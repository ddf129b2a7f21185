// Host names and host patterns. Every refusal names the byte where the problem is (for the
// column of a diagnostic) and, where we can guess the intent, a hint with the corrected text.
#include "core/policy/host_pattern.hpp"

#include <algorithm>
#include <cstdio>
#include <vector>

namespace moat::core::policy {
namespace {

constexpr std::size_t kMaxName = 253;  // RFC 1035 2.3.4: 255 octets on the wire, 253 as text
constexpr std::size_t kMaxLabel = 63;  // RFC 1035 2.3.4
// Punycode encoding is quadratic in the label length; labels are at most 63 bytes once encoded,
// so anything much longer is not a label and only feeds a hint.
constexpr std::size_t kMaxPunycodeInput = 1024;
// Hints for whole names are only computed for inputs of a plausible size: an attacker's
// 64 KiB CONNECT target is not worth the quadratic work.
constexpr std::size_t kMaxHintInput = 512;

enum class Subject { kPattern, kHost };

char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Letters, digits and '-' (RFC 952, RFC 1123 2.1), plus '_': not a host name character, but
// real DNS names use it (_dmarc, _acme-challenge, SRV owners) and it cannot be confused with
// anything else.
bool is_label_char(char c) { return (c >= 'a' && c <= 'z') || is_digit(c) || c == '-' || c == '_'; }

// Concatenation without operator+ chains: gcc 12 at -O3 reports a false -Wrestrict on those
// (GCC bug 105651).
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  (out.append(std::string_view(parts)), ...);
  return out;
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = to_lower(c);
  return out;
}

// The WHATWG URL "ends in a number" test: a last label of decimal digits or 0x-hex is read as
// (part of) an IPv4 address by browsers and inet_aton, so it can never be a host name.
bool ends_in_number(std::string_view label) {
  if (label.empty()) return false;
  if (std::all_of(label.begin(), label.end(), is_digit)) return true;
  if (label.size() >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X')) {
    return std::all_of(label.begin() + 2, label.end(), is_hex);
  }
  return false;
}

std::size_t last_label_start(std::string_view name) {
  const std::size_t dot = name.rfind('.');
  return dot == std::string_view::npos ? 0 : dot + 1;
}

std::string describe_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x21 && u < 0x7f) return cat("'", std::string_view(&c, 1), "'");
  if (u == ' ') return "a space";
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", u);
  return std::string("byte ") + buf;
}

// The text with empty labels removed: "*..x.com" -> "*.x.com", ".a.com" -> "a.com".
std::string without_empty_labels(std::string_view text) {
  std::string out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t dot = text.find('.', start);
    if (dot == std::string_view::npos) dot = text.size();
    if (dot > start) {
      if (!out.empty()) out.push_back('.');
      out.append(text.substr(start, dot - start));
    }
    start = dot + 1;
  }
  return out;
}

// "xn--" form of every label of `text`, or "" if it cannot be built (not UTF-8, too long).
std::string punycode_form(std::string_view text) {
  if (text.size() > kMaxHintInput) return {};
  std::string out;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = text.find('.', start);
    auto label =
        to_ascii_label(text.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (!label.ok()) return {};
    out += *label;
    if (dot == std::string_view::npos) break;
    out.push_back('.');
    start = dot + 1;
  }
  return out;
}

Error non_ascii_error(std::string_view text, std::size_t offset, Subject subject) {
  auto e = Error::input("non_ascii",
                        std::string(subject == Subject::kPattern ? "host pattern" : "host name") +
                            " contains non-ASCII characters");
  const std::string ascii = punycode_form(text);
  return std::move(e)
      .with_hint(ascii.empty()
                     ? "internationalized names must be written in their ASCII (punycode, "
                       "xn--) form"
                     : cat("internationalized names must be written in their ASCII form: ", ascii))
      .at(offset);
}

// Checks the labels of `name` (lowercase, trailing dot removed). Offsets are reported as
// `origin` + index in `name`; `full` is the whole lowercased input, for hints.
Result<void> check_labels(std::string_view name, std::size_t origin, std::string_view full,
                          Subject subject) {
  std::size_t start = 0;
  while (true) {
    std::size_t end = name.find('.', start);
    if (end == std::string_view::npos) end = name.size();
    const std::string_view label = name.substr(start, end - start);
    if (label.empty()) {
      const std::string fixed = without_empty_labels(full);
      auto e = Error::input("empty_label", start == 0 && origin == 0
                                               ? "a name cannot start with a dot"
                                               : "empty label (two dots in a row)");
      if (!fixed.empty()) e = std::move(e).with_hint(cat("did you mean ", fixed, "?"));
      return std::move(e).at(origin + start);
    }
    for (std::size_t i = 0; i < label.size(); ++i) {
      const char c = label[i];
      if (is_label_char(c)) continue;
      const std::size_t at = origin + start + i;
      if (c == '*') {
        if (subject == Subject::kHost) {
          return Error::input("invalid_character", "'*' is not allowed in a host name").at(at);
        }
        auto e =
            Error::input("misplaced_wildcard", "'*' is allowed only as the whole leftmost label");
        const std::size_t after_stars = full.find_first_not_of('*');
        if (at == 0 && after_stars != std::string_view::npos) {
          // "*x.com" or "**.x.com": the writer most likely meant "*.x.com".
          const std::string rest = without_empty_labels(full.substr(after_stars));
          if (!rest.empty())
            return std::move(e).with_hint(cat("did you mean *.", rest, "?")).at(at);
        }
        return std::move(e)
            .with_hint(
                "write *.example.com to allow every name below example.com, or list "
                "each name")
            .at(at);
      }
      return Error::input("invalid_character",
                          cat(describe_byte(c), " is not allowed in a host name"))
          .with_hint(
              "labels use letters, digits, '-' and '_' (RFC 1123 2.1); internationalized "
              "names are written in punycode (xn--...)")
          .at(at);
    }
    if (label.size() > kMaxLabel) {
      return Error::input("label_too_long", cat("label of ", std::to_string(label.size()),
                                                " bytes; at most 63 are allowed (RFC 1035 2.3.4)"))
          .at(origin + start);
    }
    if (label.front() == '-' || label.back() == '-') {
      const std::size_t at = label.front() == '-' ? start : end - 1;
      return Error::input("label_hyphen", "a label cannot start or end with '-' (RFC 1123 2.1)")
          .at(origin + at);
    }
    if (end == name.size()) break;
    start = end + 1;
  }
  return {};
}

Result<void> check_name_length(std::string_view name) {
  if (name.size() <= kMaxName) return {};
  return Error::input("name_too_long", cat("name of ", std::to_string(name.size()),
                                           " bytes; at most 253 are allowed (RFC 1035 2.3.4)"))
      .at(kMaxName);
}

Error trailing_dots_error(std::string_view lowered) {
  std::string_view trimmed = lowered;
  while (!trimmed.empty() && trimmed.back() == '.') trimmed.remove_suffix(1);
  auto e = Error::input("trailing_dots", "more than one trailing dot");
  if (!trimmed.empty()) e = std::move(e).with_hint(cat("write ", trimmed));
  return std::move(e).at(lowered.size() - 1);
}

Error numeric_name_error(std::string_view name, std::size_t offset) {
  return Error::input("numeric_name",
                      cat("'", name,
                          "' looks like an IP address but is not a valid one (its last label is "
                          "a number)"))
      .with_hint(
          "write an IPv4 address as four decimal numbers (192.0.2.1); a host name's last "
          "label cannot be numeric")
      .at(offset);
}

HostPattern address_pattern(const net::IpAddress& address) {
  HostPattern p;
  p.kind = HostPattern::Kind::kAddress;
  p.network.base = address;
  p.network.prefix_length = address.is_v4() ? 32 : 128;
  p.text = address.to_string();
  return p;
}

Result<HostPattern> parse_network_pattern(std::string_view text, std::size_t slash) {
  const std::string_view address_text = text.substr(0, slash);
  const std::string_view prefix_text = text.substr(slash + 1);
  auto address = net::parse_ip_strict(address_text);
  if (!address) {
    auto loose = address_text.empty() || address_text.front() == '['
                     ? std::nullopt
                     : net::parse_ip_loose(address_text);
    if (loose) {
      return Error::input("non_canonical_address",
                          cat("'", address_text, "' is not a canonical IP address"))
          .with_hint(cat("write ", loose->to_string(), "/", prefix_text))
          .at(0);
    }
    return Error::input("invalid_network", cat("'", address_text, "' is not an IP address"))
        .with_hint("write a network as address/prefix: 192.0.2.0/24 or 2001:db8::/32")
        .at(0);
  }
  const unsigned max = address->is_v4() ? 32 : 128;
  const std::string range = address->is_v4() ? "0..32" : "0..128";
  if (prefix_text.empty() || prefix_text.size() > 3 ||
      !std::all_of(prefix_text.begin(), prefix_text.end(), is_digit)) {
    return Error::input("invalid_prefix", cat("the prefix length must be a decimal number ", range))
        .at(slash + 1);
  }
  unsigned value = 0;
  for (char c : prefix_text) value = value * 10 + static_cast<unsigned>(c - '0');
  if (value > max) {
    return Error::input("prefix_out_of_range",
                        cat("prefix length ", std::to_string(value), " is out of range ", range))
        .at(slash + 1);
  }
  if (prefix_text.size() > 1 && prefix_text[0] == '0') {
    return Error::input("invalid_prefix", "the prefix length has a leading zero")
        .with_hint(cat("write ", address->to_string(), "/", std::to_string(value)))
        .at(slash + 1);
  }
  const auto length = static_cast<std::uint8_t>(value);
  if (length == max) return address_pattern(*address);
  const net::IpAddress base = net::mask_address(*address, length);
  if (!(base == *address)) {
    return Error::input("host_bits_set",
                        cat("'", text, "' has bits set after the prefix (host bits)"))
        .with_hint(cat("did you mean the network ", base.to_string(), "/", std::to_string(value),
                       ", or the single address ", address->to_string(), "?"))
        .at(0);
  }
  HostPattern p;
  p.kind = HostPattern::Kind::kNetwork;
  p.network.base = base;
  p.network.prefix_length = length;
  p.text = p.network.to_string();
  return p;
}

// RFC 3492 6.1.
std::uint64_t adapt(std::uint64_t delta, std::uint64_t points, bool first) {
  constexpr std::uint64_t kBase = 36, kTmin = 1, kTmax = 26, kSkew = 38, kDamp = 700;
  delta = first ? delta / kDamp : delta / 2;
  delta += delta / points;
  std::uint64_t k = 0;
  while (delta > ((kBase - kTmin) * kTmax) / 2) {
    delta /= kBase - kTmin;
    k += kBase;
  }
  return k + (kBase - kTmin + 1) * delta / (delta + kSkew);
}

char punycode_digit(std::uint64_t d) {
  return static_cast<char>(d < 26 ? 'a' + d : '0' + (d - 26));
}

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
bool decode_utf8(std::string_view text, std::vector<std::uint32_t>& out) {
  for (std::size_t i = 0; i < text.size();) {
    const auto b0 = static_cast<unsigned char>(text[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0, min = 0;
    if (b0 < 0x80) {
      out.push_back(b0);
      ++i;
      continue;
    } else if (b0 >= 0xc2 && b0 <= 0xdf) {
      len = 2, cp = b0 & 0x1f, min = 0x80;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      len = 3, cp = b0 & 0x0f, min = 0x800;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      len = 4, cp = b0 & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (i + len > text.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(text[i + k]);
      if ((b & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    out.push_back(cp);
    i += len;
  }
  return true;
}

}  // namespace

Result<std::string> to_ascii_label(std::string_view utf8_label) {
  if (utf8_label.size() > kMaxPunycodeInput) {
    return Error::input("label_too_long", "label too long to convert to punycode");
  }
  std::vector<std::uint32_t> cps;
  cps.reserve(utf8_label.size());
  if (!decode_utf8(utf8_label, cps)) {
    return Error::input("invalid_utf8", "the label is not valid UTF-8");
  }
  // Only ASCII letters are case-folded. Full UTS #46 mapping (Unicode case folding, NFC,
  // width mapping, IDNA 2008 validity) is deliberately not done: this gives the hint for a
  // name a policy author typed, and a wrong hint is caught when the pattern is parsed again.
  for (auto& cp : cps) {
    if (cp >= 'A' && cp <= 'Z') cp += 'a' - 'A';
  }
  std::string out;
  for (auto cp : cps) {
    if (cp < 0x80) out.push_back(static_cast<char>(cp));
  }
  const std::uint64_t basic = out.size();
  if (basic == cps.size()) return out;  // nothing to encode

  // RFC 3492 6.3, the encoding procedure.
  constexpr std::uint64_t kBase = 36, kTmin = 1, kTmax = 26;
  if (basic > 0) out.push_back('-');
  std::uint64_t n = 0x80, delta = 0, bias = 72, handled = basic;
  while (handled < cps.size()) {
    std::uint64_t m = UINT64_MAX;
    for (auto cp : cps) {
      if (cp >= n && cp < m) m = cp;
    }
    delta += (m - n) * (handled + 1);
    n = m;
    for (auto cp : cps) {
      if (cp < n) ++delta;
      if (cp != n) continue;
      std::uint64_t q = delta;
      for (std::uint64_t k = kBase;; k += kBase) {
        const std::uint64_t t = k <= bias ? kTmin : (k >= bias + kTmax ? kTmax : k - bias);
        if (q < t) break;
        out.push_back(punycode_digit(t + (q - t) % (kBase - t)));
        q = (q - t) / (kBase - t);
      }
      out.push_back(punycode_digit(q));
      bias = adapt(delta, handled + 1, handled == basic);
      delta = 0;
      ++handled;
    }
    ++delta;
    ++n;
  }
  return cat("xn--", out);
}

Result<HostPattern> parse_host_pattern(std::string_view text) {
  if (text.empty()) {
    return Error::input("empty_pattern", "empty host pattern")
        .with_hint(
            "write a name (api.example.com), a wildcard (*.example.com), an address "
            "(192.0.2.1) or a network (192.0.2.0/24)")
        .at(0);
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (static_cast<unsigned char>(text[i]) >= 0x80) {
      return non_ascii_error(text, i, Subject::kPattern);
    }
  }
  if (text.front() == '[') {
    const auto inner = net::parse_ip_loose(text);
    return Error::input("bracketed_address",
                        "IPv6 addresses in patterns are written without "
                        "brackets")
        .with_hint(inner ? cat("write ", inner->to_string()) : "write e.g. 2001:db8::1")
        .at(0);
  }
  if (const std::size_t slash = text.find('/'); slash != std::string_view::npos) {
    return parse_network_pattern(text, slash);
  }
  if (const std::size_t colon = text.find(':'); colon != std::string_view::npos) {
    if (auto v6 = net::parse_ip_strict(text)) return address_pattern(*v6);
    if (text.find(':', colon + 1) == std::string_view::npos) {
      return Error::input("port_in_pattern", "a host pattern has no port")
          .with_hint("list ports in the service's ports; write " +
                     std::string(text.substr(0, colon)))
          .at(colon);
    }
    return Error::input("invalid_ipv6", cat("'", text, "' is not an IPv6 address"))
        .with_hint(
            "write IPv6 addresses in RFC 4291 form without brackets, zone or port, "
            "e.g. 2001:db8::1")
        .at(0);
  }

  const std::string lowered = lowercase(text);
  std::string_view name = lowered;
  if (name.back() == '.') name.remove_suffix(1);  // the DNS root (RFC 1034 3.1)
  if (!name.empty() && name.back() == '.') return trailing_dots_error(lowered);
  if (name.empty()) return Error::input("empty_label", "a name cannot be only a dot").at(0);

  const std::size_t last = last_label_start(name);
  if (ends_in_number(name.substr(last))) {
    if (auto v4 = net::parse_ip_strict(name)) return address_pattern(*v4);
    if (auto loose = net::parse_ip_loose(name)) {
      return Error::input("non_canonical_address",
                          cat("'", text, "' is an IP address in a non-canonical form"))
          .with_hint(cat("write ", loose->to_string()))
          .at(0);
    }
    return numeric_name_error(text, last);
  }

  HostPattern p;
  if (name == "*") {
    return Error::input("wildcard_without_parent", "a wildcard needs a parent name")
        .with_hint("write *.example.com to allow every name below example.com")
        .at(0);
  }
  if (name.starts_with("*.")) {
    const std::string_view parent = name.substr(2);
    if (auto r = check_labels(parent, 2, lowered, Subject::kPattern); !r) return r.error();
    p.kind = HostPattern::Kind::kWildcard;
    p.name = std::string(parent);
  } else {
    if (auto r = check_labels(name, 0, lowered, Subject::kPattern); !r) return r.error();
    p.kind = HostPattern::Kind::kExact;
    p.name = std::string(name);
  }
  if (auto r = check_name_length(name); !r) return r.error();
  p.text = std::string(name);
  return p;
}

Result<Destination> normalize_host(std::string_view host) {
  if (host.empty()) return Error::input("empty_host", "empty host name").at(0);
  for (std::size_t i = 0; i < host.size(); ++i) {
    const char c = host[i];
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x80) return non_ascii_error(host, i, Subject::kHost);
    if (u < 0x20 || u == 0x7f) {
      return Error::input("control_character",
                          cat("control character ", describe_byte(c), " in host name"))
          .at(i);
    }
    switch (c) {
      case ' ':
        return Error::input("invalid_character", "space in host name").at(i);
      case '%':
        return Error::input("percent_encoding", "'%' in host name")
            .with_hint(
                "percent-encoded names are not decoded, and IPv6 zone ids are not "
                "supported; send the name itself")
            .at(i);
      case '@':
        return Error::input("userinfo", "'@' in host name")
            .with_hint("a user name (user@host) is not part of a host")
            .at(i);
      case '/':
      case '\\':
        return Error::input("invalid_character", cat(describe_byte(c), " in host name"))
            .with_hint("a host has no path")
            .at(i);
      default:
        break;
    }
  }
  Destination d;
  if (host.front() == '[' || host.find(':') != std::string_view::npos) {
    auto v6 = net::parse_ip_loose(host);
    if (!v6 || v6->is_v4()) {
      const std::size_t colon = host.find(':');
      if (host.front() != '[' && host.find(':', colon + 1) == std::string_view::npos) {
        return Error::input("unexpected_port", "':' in host name")
            .with_hint("a host name has no port here")
            .at(colon);
      }
      return Error::input("invalid_ipv6", cat("'", host, "' is not an IPv6 address")).at(0);
    }
    d.kind = Destination::Kind::kAddress;
    d.address = *v6;
    d.host = v6->to_string();
    return d;
  }

  std::string lowered = lowercase(host);
  std::string_view name = lowered;
  if (name.back() == '.') name.remove_suffix(1);
  if (!name.empty() && name.back() == '.') return trailing_dots_error(lowered);
  if (name.empty()) return Error::input("empty_label", "a name cannot be only a dot").at(0);

  // An address in any spelling a resolver or browser takes is an address, not a name: the
  // policy must see "2130706433" as 127.0.0.1.
  if (auto ip = net::parse_ip_loose(name)) {
    d.kind = Destination::Kind::kAddress;
    d.address = *ip;
    d.host = ip->to_string();
    return d;
  }
  const std::size_t last = last_label_start(name);
  if (ends_in_number(name.substr(last))) return numeric_name_error(host, last);
  if (auto r = check_labels(name, 0, lowered, Subject::kHost); !r) return r.error();
  if (auto r = check_name_length(name); !r) return r.error();
  lowered.resize(name.size());
  d.kind = Destination::Kind::kName;
  d.host = std::move(lowered);
  return d;
}

Result<Destination> parse_destination(std::string_view text, std::uint16_t default_port) {
  if (text.empty()) return Error::input("empty_destination", "empty destination").at(0);
  std::string_view host = text;
  std::string_view port;
  bool has_port = false;
  std::size_t port_offset = 0;
  if (text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return Error::input("unclosed_bracket", "'[' without a closing ']'").at(0);
    }
    host = text.substr(0, close + 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') {
        return Error::input("invalid_destination", "unexpected text after ']'")
            .with_hint("write [address] or [address]:port")
            .at(close + 1);
      }
      has_port = true;
      port_offset = close + 2;
      port = text.substr(port_offset);
    }
  } else if (const std::size_t colon = text.find(':'); colon != std::string_view::npos) {
    if (text.find(':', colon + 1) != std::string_view::npos) {
      // "2001:db8::1:443" is both an address and an address with a port (RFC 3986 3.2.2).
      auto e = Error::input("ambiguous_ipv6", "an IPv6 address must be in brackets here");
      const bool whole = net::parse_ip_strict(text).has_value();
      return std::move(e)
          .with_hint(whole ? cat("write [", text, "] or [", text, "]:port")
                           : "write [address] or [address]:port")
          .at(0);
    }
    host = text.substr(0, colon);
    has_port = true;
    port_offset = colon + 1;
    port = text.substr(port_offset);
  }

  auto dest = normalize_host(host);
  if (!dest.ok()) return dest.error();  // offsets agree: the host starts at byte 0

  if (!has_port) {
    if (default_port == 0) {
      return Error::input("port_required", "a port is required")
          .with_hint("write host:port, or [address]:port for IPv6")
          .at(text.size());
    }
    dest->port = default_port;
    return dest;
  }
  const std::string port_hint = "a port is a decimal number from 1 to 65535";
  if (port.empty()) {
    return Error::input("missing_port", "':' without a port").with_hint(port_hint).at(port_offset);
  }
  for (std::size_t i = 0; i < port.size(); ++i) {
    if (!is_digit(port[i])) {
      return Error::input("invalid_port", cat(describe_byte(port[i]), " in port"))
          .with_hint(port_hint)
          .at(port_offset + i);
    }
  }
  // Leading zeros are refused: "0443" is 443 to some parsers and octal 291 to others.
  const std::size_t significant = port.find_first_not_of('0');
  if (port.size() > 1 && port[0] == '0') {
    auto e = Error::input("invalid_port", "port with a leading zero");
    if (significant != std::string_view::npos && port.size() - significant <= 5) {
      e = std::move(e).with_hint(cat("write ", port.substr(significant)));
    }
    return std::move(e).at(port_offset);
  }
  std::uint32_t value = 0;
  if (port.size() <= 5) {
    for (char c : port) value = value * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (port.size() > 5 || value == 0 || value > 65535) {
    return Error::input("port_out_of_range", cat("port ", port, " is out of range"))
        .with_hint(port_hint)
        .at(port_offset);
  }
  dest->port = static_cast<std::uint16_t>(value);
  return dest;
}

}  // namespace moat::core::policy

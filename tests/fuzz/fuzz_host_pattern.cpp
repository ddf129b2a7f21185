// Fuzzes host patterns, host names, destinations and IP parsing, checking that whatever is
// accepted is stable: normalized forms re-parse to themselves, and the matcher agrees with the
// pattern it was built from.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/net/address.hpp"
#include "core/policy/host_pattern.hpp"
#include "core/policy/matcher.hpp"

namespace {

using namespace moat::core;  // NOLINT: a fuzz target, not library code

[[noreturn]] void fail(const char* what, std::string_view input) {
  std::fprintf(stderr, "invariant broken: %s (input %zu bytes: '%.*s')\n", what, input.size(),
               static_cast<int>(input.size() > 300 ? 300 : input.size()), input.data());
  std::abort();
}

void check(bool ok, const char* what, std::string_view input) {
  if (!ok) fail(what, input);
}

void check_error(const Error& e, std::string_view input) {
  check(!e.code.empty() && !e.message.empty(), "error without code or message", input);
  check(e.offset == Error::kNoOffset || e.offset <= input.size(), "error offset past the end",
        input);
}

void check_address(const net::IpAddress& a, std::string_view input) {
  const std::string text = a.to_string();
  auto strict = net::parse_ip_strict(text);
  check(strict.has_value() && *strict == a, "canonical address does not re-parse", input);
  check(strict->to_string() == text, "canonical address text is not stable", input);
  auto loose = net::parse_ip_loose(text);
  check(loose.has_value() && *loose == a, "loose parse disagrees on canonical text", input);
  (void)net::to_string(net::classify(a));
  if (!a.is_v4()) {
    auto v4 = a.embedded_v4();
    if (v4) (void)net::classify(*v4);
  } else {
    for (std::size_t i = 4; i < 16; ++i) check(a.bytes[i] == 0, "v4 with stray bytes", input);
  }
}

void fuzz_pattern(std::string_view input) {
  auto p = policy::parse_host_pattern(input);
  if (!p.ok()) {
    check_error(p.error(), input);
    return;
  }
  auto again = policy::parse_host_pattern(p->text);
  check(again.ok(), "normalized pattern does not re-parse", input);
  check(again->kind == p->kind && again->text == p->text && again->name == p->name &&
            again->network == p->network,
        "normalized pattern re-parses differently", input);
  check(p->text.size() <= 253 + 4 || p->kind == policy::HostPattern::Kind::kNetwork ||
            p->kind == policy::HostPattern::Kind::kAddress,
        "pattern text too long", input);

  using Kind = policy::HostPattern::Kind;
  // The matcher agrees with the pattern's meaning.
  auto owned = std::make_shared<policy::Policy>();
  policy::Service s;
  s.id = "s";
  s.hosts.push_back(*p);
  s.ports = {443};
  owned->services.push_back(std::move(s));
  const std::vector<std::shared_ptr<const policy::Policy>> set = {owned};
  const policy::Matcher matcher(set);

  switch (p->kind) {
    case Kind::kExact: {
      // An exact pattern is a valid destination name, and the matcher finds it.
      auto d = policy::normalize_host(p->name);
      check(d.ok() && d->kind == policy::Destination::Kind::kName && d->host == p->name,
            "exact pattern is not a normalized host name", input);
      d->port = 443;
      check(matcher.match(*d).verdict == policy::Verdict::kAllowed, "exact pattern misses", input);
      d->port = 80;
      check(matcher.match(*d).verdict == policy::Verdict::kPortNotAllowed, "port ignored", input);
      break;
    }
    case Kind::kWildcard: {
      check(p->text == "*." + p->name, "wildcard text", input);
      check(matcher.match_name(p->name, 443).verdict == policy::Verdict::kHostNotInPolicy,
            "wildcard matches its parent", input);
      check(matcher.match_name("x." + p->name, 443).verdict == policy::Verdict::kAllowed,
            "wildcard misses a child", input);
      check(matcher.match_name("x.y." + p->name, 443).verdict == policy::Verdict::kAllowed,
            "wildcard misses a grandchild", input);
      check(matcher.match_name("x" + p->name, 443).verdict == policy::Verdict::kHostNotInPolicy,
            "wildcard matches a string suffix", input);
      break;
    }
    case Kind::kAddress:
    case Kind::kNetwork: {
      check(p->name.empty(), "address pattern with a name", input);
      check(net::mask_address(p->network.base, p->network.prefix_length) == p->network.base,
            "network with host bits", input);
      auto n = net::parse_network(p->text);
      check(n.has_value() && *n == p->network, "network text does not re-parse", input);
      check_address(p->network.base, input);
      policy::Destination d;
      d.kind = policy::Destination::Kind::kAddress;
      d.address = p->network.base;
      d.host = d.address.to_string();
      d.port = 443;
      check(matcher.match(d).verdict == policy::Verdict::kAllowed, "network misses its base",
            input);
      check(matcher.match_name(d.host, 443).verdict == policy::Verdict::kHostNotInPolicy,
            "a name matched an address pattern", input);
      break;
    }
  }
}

void check_destination(const policy::Destination& d, std::string_view input) {
  auto again = policy::normalize_host(d.host);
  check(again.ok(), "normalized host does not normalize again", input);
  check(again->kind == d.kind && again->host == d.host, "normalize is not idempotent", input);
  if (d.kind == policy::Destination::Kind::kAddress) {
    check(again->address == d.address, "address changed on renormalization", input);
    check(d.host == d.address.to_string(), "address host is not canonical", input);
    check_address(d.address, input);
  } else {
    check(!d.host.empty() && d.host.size() <= 253, "name length", input);
    for (char c : d.host) {
      check((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.',
            "name with a character outside [a-z0-9._-]", input);
    }
    check(d.host.back() != '.', "trailing dot kept", input);
    check(!net::parse_ip_loose(d.host).has_value(), "an address was kept as a name", input);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  fuzz_pattern(input);

  if (auto d = policy::normalize_host(input); d.ok()) {
    check_destination(*d, input);
  } else {
    check_error(d.error(), input);
  }

  if (auto d = policy::parse_destination(input, 443); d.ok()) {
    check(d->port != 0, "port zero accepted", input);
    check_destination(*d, input);
    // Printing the destination back and parsing it again gives the same destination.
    const std::string printed =
        d->kind == policy::Destination::Kind::kAddress && !d->address.is_v4()
            ? "[" + d->host + "]:" + std::to_string(d->port)
            : d->host + ":" + std::to_string(d->port);
    auto again = policy::parse_destination(printed, 0);
    check(again.ok() && again->host == d->host && again->port == d->port,
          "printed destination does not re-parse", input);
  } else {
    check_error(d.error(), input);
  }

  if (auto a = net::parse_ip_loose(input)) check_address(*a, input);
  if (auto a = net::parse_ip_strict(input)) {
    check_address(*a, input);
    check(net::parse_ip_loose(input) == a, "strict and loose parses disagree", input);
  }
  if (auto n = net::parse_network(input)) {
    check(n->contains(n->base), "network does not contain its base", input);
    auto again = net::parse_network(n->to_string());
    check(again.has_value() && *again == *n, "network text does not re-parse", input);
  }

  if (size <= 256) {
    auto label = policy::to_ascii_label(input);
    if (label.ok()) {
      for (char c : *label) {
        check(static_cast<unsigned char>(c) < 0x80, "punycode output is not ASCII", input);
        check(!(c >= 'A' && c <= 'Z'), "punycode output has uppercase", input);
      }
    }
  }
  return 0;
}

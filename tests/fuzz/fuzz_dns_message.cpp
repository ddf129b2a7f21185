// libFuzzer target: DNS responses are untrusted bytes from the network. Each input is parsed as
// the response to fixed queries (example.com A and AAAA, id 0xbeef), once more with the id the
// input carries (so mutations get past the id check), and names are read at its first offsets
// (the decompressor alone). Invariants are checked; a violation traps.
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/dns/dns_message.hpp"
#include "fuzz_check.hpp"

namespace {

using moat::fuzz::check;
using moat::core::net::IpAddress;
namespace dns = moat::core::net::dns;

constexpr std::uint16_t kFuzzId = 0xbeef;

void parse_as(std::span<const std::uint8_t> message, std::uint16_t id, dns::QueryType type) {
  auto r = dns::parse_response(message, id, "example.com", type);
  if (!r) {
    check(!r.error().code.empty());
    check(r.error().offset == moat::core::Error::kNoOffset || r.error().offset <= message.size());
    return;
  }
  const auto family =
      type == dns::QueryType::kA ? IpAddress::Family::kV4 : IpAddress::Family::kV6;
  for (const auto& address : r->addresses) check(address.family == family);
  check(r->ttl <= 0x7fffffffu);
  check(!r->negative_ttl || *r->negative_ttl <= 0x7fffffffu);
  check(r->cname_hops <= dns::kMaxCnameHops);
  check(r->cname_hops > 0 || r->canonical_name == "example.com");
  check(!r->canonical_name.empty() || r->cname_hops > 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> message(data, size);
  parse_as(message, kFuzzId, dns::QueryType::kA);
  parse_as(message, kFuzzId, dns::QueryType::kAaaa);
  if (size >= 2) {
    const auto own_id = static_cast<std::uint16_t>((data[0] << 8) | data[1]);
    parse_as(message, own_id, (data[1] & 1) ? dns::QueryType::kAaaa : dns::QueryType::kA);
  }
  // The decompressor on its own, at the first offsets (12 is where the question starts).
  for (std::size_t offset = 0; offset < size && offset < 48; ++offset) {
    auto name = dns::read_name(message, offset);
    if (!name) continue;
    check(name->end > offset && name->end <= size);
    check(name->text.size() <= 4 * dns::kMaxNameWireLength);  // \DDD escapes at most x4
  }
  return 0;
}

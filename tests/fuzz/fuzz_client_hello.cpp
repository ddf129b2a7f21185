// Fuzzes the ClientHello reader the egress proxy runs on the first bytes a client sends through
// a tunnel. Input: one control byte (limits and how the rest is split into pieces), then the
// bytes. Checks that reading all at once and piece by piece agree exactly, that the reader never
// consumes more than it was given nor anything past the hello, and that a complete hello,
// re-fragmented into other record sizes, reads the same. Also drives the bare reassembler.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/tls/client_hello.hpp"
#include "fuzz_check.hpp"

namespace {

using moat::fuzz::check;
using moat::core::tls::ClientHello;
using moat::core::tls::ClientHelloLimits;
using moat::core::tls::ClientHelloReader;
using moat::core::tls::HandshakeReassembler;
using moat::core::tls::ParseStatus;

bool same_hello(const ClientHello& a, const ClientHello& b) {
  return a.legacy_version == b.legacy_version && a.server_name == b.server_name &&
         a.has_supported_versions == b.has_supported_versions &&
         a.supported_versions.to_vector() == b.supported_versions.to_vector() &&
         a.cipher_suites.to_vector() == b.cipher_suites.to_vector() && a.alpn == b.alpn &&
         a.supported_groups.to_vector() == b.supported_groups.to_vector() &&
         a.signature_algorithms.to_vector() == b.signature_algorithms.to_vector() &&
         a.key_share_groups == b.key_share_groups && a.extension_types == b.extension_types &&
         a.has_grease == b.has_grease && a.max_offered_version() == b.max_offered_version() &&
         std::equal(a.session_id.begin(), a.session_id.end(), b.session_id.begin(),
                    b.session_id.end());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t control = data[0];
  const std::span<const std::uint8_t> input(data + 1, size - 1);

  ClientHelloLimits limits;
  if (control & 0x80) {  // small limits, so the fuzzer reaches them
    limits.handshake.max_message_bytes = 512;
    limits.handshake.max_wire_bytes = 1024;
  }

  ClientHelloReader whole(limits);
  whole.feed(input);

  ClientHelloReader split(limits);
  const std::size_t max_piece = (control & 0x7f) + 1u;
  std::uint32_t state = 0x85ebca6bu ^ control;
  std::size_t pos = 0;
  std::size_t used = 0;
  while (pos < input.size() && split.status() == ParseStatus::kNeedMore) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    const std::size_t n = std::min<std::size_t>(input.size() - pos, 1 + state % max_piece);
    split.feed(input.subspan(pos, n));
    used += split.consumed_last_feed();
    pos += n;
    check(split.status() != ParseStatus::kNeedMore || split.bytes_needed_hint() >= 1);
  }

  check(whole.status() == split.status());
  check(whole.consumed() <= input.size());
  if (whole.status() == ParseStatus::kError) {
    check(whole.error().code == split.error().code);
    check(whole.error().offset == split.error().offset);
    check(!whole.error().code.empty() && !whole.error().message.empty());
  } else if (whole.status() == ParseStatus::kComplete) {
    check(whole.consumed() == split.consumed() && whole.consumed() == used);
    check(same_hello(whole.hello(), split.hello()));
    const ClientHello& h = whole.hello();
    check(h.random.size() == 32 && h.session_id.size() <= 32 && !h.cipher_suites.empty());
    if (h.server_name) check(!h.server_name->empty());
    for (auto name : h.alpn) check(!name.empty());
    check(whole.feed(input) == ParseStatus::kComplete && whole.consumed_last_feed() == 0);

    // Re-fragment the hello into records of another size: same fields.
    std::vector<std::uint8_t> message;
    const auto wire = input.first(whole.consumed());
    for (std::size_t at = 0; at + 5 <= wire.size();) {
      const std::size_t n = (std::size_t{wire[at + 3]} << 8) | wire[at + 4];
      message.insert(message.end(), wire.begin() + static_cast<std::ptrdiff_t>(at + 5),
                     wire.begin() + static_cast<std::ptrdiff_t>(at + 5 + n));
      at += 5 + n;
    }
    const std::size_t fragment = 1 + (control % 61);
    std::vector<std::uint8_t> rewrapped;
    for (std::size_t at = 0; at < message.size(); at += fragment) {
      const std::size_t n = std::min(fragment, message.size() - at);
      rewrapped.insert(rewrapped.end(), {22, 3, 1, 0, static_cast<std::uint8_t>(n)});
      rewrapped.insert(rewrapped.end(), message.begin() + static_cast<std::ptrdiff_t>(at),
                       message.begin() + static_cast<std::ptrdiff_t>(at + n));
    }
    ClientHelloLimits roomy;
    roomy.handshake.max_wire_bytes = rewrapped.size();
    ClientHelloReader again(roomy);
    again.feed(rewrapped);
    check(again.status() == ParseStatus::kComplete);
    check(again.consumed() == rewrapped.size());
    check(same_hello(h, again.hello()));
  } else {
    check(whole.consumed() == input.size());
  }

  // The bare reassembler, any message types, one message after another.
  HandshakeReassembler reassembler(limits.handshake);
  std::span<const std::uint8_t> rest = input;
  while (!rest.empty()) {
    const auto result = reassembler.feed(rest);
    check(result.consumed <= rest.size());
    rest = rest.subspan(result.consumed);
    if (result.status != ParseStatus::kComplete) break;
    check(reassembler.message().size() >= 4);
    reassembler.next_message();
  }
  return 0;
}

// Fuzzes the server flight reader the egress runs on an upstream's first bytes (and `moat scan` on
// what a probed server answers). Input: one control byte (stop point, limits, piece sizes), then
// the stream. Checks that reading all at once and piece by piece agree exactly (status, error
// code and offset, every field), that the reader never takes more than it was given nor anything
// after it completed, that the flight is consistent with itself, and that a completed flight
// re-fragmented into records of another size reads the same.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/tls/server_hello.hpp"
#include "fuzz_check.hpp"

namespace {

using moat::fuzz::check;
using moat::fuzz::same_bytes;
using moat::core::tls::CertificateVisibility;
using moat::core::tls::kContentTypeHandshake;
using moat::core::tls::kTls13;
using moat::core::tls::ParseStatus;
using moat::core::tls::ServerFlight;
using moat::core::tls::ServerFlightLimits;
using moat::core::tls::ServerFlightReader;
using moat::core::tls::ServerHello;

bool same_hello(const ServerHello& a, const ServerHello& b) {
  return a.legacy_version == b.legacy_version && same_bytes(a.random, b.random) &&
         a.is_hello_retry_request == b.is_hello_retry_request &&
         same_bytes(a.session_id, b.session_id) && a.cipher_suite == b.cipher_suite &&
         a.compression == b.compression && a.extension_types == b.extension_types &&
         a.selected_version == b.selected_version && a.key_share_group == b.key_share_group &&
         a.pre_shared_key == b.pre_shared_key && a.alpn == b.alpn &&
         a.renegotiation_info == b.renegotiation_info &&
         a.extended_master_secret == b.extended_master_secret && a.cookie == b.cookie &&
         a.downgrade_sentinel == b.downgrade_sentinel;
}

bool same_flight(const ServerFlight& a, const ServerFlight& b) {
  if (a.hello.has_value() != b.hello.has_value()) return false;
  if (a.hello && !same_hello(*a.hello, *b.hello)) return false;
  if (a.certificates.size() != b.certificates.size()) return false;
  for (std::size_t i = 0; i < a.certificates.size(); ++i) {
    if (!same_bytes(a.certificates[i], b.certificates[i])) return false;
  }
  const bool same_alert = a.alert.has_value() == b.alert.has_value() &&
                          (!a.alert || (a.alert->level == b.alert->level &&
                                        a.alert->description == b.alert->description));
  return same_alert && a.message_types == b.message_types && a.certificate == b.certificate &&
         a.ecdhe_curve == b.ecdhe_curve && a.dhe_prime_bits == b.dhe_prime_bits &&
         a.ske_signature_scheme == b.ske_signature_scheme && a.warnings.size() == b.warnings.size();
}

void check_consistent(const ServerFlight& f) {
  check(f.alert.has_value() || f.hello.has_value());
  if (f.alert) check(f.alert->level == 1 || f.alert->level == 2);
  check(f.certificate_visible() == !f.certificates.empty());
  for (auto der : f.certificates) check(der.size() >= 2 && der[0] == 0x30);
  if (!f.hello) {
    check(f.message_types.empty() && f.certificate == CertificateVisibility::kNotRead);
    return;
  }
  const ServerHello& h = *f.hello;
  check(h.random.size() == 32 && h.session_id.size() <= 32);
  check((h.negotiated_version() >> 8) == 3 && h.negotiated_version() <= kTls13);
  if (h.negotiated_version() == kTls13) {
    check(f.message_types.size() == 1 && f.certificates.empty());
    check(f.certificate == (h.is_hello_retry_request ? CertificateVisibility::kHelloRetryRequest
                                                     : CertificateVisibility::kEncrypted));
    check(!h.alpn && !h.renegotiation_info && !h.extended_master_secret);
  } else {
    check(!h.is_hello_retry_request && !h.key_share_group);
  }
  if (h.alpn) check(!h.alpn->empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t control = data[0];
  const std::span<const std::uint8_t> input(data + 1, size - 1);

  const auto stop = static_cast<ServerFlightReader::Stop>(std::min(control & 0x03, 2));
  ServerFlightLimits limits;
  if (control & 0x80) {  // small limits, so the fuzzer reaches them
    limits.handshake.max_message_bytes = 512;
    limits.handshake.max_wire_bytes = 1024;
    limits.max_certificates = 3;
    limits.max_warning_alerts = 1;
  }

  ServerFlightReader whole(stop, limits);
  whole.feed(input);

  ServerFlightReader split(stop, limits);
  const std::size_t max_piece = ((control >> 2) & 0x1f) + 1u;
  std::uint32_t state = 0x85ebca6bu ^ control;
  std::size_t pos = 0;
  std::size_t used = 0;
  while (pos < input.size() && split.status() == ParseStatus::kNeedMore) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    const std::size_t n = std::min<std::size_t>(input.size() - pos, 1 + state % max_piece);
    split.feed(input.subspan(pos, n));
    check(split.consumed_last_feed() <= n);
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
    return 0;
  }
  check(whole.consumed() == split.consumed() && split.consumed() == used);
  check(same_flight(whole.flight(), split.flight()));
  if (whole.status() == ParseStatus::kNeedMore) {
    check(whole.consumed() == input.size());
    return 0;
  }

  const ServerFlight& f = whole.flight();
  check_consistent(f);
  check(whole.bytes_needed_hint() == 0);
  check(whole.feed(input) == ParseStatus::kComplete && whole.consumed_last_feed() == 0);

  // Re-fragment the handshake bytes into records of another size: the same flight. Only when
  // the flight is made of handshake records alone (no alert, ChangeCipherSpec or warning).
  if (f.alert || !f.warnings.empty() || f.certificate == CertificateVisibility::kResumed) return 0;
  std::vector<std::uint8_t> handshake;
  const auto wire = input.first(whole.consumed());
  for (std::size_t at = 0; at < wire.size();) {
    check(at + 5 <= wire.size() && wire[at] == kContentTypeHandshake);
    const std::size_t n = (std::size_t{wire[at + 3]} << 8) | wire[at + 4];
    const std::size_t end = std::min(wire.size(), at + 5 + n);
    handshake.insert(handshake.end(), wire.begin() + static_cast<std::ptrdiff_t>(at + 5),
                     wire.begin() + static_cast<std::ptrdiff_t>(end));
    at += 5 + n;
  }
  const std::size_t fragment = 1 + (control % 61);
  std::vector<std::uint8_t> rewrapped;
  for (std::size_t at = 0; at < handshake.size(); at += fragment) {
    const std::size_t n = std::min(fragment, handshake.size() - at);
    rewrapped.insert(rewrapped.end(), {22, 3, 3, 0, static_cast<std::uint8_t>(n)});
    rewrapped.insert(rewrapped.end(), handshake.begin() + static_cast<std::ptrdiff_t>(at),
                     handshake.begin() + static_cast<std::ptrdiff_t>(at + n));
  }
  ServerFlightLimits roomy = limits;
  roomy.handshake.max_wire_bytes = rewrapped.size();
  ServerFlightReader again(stop, roomy);
  again.feed(rewrapped);
  check(again.status() == ParseStatus::kComplete);
  check(again.consumed() == rewrapped.size());
  check(same_flight(f, again.flight()));
  return 0;
}

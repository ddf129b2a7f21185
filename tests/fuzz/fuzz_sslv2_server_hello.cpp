// Fuzzes the SSL 2.0 SERVER-HELLO reader `moat scan` runs on what a server answers to its SSL 2.0
// CLIENT-HELLO. Input: one control byte (piece sizes), then the stream. Checks that reading all at
// once and piece by piece agree exactly (status, error code and offset, every field), that the
// reader never takes more than one record, and that a complete hello is consistent with the
// lengths in its header.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/tls/sslv2.hpp"
#include "fuzz_check.hpp"

namespace {

using moat::fuzz::check;
using moat::fuzz::same_bytes;
using moat::core::tls::kSsl20;
using moat::core::tls::ParseStatus;
using moat::core::tls::Sslv2ServerHello;
using moat::core::tls::Sslv2ServerHelloReader;

bool same_hello(const Sslv2ServerHello& a, const Sslv2ServerHello& b) {
  return a.session_id_hit == b.session_id_hit && a.certificate_type == b.certificate_type &&
         a.version == b.version && same_bytes(a.certificate, b.certificate) &&
         a.cipher_kinds == b.cipher_kinds && same_bytes(a.connection_id, b.connection_id);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t control = data[0];
  const std::span<const std::uint8_t> input(data + 1, size - 1);

  Sslv2ServerHelloReader whole;
  whole.feed(input);

  Sslv2ServerHelloReader split;
  const std::size_t max_piece = (control & 0x3f) + 1u;
  std::uint32_t state = 0x9e3779b9u ^ control;
  for (std::size_t pos = 0; pos < input.size() && split.status() == ParseStatus::kNeedMore;) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    const std::size_t n = std::min<std::size_t>(input.size() - pos, 1 + state % max_piece);
    split.feed(input.subspan(pos, n));
    pos += n;
  }

  check(whole.status() == split.status());
  check(whole.consumed() == split.consumed());
  check(whole.consumed() <= input.size());
  if (whole.status() == ParseStatus::kError) {
    check(whole.error().code == split.error().code);
    check(whole.error().offset == split.error().offset);
    check(!whole.error().code.empty() && !whole.error().message.empty());
    return 0;
  }
  if (whole.status() == ParseStatus::kNeedMore) return 0;

  const Sslv2ServerHello& h = whole.hello();
  check(same_hello(h, split.hello()));
  check(h.version == kSsl20);
  check(h.connection_id.size() >= 16 && h.connection_id.size() <= 32);
  const std::size_t length = (std::size_t{input[0] & 0x7fu} << 8) | input[1];
  check(whole.consumed() == 2 + length);
  check(2 + 11 + h.certificate.size() + h.cipher_kinds.size() * 3 + h.connection_id.size() ==
        whole.consumed());
  // Feeding more after completion changes nothing.
  check(whole.feed(input) == ParseStatus::kComplete && whole.consumed() == 2 + length);
  return 0;
}

#include "core/tls/client_hello.hpp"
#include "core/tls/wire_cursor.hpp"

#include <algorithm>

namespace moat::core::tls {
namespace {

using wire::Cursor;
using wire::Failure;


bool any_grease(U16List list) {
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (is_grease(list[i])) return true;
  }
  return false;
}

// A non-empty list of uint16 filling exactly `data` behind a 1- or 2-byte length.
bool u16_list(std::span<const std::uint8_t> data, std::size_t base, bool one_byte_length,
              U16List& out) {
  Cursor c(data, base);
  std::span<const std::uint8_t> list;
  const bool ok = one_byte_length ? c.vec8(list) : c.vec16(list);
  if (!ok || !c.empty() || list.empty() || list.size() % 2 != 0) return false;
  out = U16List(list);
  return true;
}

bool has_duplicates(std::vector<std::uint16_t> values) {
  std::sort(values.begin(), values.end());
  return std::adjacent_find(values.begin(), values.end()) != values.end();
}

// RFC 6066 3: ServerNameList server_name_list<1..2^16-1>, entries NameType(1) + opaque<1..2^16-1>.
// We accept exactly one entry, of type host_name (0): RFC 6066 forbids two names of one type,
// and two names would let the client choose which one a middlebox and the origin each act on.
std::optional<Failure> parse_server_name(std::span<const std::uint8_t> data, std::size_t base,
                                         ClientHello& out) {
  Cursor c(data, base);
  std::span<const std::uint8_t> list;
  if (!c.vec16(list) || !c.empty() || list.empty()) {
    return Failure{"sni_malformed", "malformed server_name extension", Alert::kDecodeError, base};
  }
  Cursor entries(list, base + 2);
  std::uint8_t type = 0;
  std::span<const std::uint8_t> name;
  const std::size_t entry_at = entries.offset();
  if (!entries.u8(type) || !entries.vec16(name)) {
    return Failure{"sni_malformed", "malformed server_name entry", Alert::kDecodeError, entry_at};
  }
  if (!entries.empty()) {
    return Failure{"sni_multiple_names", "server_name lists more than one name",
                   Alert::kIllegalParameter, entries.offset()};
  }
  if (type != 0) {
    return Failure{"sni_not_host_name", "server_name entry is not a host_name",
                   Alert::kIllegalParameter, entry_at};
  }
  if (name.empty()) {
    return Failure{"sni_empty", "empty host_name in server_name", Alert::kDecodeError, entry_at};
  }
  if (std::find(name.begin(), name.end(), 0) != name.end()) {
    // A NUL lets a C-string consumer see a different (shorter) name than we check.
    return Failure{"sni_nul", "NUL byte in host_name", Alert::kIllegalParameter, entry_at + 3};
  }
  out.server_name =
      std::string_view(reinterpret_cast<const char*>(name.data()), name.size());
  return std::nullopt;
}

// RFC 7301 3.1: ProtocolNameList protocol_name_list<2..2^16-1>, names opaque<1..2^8-1>.
std::optional<Failure> parse_alpn(std::span<const std::uint8_t> data, std::size_t base,
                                  ClientHello& out) {
  const Failure bad{"bad_alpn", "malformed application_layer_protocol_negotiation extension",
                    Alert::kDecodeError, base};
  Cursor c(data, base);
  std::span<const std::uint8_t> list;
  if (!c.vec16(list) || !c.empty() || list.empty()) return bad;
  Cursor names(list, base + 2);
  while (!names.empty()) {
    std::span<const std::uint8_t> name;
    if (!names.vec8(name) || name.empty()) return bad;
    out.alpn.emplace_back(reinterpret_cast<const char*>(name.data()), name.size());
  }
  return std::nullopt;
}

// RFC 8446 4.2.8: KeyShareEntry client_shares<0..2^16-1>, entries NamedGroup + opaque<1..2^16-1>;
// "Clients MUST NOT offer multiple KeyShareEntry values for the same group".
std::optional<Failure> parse_key_share(std::span<const std::uint8_t> data, std::size_t base,
                                       ClientHello& out) {
  const Failure bad{"bad_key_share", "malformed key_share extension", Alert::kDecodeError, base};
  Cursor c(data, base);
  std::span<const std::uint8_t> list;
  if (!c.vec16(list) || !c.empty()) return bad;
  Cursor entries(list, base + 2);
  while (!entries.empty()) {
    std::uint16_t group = 0;
    std::span<const std::uint8_t> key;
    if (!entries.u16(group) || !entries.vec16(key) || key.empty()) return bad;
    out.key_share_groups.push_back(group);
  }
  if (has_duplicates(out.key_share_groups)) {
    return Failure{"duplicate_key_share", "two key shares for one group",
                   Alert::kIllegalParameter, base};
  }
  return std::nullopt;
}

std::optional<Failure> parse_extension(std::uint16_t type, std::span<const std::uint8_t> data,
                                       std::size_t base, ClientHello& out) {
  switch (type) {
    case kExtServerName:
      return parse_server_name(data, base, out);
    case kExtSupportedVersions:
      // RFC 8446 4.2.1: ProtocolVersion versions<2..254>.
      if (!u16_list(data, base, true, out.supported_versions)) {
        return Failure{"bad_supported_versions", "malformed supported_versions extension",
                       Alert::kDecodeError, base};
      }
      out.has_supported_versions = true;
      return std::nullopt;
    case kExtAlpn:
      return parse_alpn(data, base, out);
    case kExtSupportedGroups:
      // RFC 8446 4.2.7: NamedGroup named_group_list<2..2^16-1>.
      if (!u16_list(data, base, false, out.supported_groups)) {
        return Failure{"bad_supported_groups", "malformed supported_groups extension",
                       Alert::kDecodeError, base};
      }
      return std::nullopt;
    case kExtSignatureAlgorithms:
      // RFC 8446 4.2.3: SignatureScheme supported_signature_algorithms<2..2^16-2>.
      if (!u16_list(data, base, false, out.signature_algorithms)) {
        return Failure{"bad_signature_algorithms", "malformed signature_algorithms extension",
                       Alert::kDecodeError, base};
      }
      return std::nullopt;
    case kExtKeyShare:
      return parse_key_share(data, base, out);
    default:
      return std::nullopt;  // other extensions are carried, not interpreted
  }
}

// RFC 8446 4.1.2 / RFC 5246 7.4.1.2. `message` is the whole handshake message (type, length,
// body); offsets in failures are into it.
std::optional<Failure> parse_client_hello(std::span<const std::uint8_t> message,
                                          ClientHello& out) {
  out = ClientHello{};
  Cursor c(message.subspan(kHandshakeHeaderBytes), kHandshakeHeaderBytes);
  auto truncated = [&c] {
    return Failure{"truncated", "ClientHello ends early", Alert::kDecodeError, c.offset()};
  };

  const std::size_t version_at = c.offset();
  if (!c.u16(out.legacy_version)) return truncated();
  if ((out.legacy_version >> 8) != 0x03 || out.legacy_version > kTls13) {
    return Failure{"bad_legacy_version", "legacy_version outside 0x0300..0x0304",
                   Alert::kProtocolVersion, version_at};
  }
  if (!c.bytes(32, out.random)) return truncated();

  const std::size_t session_at = c.offset();
  if (!c.vec8(out.session_id)) return truncated();
  if (out.session_id.size() > 32) {
    return Failure{"bad_session_id", "legacy_session_id longer than 32 bytes",
                   Alert::kIllegalParameter, session_at};
  }

  // RFC 8446 4.1.2: CipherSuite cipher_suites<2..2^16-2>.
  const std::size_t suites_at = c.offset();
  std::span<const std::uint8_t> suites;
  if (!c.vec16(suites)) return truncated();
  if (suites.empty() || suites.size() % 2 != 0) {
    return Failure{"bad_cipher_suites", "cipher_suites is empty or of odd length",
                   Alert::kDecodeError, suites_at};
  }
  out.cipher_suites = U16List(suites);

  // RFC 5246 7.4.1.2: the list MUST contain null compression (0); RFC 8446 requires exactly it,
  // which a server checks once it picks 1.3.
  const std::size_t compression_at = c.offset();
  if (!c.vec8(out.compression_methods)) return truncated();
  if (out.compression_methods.empty() ||
      std::find(out.compression_methods.begin(), out.compression_methods.end(), 0) ==
          out.compression_methods.end()) {
    return Failure{"bad_compression_methods", "compression_methods lacks null compression",
                   Alert::kIllegalParameter, compression_at};
  }

  out.has_grease = any_grease(out.cipher_suites);
  // RFC 5246 7.4.1.2: a hello may end here (no extensions at all).
  if (c.empty()) return std::nullopt;

  const std::size_t extensions_at = c.offset();
  std::span<const std::uint8_t> extensions;
  if (!c.vec16(extensions) || !c.empty()) {
    return Failure{"bad_extensions", "extensions length does not match the message",
                   Alert::kDecodeError, extensions_at};
  }

  // First pass: structure, order and duplicates (RFC 8446 4.2: "There MUST NOT be more than one
  // extension of the same type"); second pass: contents.
  Cursor walk(extensions, extensions_at + 2);
  while (!walk.empty()) {
    const std::size_t at = walk.offset();
    std::uint16_t type = 0;
    std::span<const std::uint8_t> data;
    if (!walk.u16(type) || !walk.vec16(data)) {
      return Failure{"bad_extensions", "extension runs past the extensions block",
                     Alert::kDecodeError, at};
    }
    // RFC 8446 4.2.11: pre_shared_key MUST be the last extension.
    if (!out.extension_types.empty() && out.extension_types.back() == kExtPreSharedKey) {
      return Failure{"psk_not_last", "pre_shared_key is not the last extension",
                     Alert::kIllegalParameter, at};
    }
    out.extension_types.push_back(type);
    out.has_grease = out.has_grease || is_grease(type);
  }
  if (has_duplicates(out.extension_types)) {
    return Failure{"duplicate_extension", "an extension type appears twice",
                   Alert::kIllegalParameter, extensions_at};
  }

  Cursor ext(extensions, extensions_at + 2);
  while (!ext.empty()) {
    std::uint16_t type = 0;
    std::span<const std::uint8_t> data;
    ext.u16(type);
    const std::size_t data_at = ext.offset() + 2;
    ext.vec16(data);
    if (auto failure = parse_extension(type, data, data_at, out)) return failure;
  }

  out.has_grease = out.has_grease || any_grease(out.supported_versions) ||
                   any_grease(out.supported_groups) || any_grease(out.signature_algorithms) ||
                   std::any_of(out.key_share_groups.begin(), out.key_share_groups.end(),
                               [](std::uint16_t g) { return is_grease(g); });
  return std::nullopt;
}

}  // namespace

bool U16List::contains(std::uint16_t value) const {
  for (std::size_t i = 0; i < size(); ++i) {
    if ((*this)[i] == value) return true;
  }
  return false;
}

std::vector<std::uint16_t> U16List::to_vector() const {
  std::vector<std::uint16_t> out;
  out.reserve(size());
  for (std::size_t i = 0; i < size(); ++i) out.push_back((*this)[i]);
  return out;
}

std::uint16_t ClientHello::max_offered_version() const {
  if (!has_supported_versions) return std::min(legacy_version, kTls12);
  std::uint16_t best = 0;
  for (std::size_t i = 0; i < supported_versions.size(); ++i) {
    const std::uint16_t v = supported_versions[i];
    if (is_grease(v) || (v >> 8) != 0x03) continue;
    best = std::max(best, v);
  }
  return best;
}

bool ClientHello::has_extension(std::uint16_t type) const {
  return std::find(extension_types.begin(), extension_types.end(), type) != extension_types.end();
}

ClientHelloReader::ClientHelloReader(ClientHelloLimits limits) : reassembler_(limits.handshake) {
  reassembler_.expect_type(kHandshakeClientHello);
}

ParseStatus ClientHelloReader::fail(std::string_view code, std::string_view message, Alert alert,
                                    std::size_t offset) {
  error_ = ParseError{code, message, alert, offset};
  status_ = ParseStatus::kError;
  return status_;
}

ParseStatus ClientHelloReader::feed(std::string_view bytes) {
  return feed(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                            bytes.size()));
}

ParseStatus ClientHelloReader::feed(std::span<const std::uint8_t> bytes) {
  consumed_last_feed_ = 0;
  if (status_ != ParseStatus::kNeedMore || bytes.empty()) return status_;
  // Decide on the first byte whether this is TLS at all: a plaintext protocol sent to a TLS port
  // ("GET ", "SSH-", "CONNECT") fails here, before any buffering.
  if (reassembler_.wire_bytes() == 0 && bytes[0] != kContentTypeHandshake) {
    if (bytes[0] == 0x80) {
      // SSLv2-compatible hello (RFC 5246 E.2): no SNI, no extensions; nothing modern sends it.
      return fail("sslv2_hello", "SSLv2-compatible ClientHello", Alert::kProtocolVersion, 0);
    }
    return fail("not_tls", "not a TLS handshake record", Alert::kUnexpectedMessage, 0);
  }

  const auto result = reassembler_.feed(bytes);
  consumed_last_feed_ = result.consumed;
  if (result.status == ParseStatus::kError) {
    error_ = reassembler_.error();
    if (error_.code == "unexpected_handshake_type") {
      error_.code = "not_client_hello";
      error_.message = "first handshake message is not a ClientHello";
    }
    status_ = ParseStatus::kError;
    return status_;
  }
  if (result.status == ParseStatus::kNeedMore) return status_;

  // The client sends nothing else before the server answers (RFC 8446 2), so a record that
  // goes on after the ClientHello is malformed; known now, without reading those bytes.
  if (reassembler_.record_bytes_remaining() != 0) {
    return fail("trailing_record_data", "handshake record continues after the ClientHello",
                Alert::kUnexpectedMessage, reassembler_.wire_bytes());
  }
  if (auto failure = parse_client_hello(reassembler_.message(), hello_)) {
    return fail(failure->code, failure->message, failure->alert, failure->offset);
  }
  status_ = ParseStatus::kComplete;
  return status_;
}

std::size_t ClientHelloReader::bytes_needed_hint() const {
  if (status_ != ParseStatus::kNeedMore) return 0;
  return reassembler_.bytes_needed_hint();
}

}  // namespace moat::core::tls

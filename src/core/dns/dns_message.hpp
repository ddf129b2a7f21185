// core/dns: DNS wire format (RFC 1035 4) for a stub resolver: building A/AAAA queries with an
// EDNS0 OPT record (RFC 6891) and strictly parsing the untrusted response bytes. Pure code, no
// I/O. Errors are values with stable codes (docs/dns.md lists them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.hpp"
#include "core/net/address.hpp"

namespace moat::core::net::dns {

constexpr std::size_t kHeaderSize = 12;
constexpr std::size_t kMaxNameWireLength = 255;  // RFC 1035 2.3.4, length octets included
constexpr std::size_t kMaxLabelLength = 63;
constexpr std::size_t kMaxPointerHops = 127;     // a name has at most 127 labels
constexpr std::size_t kMaxCnameHops = 8;
constexpr std::uint16_t kEdnsUdpPayloadSize = 1232;  // DNS flag day 2020: no IP fragmentation

// Resource record types and classes (IANA DNS parameters).
constexpr std::uint16_t kTypeA = 1;
constexpr std::uint16_t kTypeCname = 5;
constexpr std::uint16_t kTypeSoa = 6;
constexpr std::uint16_t kTypeAaaa = 28;
constexpr std::uint16_t kTypeOpt = 41;
constexpr std::uint16_t kClassIn = 1;

enum class QueryType : std::uint16_t { kA = kTypeA, kAaaa = kTypeAaaa };

const char* to_string(QueryType type);  // "A", "AAAA"

// RCODE, including the EDNS extended bits (RFC 6891 6.1.3), so values above 15 occur.
enum class Rcode : std::uint16_t {
  kNoError = 0,
  kFormErr = 1,
  kServFail = 2,
  kNxDomain = 3,
  kNotImp = 4,
  kRefused = 5,
};

// The validated query name: lowercase ASCII, no trailing dot, labels of [a-z0-9_-] of 1..63
// bytes, at most 253 characters (255 on the wire). One trailing dot in `host` is accepted and
// removed; uppercase is folded. Anything else (empty labels, spaces, bytes >= 0x80, the root) is
// `dns_bad_name`: a name that needs escaping is never sent.
Result<std::string> normalize_query_name(std::string_view host);

// A complete query message: `id`, RD=1, one question (`name` IN `type`), and an OPT record
// advertising kEdnsUdpPayloadSize (RFC 6891 6.1.2). `name` goes through normalize_query_name.
Result<std::vector<std::uint8_t>> build_query(std::uint16_t id, std::string_view name,
                                              QueryType type);

// A domain name read from a message.
struct WireName {
  // Lowercase text form, labels joined with '.', no trailing dot, "" for the root. Bytes other
  // than [a-z0-9_-] (after folding A-Z) are written as \DDD (RFC 1035 5.1), so a label holding
  // a '.' can never equal two labels: the text form is unique per name.
  std::string text;
  std::size_t end = 0;  // offset just past the name where it was read (after a first pointer)
};

// Reads the possibly compressed name at `offset` of `message` (RFC 1035 4.1.4). Strict: every
// pointer must point strictly before the start of the label run that contains it (so loops are
// impossible) and at most kMaxPointerHops are followed; label types 01/10 are refused; the name
// is at most kMaxNameWireLength bytes in uncompressed wire form. Errors: dns_name_truncated,
// dns_bad_pointer, dns_bad_label_type, dns_name_too_long.
Result<WireName> read_name(std::span<const std::uint8_t> message, std::size_t offset);

// What a response says about the question, once it is known to belong to our query.
struct DnsAnswer {
  Rcode rcode = Rcode::kNoError;
  bool truncated = false;      // TC: the caller should retry over TCP (RFC 7766)
  bool authoritative = false;  // AA
  // A or AAAA addresses of the final name of the CNAME chain, in message order, deduplicated.
  std::vector<IpAddress> addresses;
  // Min TTL over the records used (the CNAMEs followed and the addresses); 0 without records.
  // RFC 2181 8: a TTL with the top bit set counts as 0.
  std::uint32_t ttl = 0;
  // RFC 2308 5: min(SOA TTL, SOA MINIMUM) of an SOA in the authority section whose owner
  // encloses the final name; absent without one.
  std::optional<std::uint32_t> negative_ttl;
  std::string canonical_name;  // the final name (the query name without CNAMEs)
  std::size_t cname_hops = 0;
};

// Parses `message` as the response to the query (`id`, `name`, `type`). Checks, in order:
// header present (dns_short_message), QR=1 (dns_not_response), id (dns_id_mismatch), opcode 0
// (dns_bad_opcode), exactly our question, compared case-insensitively (dns_question_mismatch);
// an error RCODE other than NXDOMAIN may come with no question. For NOERROR and NXDOMAIN every
// record is bounds-checked (dns_record_truncated, dns_bad_rdata, name errors, dns_trailing_bytes);
// in a TC=1 response the first incomplete record ends parsing instead. CNAMEs are followed from
// the query name within the answer section (dns_cname_chain_too_long after kMaxCnameHops,
// dns_multiple_cname); records whose owner is not on the chain are ignored (RFC 5452 9.1,
// cache poisoning). The RCODE itself is reported in DnsAnswer::rcode, not as an error.
Result<DnsAnswer> parse_response(std::span<const std::uint8_t> message, std::uint16_t id,
                                 std::string_view name, QueryType type);

}  // namespace moat::core::net::dns

#include "core/dns/dns_message.hpp"

#include <algorithm>
#include <limits>

#include <fmt/format.h>

namespace moat::core::net::dns {
namespace {

constexpr std::uint16_t kFlagQr = 0x8000;
constexpr std::uint16_t kFlagAa = 0x0400;
constexpr std::uint16_t kFlagTc = 0x0200;
constexpr std::uint16_t kFlagRd = 0x0100;
constexpr std::size_t kRecordFixedSize = 10;  // type, class, ttl, rdlength after the owner name

std::uint16_t get_u16(std::span<const std::uint8_t> m, std::size_t at) {
  return static_cast<std::uint16_t>((m[at] << 8) | m[at + 1]);
}

std::uint32_t get_u32(std::span<const std::uint8_t> m, std::size_t at) {
  return (std::uint32_t{m[at]} << 24) | (std::uint32_t{m[at + 1]} << 16) |
         (std::uint32_t{m[at + 2]} << 8) | std::uint32_t{m[at + 3]};
}

void put_u16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v & 0xff));
}

// RFC 2181 8: TTLs are 31-bit; a value with the top bit set is treated as zero.
std::uint32_t sanitize_ttl(std::uint32_t ttl) { return (ttl & 0x80000000u) != 0 ? 0 : ttl; }

bool is_name_char(std::uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

Error malformed(std::string code, std::string message, std::size_t offset) {
  return Error::upstream(std::move(code), std::move(message)).at(offset);
}

// One resource record; rdata stays in the message.
struct Record {
  std::string owner;
  std::uint16_t type = 0;
  std::uint16_t klass = 0;
  std::uint32_t ttl = 0;
  std::size_t rdata = 0;  // offset of the rdata
  std::uint16_t rdlength = 0;
  std::size_t offset = 0;  // offset of the record (for errors)
};

Result<Record> read_record(std::span<const std::uint8_t> m, std::size_t& pos) {
  Record r;
  r.offset = pos;
  auto owner = read_name(m, pos);
  if (!owner) return owner.error();
  std::size_t at = owner->end;
  if (m.size() - at < kRecordFixedSize) {
    return malformed("dns_record_truncated", "resource record header runs past the message", at);
  }
  r.owner = std::move(owner->text);
  r.type = get_u16(m, at);
  r.klass = get_u16(m, at + 2);
  r.ttl = get_u32(m, at + 4);
  r.rdlength = get_u16(m, at + 8);
  r.rdata = at + kRecordFixedSize;
  if (m.size() - r.rdata < r.rdlength) {
    return malformed("dns_record_truncated",
                     fmt::format("record data of {} bytes runs past the message", r.rdlength),
                     r.rdata);
  }
  pos = r.rdata + r.rdlength;
  return r;
}

// A name held in rdata that must fill it exactly (CNAME) or start it (SOA).
Result<WireName> read_rdata_name(std::span<const std::uint8_t> m, const Record& r,
                                 std::size_t at) {
  // Names in rdata may point anywhere before them but must not run past the rdata.
  auto name = read_name(m, at);
  if (!name) return name.error();
  if (name->end > r.rdata + r.rdlength) {
    return malformed("dns_bad_rdata", "a name runs past its record data", at);
  }
  return name;
}

// `name` equals `zone` or lies under it, label-wise ("a.example.com" under "example.com", never
// under "ample.com"). Text forms are unique per name (see WireName), so this is exact.
bool is_within(std::string_view name, std::string_view zone) {
  if (zone.empty()) return true;  // the root encloses every name
  if (name.size() < zone.size()) return false;
  if (name.size() == zone.size()) return name == zone;
  return name.ends_with(zone) && name[name.size() - zone.size() - 1] == '.';
}

struct Section {
  std::vector<Record> records;
  bool complete = true;
};

// Reads `count` records. In a truncated (TC=1) message the first incomplete record ends the
// section and the rest of the message; otherwise it is an error (RFC 2181 9).
Result<Section> read_section(std::span<const std::uint8_t> m, std::size_t& pos,
                             std::uint16_t count, bool truncated) {
  Section s;
  s.records.reserve(std::min<std::size_t>(count, 64));
  for (std::uint16_t i = 0; i < count; ++i) {
    auto r = read_record(m, pos);
    if (!r) {
      if (truncated) {
        s.complete = false;
        return s;
      }
      return r.error();
    }
    s.records.push_back(std::move(*r));
  }
  return s;
}

}  // namespace

const char* to_string(QueryType type) { return type == QueryType::kA ? "A" : "AAAA"; }

Result<std::string> normalize_query_name(std::string_view host) {
  auto bad = [&](const std::string& why) {
    return Error::input("dns_bad_name", fmt::format("'{}' cannot be queried: {}", host, why));
  };
  std::string_view name = host;
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty()) return bad("empty name");
  // Wire length = text length + 2 (first length octet and the root label).
  if (name.size() + 2 > kMaxNameWireLength) return bad("longer than 253 characters");
  std::string out;
  out.reserve(name.size());
  std::size_t label = 0;
  for (char ch : name) {
    auto c = static_cast<std::uint8_t>(ch);
    if (c == '.') {
      if (label == 0) return bad("empty label");
      label = 0;
      out.push_back('.');
      continue;
    }
    if (c >= 'A' && c <= 'Z') c = static_cast<std::uint8_t>(c - 'A' + 'a');
    if (!is_name_char(c)) return bad("only letters, digits, '-' and '_' are allowed");
    if (++label > kMaxLabelLength) return bad("a label is longer than 63 bytes");
    out.push_back(static_cast<char>(c));
  }
  if (label == 0) return bad("empty label");
  return out;
}

Result<std::vector<std::uint8_t>> build_query(std::uint16_t id, std::string_view name,
                                              QueryType type) {
  auto normalized = normalize_query_name(name);
  if (!normalized) return normalized.error();
  std::vector<std::uint8_t> out;
  out.reserve(kHeaderSize + normalized->size() + 2 + 4 + 11);
  put_u16(out, id);
  put_u16(out, kFlagRd);  // QR=0, opcode QUERY, RD=1 (RFC 1035 4.1.1)
  put_u16(out, 1);        // QDCOUNT
  put_u16(out, 0);        // ANCOUNT
  put_u16(out, 0);        // NSCOUNT
  put_u16(out, 1);        // ARCOUNT: the OPT record
  std::string_view rest = *normalized;
  while (!rest.empty()) {
    auto dot = rest.find('.');
    auto label = rest.substr(0, dot);
    out.push_back(static_cast<std::uint8_t>(label.size()));
    out.insert(out.end(), label.begin(), label.end());
    rest = dot == std::string_view::npos ? std::string_view{} : rest.substr(dot + 1);
  }
  out.push_back(0);
  put_u16(out, static_cast<std::uint16_t>(type));
  put_u16(out, kClassIn);
  // OPT pseudo-record (RFC 6891 6.1.2): root owner, CLASS = UDP payload size, TTL = extended
  // RCODE 0, version 0, DO=0; no options.
  out.push_back(0);
  put_u16(out, kTypeOpt);
  put_u16(out, kEdnsUdpPayloadSize);
  put_u16(out, 0);
  put_u16(out, 0);
  put_u16(out, 0);  // RDLENGTH
  return out;
}

Result<WireName> read_name(std::span<const std::uint8_t> message, std::size_t offset) {
  WireName result;
  std::size_t pos = offset;
  std::size_t run_start = offset;  // start of the current label run; pointers must go below it
  std::size_t wire_length = 1;     // the terminating root label
  std::size_t hops = 0;
  bool jumped = false;
  for (;;) {
    if (pos >= message.size()) {
      return malformed("dns_name_truncated", "a name runs past the end of the message", pos);
    }
    const std::uint8_t len = message[pos];
    const std::uint8_t kind = len & 0xc0;
    if (kind == 0xc0) {
      if (message.size() - pos < 2) {
        return malformed("dns_name_truncated", "a compression pointer is cut off", pos);
      }
      const std::size_t target = get_u16(message, pos) & 0x3fff;
      // RFC 1035 4.1.4 only says a pointer refers to a prior occurrence. Requiring each pointer
      // to land strictly before the run it ends makes every jump go backwards: no loops.
      if (target >= run_start) {
        return malformed("dns_bad_pointer",
                         fmt::format("compression pointer to {} does not point backwards", target),
                         pos);
      }
      if (++hops > kMaxPointerHops) {
        return malformed("dns_bad_pointer", "too many compression pointers in one name", pos);
      }
      if (!jumped) {
        result.end = pos + 2;
        jumped = true;
      }
      pos = target;
      run_start = target;
      continue;
    }
    if (kind != 0) {
      // 01 (RFC 6891 extended labels, obsolete) and 10 (reserved).
      return malformed("dns_bad_label_type", fmt::format("label type 0x{:02x}", len), pos);
    }
    if (len == 0) {
      if (!jumped) result.end = pos + 1;
      return result;
    }
    wire_length += 1 + len;
    if (wire_length > kMaxNameWireLength) {
      return malformed("dns_name_too_long", "a name is longer than 255 bytes", pos);
    }
    if (message.size() - pos - 1 < len) {
      return malformed("dns_name_truncated", "a label runs past the end of the message", pos);
    }
    if (!result.text.empty()) result.text.push_back('.');  // labels are never empty
    for (std::size_t i = pos + 1; i <= pos + len; ++i) {
      std::uint8_t c = message[i];
      if (c >= 'A' && c <= 'Z') c = static_cast<std::uint8_t>(c - 'A' + 'a');
      if (is_name_char(c)) {
        result.text.push_back(static_cast<char>(c));
      } else {
        result.text += fmt::format("\\{:03d}", c);
      }
    }
    pos += 1 + len;
  }
}

Result<DnsAnswer> parse_response(std::span<const std::uint8_t> message, std::uint16_t id,
                                 std::string_view name, QueryType type) {
  auto qname = normalize_query_name(name);
  if (!qname) return qname.error();
  if (message.size() < kHeaderSize) {
    return malformed("dns_short_message",
                     fmt::format("{} bytes is shorter than a DNS header", message.size()), 0);
  }
  const std::uint16_t flags = get_u16(message, 2);
  if ((flags & kFlagQr) == 0) {
    return malformed("dns_not_response", "QR=0: the message is a query", 2);
  }
  if (get_u16(message, 0) != id) {
    return malformed("dns_id_mismatch", "the id is not the query's", 0);
  }
  if (((flags >> 11) & 0xf) != 0) {
    return malformed("dns_bad_opcode", fmt::format("opcode {}", (flags >> 11) & 0xf), 2);
  }
  const std::uint16_t qdcount = get_u16(message, 4);
  const std::uint16_t ancount = get_u16(message, 6);
  const std::uint16_t nscount = get_u16(message, 8);
  const std::uint16_t arcount = get_u16(message, 10);

  DnsAnswer answer;
  answer.truncated = (flags & kFlagTc) != 0;
  answer.authoritative = (flags & kFlagAa) != 0;
  answer.rcode = static_cast<Rcode>(flags & 0xf);
  const bool data_rcode = answer.rcode == Rcode::kNoError || answer.rcode == Rcode::kNxDomain;

  std::size_t pos = kHeaderSize;
  // RFC 5452 9.1: the question must be ours. Servers may leave it out of error responses
  // (FORMERR, SERVFAIL, REFUSED), which carry no data to poison with.
  if (qdcount == 0 && !data_rcode) {
    answer.canonical_name = *qname;
    return answer;
  }
  if (qdcount != 1) {
    return malformed("dns_question_mismatch", fmt::format("{} questions instead of 1", qdcount),
                     4);
  }
  auto question = read_name(message, pos);
  if (!question) return question.error();
  pos = question->end;
  if (message.size() - pos < 4) {
    return malformed("dns_record_truncated", "the question is cut off", pos);
  }
  if (question->text != *qname || get_u16(message, pos) != static_cast<std::uint16_t>(type) ||
      get_u16(message, pos + 2) != kClassIn) {
    return malformed("dns_question_mismatch",
                     fmt::format("the response is for '{}' type {}, not '{}' {}", question->text,
                                 get_u16(message, pos), *qname, to_string(type)),
                     kHeaderSize);
  }
  pos += 4;
  answer.canonical_name = *qname;
  if (!data_rcode) return answer;

  auto answers = read_section(message, pos, ancount, answer.truncated);
  if (!answers) return answers.error();
  Section authority;
  Section additional;
  if (answers->complete) {
    auto a = read_section(message, pos, nscount, answer.truncated);
    if (!a) return a.error();
    authority = std::move(*a);
  }
  if (answers->complete && authority.complete) {
    auto a = read_section(message, pos, arcount, answer.truncated);
    if (!a) return a.error();
    additional = std::move(*a);
  }
  if (answers->complete && authority.complete && additional.complete && pos != message.size()) {
    return malformed("dns_trailing_bytes",
                     fmt::format("{} bytes after the last record", message.size() - pos), pos);
  }

  // EDNS (RFC 6891 6.1.3): at most one OPT record; its TTL carries the upper 8 RCODE bits.
  bool seen_opt = false;
  for (const Record& r : additional.records) {
    if (r.type != kTypeOpt) continue;
    if (seen_opt || !r.owner.empty()) {
      return malformed("dns_bad_opt", "a second OPT record, or one not owned by the root",
                       r.offset);
    }
    seen_opt = true;
    const auto extended = static_cast<std::uint16_t>(r.ttl >> 24);
    answer.rcode = static_cast<Rcode>((extended << 4) | (flags & 0xf));
  }

  // Validate the records we understand, wherever they are, before using any of them.
  for (const Record& r : answers->records) {
    if (r.klass != kClassIn) continue;
    if ((r.type == kTypeA && r.rdlength != 4) || (r.type == kTypeAaaa && r.rdlength != 16)) {
      return malformed("dns_bad_rdata",
                       fmt::format("type {} record with {} bytes of data", r.type, r.rdlength),
                       r.rdata);
    }
  }

  // Follow the CNAME chain from the query name (RFC 1034 3.6.2), within the answer section only.
  std::uint32_t ttl = std::numeric_limits<std::uint32_t>::max();
  bool used_any = false;
  std::string current = *qname;
  for (;;) {
    const Record* cname = nullptr;
    for (const Record& r : answers->records) {
      if (r.type != kTypeCname || r.klass != kClassIn || r.owner != current) continue;
      if (cname != nullptr) {
        // RFC 2181 10.1: a name with a CNAME has exactly one.
        return malformed("dns_multiple_cname",
                         fmt::format("'{}' has more than one CNAME", current), r.offset);
      }
      cname = &r;
    }
    if (cname == nullptr) break;
    if (answer.cname_hops == kMaxCnameHops) {
      return malformed("dns_cname_chain_too_long",
                       fmt::format("more than {} CNAMEs from '{}'", kMaxCnameHops, *qname),
                       cname->offset);
    }
    auto target = read_rdata_name(message, *cname, cname->rdata);
    if (!target) return target.error();
    if (target->end != cname->rdata + cname->rdlength) {
      return malformed("dns_bad_rdata", "CNAME data is longer than its name", cname->rdata);
    }
    ++answer.cname_hops;
    ttl = std::min(ttl, sanitize_ttl(cname->ttl));
    used_any = true;
    current = std::move(target->text);
  }
  answer.canonical_name = current;

  const auto wanted = static_cast<std::uint16_t>(type);
  for (const Record& r : answers->records) {
    // Records for any other owner are ignored: a server answers only for the chain we follow.
    if (r.type != wanted || r.klass != kClassIn || r.owner != current) continue;
    IpAddress address;
    address.family = type == QueryType::kA ? IpAddress::Family::kV4 : IpAddress::Family::kV6;
    std::copy_n(message.begin() + static_cast<std::ptrdiff_t>(r.rdata), r.rdlength,
                address.bytes.begin());
    ttl = std::min(ttl, sanitize_ttl(r.ttl));
    used_any = true;
    if (std::find(answer.addresses.begin(), answer.addresses.end(), address) ==
        answer.addresses.end()) {
      answer.addresses.push_back(address);
    }
  }
  answer.ttl = used_any ? ttl : 0;

  // Negative caching (RFC 2308 5): the SOA of a zone that encloses the final name.
  for (const Record& r : authority.records) {
    if (r.type != kTypeSoa || r.klass != kClassIn || !is_within(current, r.owner)) continue;
    auto mname = read_rdata_name(message, r, r.rdata);
    if (!mname) return mname.error();
    auto rname = read_rdata_name(message, r, mname->end);
    if (!rname) return rname.error();
    if (r.rdata + r.rdlength - rname->end != 20) {
      return malformed("dns_bad_rdata", "SOA data is not two names and five numbers", r.rdata);
    }
    const std::uint32_t minimum = get_u32(message, rname->end + 16);
    const std::uint32_t negative = std::min(sanitize_ttl(r.ttl), sanitize_ttl(minimum));
    answer.negative_ttl = answer.negative_ttl ? std::min(*answer.negative_ttl, negative) : negative;
  }
  return answer;
}

}  // namespace moat::core::net::dns

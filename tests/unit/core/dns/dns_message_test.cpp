#include "core/dns/dns_message.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moat::core::net::dns {
namespace {

constexpr std::uint16_t kId = 0xbeef;
constexpr std::uint16_t kOk = 0x8180;        // QR RD RA, NOERROR
constexpr std::uint16_t kNxDomain = 0x8183;  // QR RD RA, NXDOMAIN
constexpr std::uint16_t kClassChaos = 3;

// Builds DNS messages byte by byte, so each test shows exactly what the parser sees.
class Msg {
 public:
  Msg& u8(std::uint8_t v) {
    data.push_back(v);
    return *this;
  }
  Msg& u16(std::uint16_t v) { return u8(static_cast<std::uint8_t>(v >> 8)).u8(v & 0xff); }
  Msg& u32(std::uint32_t v) { return u16(static_cast<std::uint16_t>(v >> 16)).u16(v & 0xffff); }
  Msg& raw(std::string_view s) {
    data.insert(data.end(), s.begin(), s.end());
    return *this;
  }
  Msg& header(std::uint16_t flags, std::uint16_t qd, std::uint16_t an, std::uint16_t ns = 0,
              std::uint16_t ar = 0, std::uint16_t id = kId) {
    return u16(id).u16(flags).u16(qd).u16(an).u16(ns).u16(ar);
  }
  // An uncompressed name ("" is the root).
  Msg& name(std::string_view dotted) {
    while (!dotted.empty()) {
      auto dot = dotted.find('.');
      auto label = dotted.substr(0, dot);
      u8(static_cast<std::uint8_t>(label.size())).raw(label);
      dotted = dot == std::string_view::npos ? std::string_view{} : dotted.substr(dot + 1);
    }
    return u8(0);
  }
  // Labels, then a compression pointer instead of the root label.
  Msg& name_then_ptr(std::string_view dotted, std::uint16_t target) {
    while (!dotted.empty()) {
      auto dot = dotted.find('.');
      auto label = dotted.substr(0, dot);
      u8(static_cast<std::uint8_t>(label.size())).raw(label);
      dotted = dot == std::string_view::npos ? std::string_view{} : dotted.substr(dot + 1);
    }
    return ptr(target);
  }
  Msg& ptr(std::uint16_t target) { return u16(static_cast<std::uint16_t>(0xc000 | target)); }
  Msg& question(std::string_view qname = "example.com", std::uint16_t type = kTypeA,
                std::uint16_t klass = kClassIn) {
    return name(qname).u16(type).u16(klass);
  }
  // Type, class, TTL and RDLENGTH, after the owner name.
  Msg& rr(std::uint16_t type, std::uint32_t ttl, std::uint16_t rdlength,
          std::uint16_t klass = kClassIn) {
    return u16(type).u16(klass).u32(ttl).u16(rdlength);
  }
  Msg& a(std::uint32_t ttl, std::uint8_t a0, std::uint8_t a1, std::uint8_t a2, std::uint8_t a3) {
    return rr(kTypeA, ttl, 4).u8(a0).u8(a1).u8(a2).u8(a3);
  }
  std::size_t size() const { return data.size(); }

  std::vector<std::uint8_t> data;
};

std::size_t wire_size(std::string_view dotted) { return dotted.empty() ? 1 : dotted.size() + 2; }

Result<DnsAnswer> parse(const Msg& m, std::string_view qname = "example.com",
                        QueryType type = QueryType::kA, std::uint16_t id = kId) {
  return parse_response(m.data, id, qname, type);
}

std::string code_of(const Result<DnsAnswer>& r) { return r.ok() ? "ok" : r.error().code; }
std::string code_of(const Result<WireName>& r) { return r.ok() ? "ok" : r.error().code; }

std::vector<std::string> texts(const std::vector<IpAddress>& addresses) {
  std::vector<std::string> out;
  for (const auto& a : addresses) {
    std::string s;
    for (std::size_t i = 0; i < (a.is_v4() ? 4u : 16u); ++i) {
      s += (i ? "." : "") + std::to_string(a.bytes[i]);
    }
    out.push_back(s);
  }
  return out;
}

// ---- names and queries -------------------------------------------------------------------------

TEST(NormalizeQueryName, FoldsCaseAndOneTrailingDot) {
  EXPECT_EQ(*normalize_query_name("Api.Example.COM."), "api.example.com");
  EXPECT_EQ(*normalize_query_name("_dmarc.x-y.example"), "_dmarc.x-y.example");
  EXPECT_EQ(*normalize_query_name(std::string(63, 'a') + ".com"), std::string(63, 'a') + ".com");
}

TEST(NormalizeQueryName, RejectsWhatCannotBeSentUnescaped) {
  const std::vector<std::string> bad_names = {
      "", ".", "a..b", ".a", "a b", "a/b", "a\\.b", "ex\xc3\xa9.com", "a.com..",
      std::string(64, 'a') + ".com", std::string("a\0b", 3)};
  for (const std::string& bad : bad_names) {
    auto r = normalize_query_name(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, "dns_bad_name");
  }
  // 253 characters is the longest name (255 bytes on the wire); 254 is too long.
  std::string longest = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                        std::string(63, 'c') + "." + std::string(61, 'd');
  ASSERT_EQ(longest.size(), 253u);
  EXPECT_TRUE(normalize_query_name(longest).ok());
  EXPECT_FALSE(normalize_query_name(longest + "d").ok());
}

TEST(BuildQuery, ExactBytesWithEdns) {
  auto q = build_query(0x1234, "Example.com.", QueryType::kAaaa);
  ASSERT_TRUE(q.ok());
  Msg expected;
  expected.u16(0x1234).u16(0x0100).u16(1).u16(0).u16(0).u16(1);  // RD=1, one question, one OPT
  expected.name("example.com").u16(kTypeAaaa).u16(kClassIn);
  expected.u8(0).u16(kTypeOpt).u16(1232).u32(0).u16(0);  // root, OPT, payload 1232, no options
  EXPECT_EQ(*q, expected.data);
}

TEST(BuildQuery, RefusesBadNames) {
  auto q = build_query(1, "a..b", QueryType::kA);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.error().code, "dns_bad_name");
}

TEST(ReadName, PlainAndCompressed) {
  Msg m;
  m.header(kOk, 0, 0).name("Www.Example.com");          // at 12
  const std::size_t second = m.size();
  m.name_then_ptr("api", 12 + 4);                       // "api" + pointer to "example.com"
  auto first = read_name(m.data, 12);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->text, "www.example.com");
  EXPECT_EQ(first->end, second);
  auto r = read_name(m.data, second);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->text, "api.example.com");
  EXPECT_EQ(r->end, m.size());  // just past the pointer, not where it led
}

TEST(ReadName, RootAndEscapes) {
  Msg m;
  m.header(kOk, 0, 0).u8(0);
  m.u8(3).raw("a.b").u8(2).raw("\x01 ").u8(0);
  auto root = read_name(m.data, 12);
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->text, "");
  auto odd = read_name(m.data, 13);
  ASSERT_TRUE(odd.ok());
  // A '.' inside a label can never be confused with a label boundary.
  EXPECT_EQ(odd->text, "a\\046b.\\001\\032");
}

TEST(ReadName, PointerForwardIsRefused) {
  Msg m;
  m.header(kOk, 0, 0).ptr(14).name("example.com");
  EXPECT_EQ(code_of(read_name(m.data, 12)), "dns_bad_pointer");
}

TEST(ReadName, PointerToItselfIsRefused) {
  Msg m;
  m.header(kOk, 0, 0).ptr(12);
  EXPECT_EQ(code_of(read_name(m.data, 12)), "dns_bad_pointer");
}

TEST(ReadName, LoopThroughALabelIsRefused) {
  // 12: "a", 14: pointer to 12. The pointer points backwards of itself, but into its own label
  // run, which would loop forever ("a.a.a..."): refused.
  Msg m;
  m.header(kOk, 0, 0).u8(1).raw("a").ptr(12);
  EXPECT_EQ(code_of(read_name(m.data, 12)), "dns_bad_pointer");
  EXPECT_EQ(code_of(read_name(m.data, 14)), "dns_bad_pointer");
}

TEST(ReadName, TwoPointerLoopIsRefused) {
  Msg m;
  m.header(kOk, 0, 0).ptr(14).ptr(12);
  EXPECT_EQ(code_of(read_name(m.data, 12)), "dns_bad_pointer");
  EXPECT_EQ(code_of(read_name(m.data, 14)), "dns_bad_pointer");
}

TEST(ReadName, LongPointerChainsAreBounded) {
  Msg m;
  m.header(kOk, 0, 0).u8(0);  // 12: root
  for (std::size_t i = 0; i < 200; ++i) m.ptr(static_cast<std::uint16_t>(m.size() - (i ? 2 : 1)));
  // Each pointer points to the previous one: legal order, but more hops than any name needs.
  EXPECT_EQ(code_of(read_name(m.data, 13 + 2 * 10)), "ok");
  EXPECT_EQ(code_of(read_name(m.data, m.size() - 2)), "dns_bad_pointer");
}

TEST(ReadName, ReservedLabelTypesAreRefused) {
  for (std::uint8_t type : {0x40, 0x80}) {
    Msg m;
    m.header(kOk, 0, 0).u8(type).u8(0);
    EXPECT_EQ(code_of(read_name(m.data, 12)), "dns_bad_label_type");
  }
}

TEST(ReadName, TooLongViaPointersIsRefused) {
  // Four 63-byte labels reached through pointers: 4 * 64 + 1 = 257 bytes uncompressed.
  Msg m;
  m.header(kOk, 0, 0).u8(63).raw(std::string(63, 'a')).u8(0);  // 12
  const auto first = static_cast<std::uint16_t>(m.size());
  m.u8(63).raw(std::string(63, 'b')).ptr(12);
  const auto second = static_cast<std::uint16_t>(m.size());
  m.u8(63).raw(std::string(63, 'c')).ptr(first);
  const auto third = static_cast<std::uint16_t>(m.size());
  m.u8(63).raw(std::string(63, 'd')).ptr(second);
  EXPECT_EQ(code_of(read_name(m.data, second)), "ok");  // 193 bytes
  EXPECT_EQ(code_of(read_name(m.data, third)), "dns_name_too_long");
}

TEST(ReadName, TruncatedNamesAreRefused) {
  Msg m;
  m.header(kOk, 0, 0).u8(5).raw("abc");  // label runs past the end
  EXPECT_EQ(code_of(read_name(m.data, 12)), "dns_name_truncated");
  Msg p;
  p.header(kOk, 0, 0).u8(0xc0);  // half a pointer
  EXPECT_EQ(code_of(read_name(p.data, 12)), "dns_name_truncated");
  Msg n;
  n.header(kOk, 0, 0).u8(1).raw("a");  // no terminating root label
  EXPECT_EQ(code_of(read_name(n.data, 12)), "dns_name_truncated");
  EXPECT_EQ(code_of(read_name(n.data, 100)), "dns_name_truncated");
}

// ---- responses -------------------------------------------------------------------------------

TEST(ParseResponse, SimpleA) {
  Msg m;
  m.header(kOk | 0x0400, 1, 2).question();
  m.ptr(12).a(300, 93, 184, 216, 34);
  m.ptr(12).a(120, 93, 184, 216, 35);
  auto r = parse(m);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->rcode, Rcode::kNoError);
  EXPECT_TRUE(r->authoritative);
  EXPECT_FALSE(r->truncated);
  EXPECT_EQ(texts(r->addresses), (std::vector<std::string>{"93.184.216.34", "93.184.216.35"}));
  EXPECT_EQ(r->ttl, 120u);  // the minimum over the records used
  EXPECT_EQ(r->canonical_name, "example.com");
}

TEST(ParseResponse, Aaaa) {
  Msg m;
  m.header(kOk, 1, 1).question("example.com", kTypeAaaa);
  m.ptr(12).rr(kTypeAaaa, 60, 16).u32(0x20010db8).u32(0).u32(0).u32(1);
  auto r = parse(m, "example.com", QueryType::kAaaa);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->addresses.size(), 1u);
  EXPECT_EQ(r->addresses[0].family, IpAddress::Family::kV6);
  EXPECT_EQ(r->addresses[0].bytes[0], 0x20);
  EXPECT_EQ(r->addresses[0].bytes[15], 0x01);
  EXPECT_EQ(r->ttl, 60u);
}

TEST(ParseResponse, QuestionIsComparedCaseInsensitively) {
  Msg m;
  m.header(kOk, 1, 1).question("ExAmPlE.CoM");
  m.ptr(12).a(30, 1, 2, 3, 4);
  EXPECT_EQ(code_of(parse(m, "example.COM.")), "ok");
}

TEST(ParseResponse, HeaderChecks) {
  EXPECT_EQ(code_of(parse(Msg().u16(kId).u16(kOk))), "dns_short_message");
  Msg query;
  query.header(0x0100, 1, 0).question();
  EXPECT_EQ(code_of(parse(query)), "dns_not_response");
  Msg wrong_id;
  wrong_id.header(kOk, 1, 1, 0, 0, kId + 1).question().ptr(12).a(30, 1, 2, 3, 4);
  EXPECT_EQ(code_of(parse(wrong_id)), "dns_id_mismatch");
  Msg opcode;
  opcode.header(kOk | (2 << 11), 1, 0).question();  // STATUS
  EXPECT_EQ(code_of(parse(opcode)), "dns_bad_opcode");
}

TEST(ParseResponse, QuestionMustBeOurs) {
  Msg other_name;
  other_name.header(kOk, 1, 1).question("example.org").ptr(12).a(30, 1, 2, 3, 4);
  EXPECT_EQ(code_of(parse(other_name)), "dns_question_mismatch");
  Msg other_type;
  other_type.header(kOk, 1, 0).question("example.com", kTypeAaaa);
  EXPECT_EQ(code_of(parse(other_type)), "dns_question_mismatch");
  Msg other_class;
  other_class.header(kOk, 1, 0).question("example.com", kTypeA, kClassChaos);
  EXPECT_EQ(code_of(parse(other_class)), "dns_question_mismatch");
  Msg none;
  none.header(kOk, 0, 1).name("example.com").a(30, 1, 2, 3, 4);
  EXPECT_EQ(code_of(parse(none)), "dns_question_mismatch");
  Msg two;
  two.header(kOk, 2, 0).question().question();
  EXPECT_EQ(code_of(parse(two)), "dns_question_mismatch");
  Msg cut;
  cut.header(kOk, 1, 0).name("example.com").u16(kTypeA);
  EXPECT_EQ(code_of(parse(cut)), "dns_record_truncated");
  Msg superdomain;  // a parent zone's name is not our name
  superdomain.header(kOk, 1, 0).question("com");
  EXPECT_EQ(code_of(parse(superdomain, "example.com")), "dns_question_mismatch");
}

TEST(ParseResponse, ErrorRcodesAreDistinct) {
  for (auto [flags, rcode] : {std::pair{0x8182, Rcode::kServFail}, {0x8185, Rcode::kRefused},
                              {0x8181, Rcode::kFormErr}, {0x8184, Rcode::kNotImp}}) {
    Msg with_question;
    with_question.header(static_cast<std::uint16_t>(flags), 1, 0).question();
    auto r = parse(with_question);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->rcode, rcode);
    // Error responses may omit the question (they carry nothing to poison with).
    Msg without;
    without.header(static_cast<std::uint16_t>(flags), 0, 0);
    auto w = parse(without);
    ASSERT_TRUE(w.ok()) << w.error().message;
    EXPECT_EQ(w->rcode, rcode);
    EXPECT_TRUE(w->addresses.empty());
  }
  Msg nx_without_question;  // NXDOMAIN is data: it must name our question
  nx_without_question.header(kNxDomain, 0, 0);
  EXPECT_EQ(code_of(parse(nx_without_question)), "dns_question_mismatch");
}

TEST(ParseResponse, ExtendedRcodeFromOpt) {
  Msg m;
  m.header(kOk, 1, 0, 0, 1).question();
  m.u8(0).rr(kTypeOpt, 0x01000000, 0, 1232);  // extended RCODE 1 -> 16 (BADVERS)
  auto r = parse(m);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(static_cast<int>(r->rcode), 16);
  Msg two;
  two.header(kOk, 1, 0, 0, 2).question();
  two.u8(0).rr(kTypeOpt, 0, 0, 1232).u8(0).rr(kTypeOpt, 0, 0, 1232);
  EXPECT_EQ(code_of(parse(two)), "dns_bad_opt");
}

TEST(ParseResponse, NxDomainWithSoaGivesNegativeTtl) {
  Msg m;
  m.header(kNxDomain, 1, 0, 1).question("nope.example.com");
  // Owner "example.com" via a pointer into the question (12 + 5 skips "nope").
  m.ptr(12 + 5).rr(kTypeSoa, 3600, 0);
  const std::size_t rdlength_at = m.size() - 2;
  const std::size_t rdata = m.size();
  m.name_then_ptr("ns1", 12 + 5).name_then_ptr("hostmaster", 12 + 5);
  m.u32(2024010101).u32(7200).u32(900).u32(1209600).u32(300);  // MINIMUM 300
  const auto rdlength = static_cast<std::uint16_t>(m.size() - rdata);
  m.data[rdlength_at] = static_cast<std::uint8_t>(rdlength >> 8);
  m.data[rdlength_at + 1] = static_cast<std::uint8_t>(rdlength & 0xff);
  auto r = parse(m, "nope.example.com");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->rcode, Rcode::kNxDomain);
  EXPECT_TRUE(r->addresses.empty());
  ASSERT_TRUE(r->negative_ttl.has_value());
  EXPECT_EQ(*r->negative_ttl, 300u);  // min(SOA TTL 3600, MINIMUM 300), RFC 2308 5
}

TEST(ParseResponse, NegativeTtlUsesSoaTtlWhenSmaller) {
  Msg m;
  m.header(kOk, 1, 0, 1).question();  // NODATA
  m.ptr(12).rr(kTypeSoa, 60, static_cast<std::uint16_t>(2 + 2 + 20));
  m.ptr(12).ptr(12).u32(1).u32(2).u32(3).u32(4).u32(600);
  auto r = parse(m);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->rcode, Rcode::kNoError);
  EXPECT_TRUE(r->addresses.empty());
  EXPECT_EQ(r->ttl, 0u);
  EXPECT_EQ(r->negative_ttl, 60u);
}

TEST(ParseResponse, SoaOfAnUnrelatedZoneIsIgnored) {
  Msg m;
  m.header(kNxDomain, 1, 0, 1).question("nope.example.com");
  m.name("ample.com").rr(kTypeSoa, 5, static_cast<std::uint16_t>(2 + 2 + 20));
  m.ptr(12).ptr(12).u32(1).u32(2).u32(3).u32(4).u32(5);
  auto r = parse(m, "nope.example.com");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->negative_ttl.has_value());
}

TEST(ParseResponse, BadSoaDataIsRefused) {
  Msg m;
  m.header(kNxDomain, 1, 0, 1).question();
  m.ptr(12).rr(kTypeSoa, 5, static_cast<std::uint16_t>(2 + 2 + 16));  // one number short
  m.ptr(12).ptr(12).u32(1).u32(2).u32(3).u32(4);
  EXPECT_EQ(code_of(parse(m)), "dns_bad_rdata");
}

TEST(ParseResponse, TruncatedBitIsReportedAndPartialRecordsKept) {
  Msg m;
  m.header(kOk | 0x0200, 1, 3).question();
  m.ptr(12).a(30, 10, 0, 0, 1);
  m.ptr(12).a(30, 10, 0, 0, 2);
  m.ptr(12).rr(kTypeA, 30, 4).u8(10);  // cut off by the sender
  auto r = parse(m);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->truncated);
  EXPECT_EQ(texts(r->addresses), (std::vector<std::string>{"10.0.0.1", "10.0.0.2"}));
}

TEST(ParseResponse, TruncatedRecordsAreRefusedWithoutTc) {
  Msg rdata;
  rdata.header(kOk, 1, 1).question().ptr(12).rr(kTypeA, 30, 4).u8(10).u8(0);
  EXPECT_EQ(code_of(parse(rdata)), "dns_record_truncated");
  Msg fixed;
  fixed.header(kOk, 1, 1).question().ptr(12).u16(kTypeA).u16(kClassIn);
  EXPECT_EQ(code_of(parse(fixed)), "dns_record_truncated");
  Msg missing;  // ANCOUNT says 2, one is there
  missing.header(kOk, 1, 2).question().ptr(12).a(30, 1, 2, 3, 4);
  EXPECT_EQ(code_of(parse(missing)), "dns_name_truncated");
  Msg bad_owner;
  bad_owner.header(kOk, 1, 1).question().ptr(40).a(30, 1, 2, 3, 4);
  EXPECT_EQ(code_of(parse(bad_owner)), "dns_bad_pointer");
}

TEST(ParseResponse, TrailingBytesAreRefused) {
  Msg m;
  m.header(kOk, 1, 1).question().ptr(12).a(30, 1, 2, 3, 4).u8(0);
  EXPECT_EQ(code_of(parse(m)), "dns_trailing_bytes");
}

TEST(ParseResponse, WrongAddressLengthIsRefused) {
  Msg m;
  m.header(kOk, 1, 1).question().ptr(12).rr(kTypeA, 30, 5).u32(0x01020304).u8(5);
  EXPECT_EQ(code_of(parse(m)), "dns_bad_rdata");
  Msg v6;
  v6.header(kOk, 1, 1).question().ptr(12).rr(kTypeAaaa, 30, 4).u32(1);
  EXPECT_EQ(code_of(parse(v6)), "dns_bad_rdata");
}

TEST(ParseResponse, FollowsCnameChain) {
  Msg m;
  m.header(kOk, 1, 3).question("www.example.com");
  m.ptr(12).rr(kTypeCname, 600, static_cast<std::uint16_t>(wire_size("cdn.example.net")));
  const auto cdn = static_cast<std::uint16_t>(m.size());
  m.name("cdn.example.net");
  m.ptr(cdn).rr(kTypeCname, 90, static_cast<std::uint16_t>(4 + 2));
  const auto edge = static_cast<std::uint16_t>(m.size());
  m.name_then_ptr("edg", cdn + 4);  // "edg.example.net"
  m.ptr(edge).a(300, 203, 0, 113, 7);
  auto r = parse(m, "www.example.com");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->cname_hops, 2u);
  EXPECT_EQ(r->canonical_name, "edg.example.net");
  EXPECT_EQ(texts(r->addresses), (std::vector<std::string>{"203.0.113.7"}));
  EXPECT_EQ(r->ttl, 90u);  // min over both CNAMEs and the A record
}

TEST(ParseResponse, RecordsOfUnrelatedOwnersAreIgnored) {
  // A poisoning attempt: the server slips in records for names we did not ask about, and an A
  // record for the query name next to its CNAME.
  Msg m;
  m.header(kOk, 1, 4).question("www.example.com");
  m.name("bank.example").a(86400, 6, 6, 6, 6);
  m.ptr(12).rr(kTypeCname, 60, static_cast<std::uint16_t>(wire_size("real.example.com")));
  const auto real = static_cast<std::uint16_t>(m.size());
  m.name("real.example.com");
  m.ptr(12).a(86400, 6, 6, 6, 7);  // the query name has a CNAME: its own A is not used
  m.ptr(real).a(60, 192, 0, 2, 1);
  auto r = parse(m, "www.example.com");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(texts(r->addresses), (std::vector<std::string>{"192.0.2.1"}));
  EXPECT_EQ(r->ttl, 60u);
}

TEST(ParseResponse, OnlyTheQueriedTypeAndClassIsUsed) {
  Msg m;
  m.header(kOk, 1, 3).question();
  m.ptr(12).rr(kTypeAaaa, 30, 16).u32(1).u32(2).u32(3).u32(4);
  m.ptr(12).rr(kTypeA, 30, 4, kClassChaos).u32(0x0a000001);
  m.ptr(12).a(30, 1, 1, 1, 1);
  auto r = parse(m);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(texts(r->addresses), (std::vector<std::string>{"1.1.1.1"}));
}

TEST(ParseResponse, CnameChainIsBounded) {
  // c0 -> c1 -> ... -> c9: nine hops, one more than kMaxCnameHops.
  Msg m;
  m.header(kOk, 1, 9).question("c0.example");
  for (int i = 0; i < 9; ++i) {
    const std::string owner = "c" + std::to_string(i) + ".example";
    const std::string target = "c" + std::to_string(i + 1) + ".example";
    m.name(owner).rr(kTypeCname, 30, static_cast<std::uint16_t>(wire_size(target))).name(target);
  }
  EXPECT_EQ(code_of(parse(m, "c0.example")), "dns_cname_chain_too_long");

  Msg eight;  // exactly kMaxCnameHops is fine
  eight.header(kOk, 1, 9).question("c0.example");
  for (int i = 0; i < 8; ++i) {
    const std::string owner = "c" + std::to_string(i) + ".example";
    const std::string target = "c" + std::to_string(i + 1) + ".example";
    eight.name(owner).rr(kTypeCname, 30, static_cast<std::uint16_t>(wire_size(target)))
        .name(target);
  }
  eight.name("c8.example").a(30, 192, 0, 2, 8);
  auto r = parse(eight, "c0.example");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->cname_hops, 8u);
  EXPECT_EQ(texts(r->addresses), (std::vector<std::string>{"192.0.2.8"}));
}

TEST(ParseResponse, CnameLoopEndsAsTooLong) {
  Msg m;
  m.header(kOk, 1, 2).question("a.example");
  m.name("a.example").rr(kTypeCname, 30, static_cast<std::uint16_t>(wire_size("b.example")))
      .name("b.example");
  m.name("b.example").rr(kTypeCname, 30, static_cast<std::uint16_t>(wire_size("a.example")))
      .name("a.example");
  EXPECT_EQ(code_of(parse(m, "a.example")), "dns_cname_chain_too_long");
}

TEST(ParseResponse, TwoCnamesForOneNameAreRefused) {
  Msg m;
  m.header(kOk, 1, 2).question();
  m.ptr(12).rr(kTypeCname, 30, static_cast<std::uint16_t>(wire_size("x.example"))).name("x.example");
  m.ptr(12).rr(kTypeCname, 30, static_cast<std::uint16_t>(wire_size("y.example"))).name("y.example");
  EXPECT_EQ(code_of(parse(m)), "dns_multiple_cname");
}

TEST(ParseResponse, CnameDataMustBeExactlyAName) {
  Msg longer;
  longer.header(kOk, 1, 1).question();
  longer.ptr(12).rr(kTypeCname, 30, static_cast<std::uint16_t>(wire_size("x.example") + 1))
      .name("x.example").u8(0);
  EXPECT_EQ(code_of(parse(longer)), "dns_bad_rdata");
  Msg shorter;  // the name runs into the next record
  shorter.header(kOk, 1, 2).question();
  shorter.ptr(12).rr(kTypeCname, 30, 2).u8(1).raw("x").u8(0);
  shorter.data.pop_back();
  shorter.u8(1).raw("y").u8(0).a(30, 1, 2, 3, 4);
  EXPECT_NE(code_of(parse(shorter)), "ok");
}

TEST(ParseResponse, TtlWithTopBitCountsAsZero) {
  Msg m;
  m.header(kOk, 1, 2).question();
  m.ptr(12).a(0x80000000u, 1, 2, 3, 4);
  m.ptr(12).a(30, 1, 2, 3, 5);
  auto r = parse(m);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->ttl, 0u);  // RFC 2181 8
}

TEST(ParseResponse, DuplicateAddressesAreMerged) {
  Msg m;
  m.header(kOk, 1, 2).question();
  m.ptr(12).a(30, 1, 2, 3, 4);
  m.ptr(12).a(20, 1, 2, 3, 4);
  auto r = parse(m);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->addresses.size(), 1u);
  EXPECT_EQ(r->ttl, 20u);
}

TEST(ParseResponse, OwnerNamesWithOtherCaseMatch) {
  Msg m;
  m.header(kOk, 1, 1).question();
  m.name("EXAMPLE.com").a(30, 9, 9, 9, 9);
  auto r = parse(m);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(texts(r->addresses), (std::vector<std::string>{"9.9.9.9"}));
}

TEST(ParseResponse, LabelWithADotDoesNotMatchTwoLabels) {
  // "example.com" as ONE label is not example.com.
  Msg m;
  m.header(kOk, 1, 1).question();
  m.u8(11).raw("example.com").u8(0).a(30, 6, 6, 6, 6);
  auto r = parse(m);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->addresses.empty());
}

}  // namespace
}  // namespace moat::core::net::dns

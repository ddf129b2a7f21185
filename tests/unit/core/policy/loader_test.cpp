#include "core/policy/loader.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace moat::core::policy {
namespace {

const std::string kSource = MOAT_SOURCE_DIR;

// A minimal valid policy; tests splice their own lines in.
std::string minimal(const std::string& services_extra = "", const std::string& top_extra = "") {
  return "moat: policy/v1\n"
         "metadata:\n"
         "  publisher: Example\n"
         "  name: example\n"
         "  revision: 3\n"
         "services:\n"
         "  - id: web\n"
         "    name: Web\n"
         "    hosts: [\"*.example.com\", api.example.net]\n"
         "    purpose: The app\n" +
         services_extra + top_extra;
}

const Diagnostic* find(const LoadResult& r, const std::string& needle) {
  auto it = std::find_if(r.diagnostics.begin(), r.diagnostics.end(), [&](const Diagnostic& d) {
    return d.message.find(needle) != std::string::npos;
  });
  return it == r.diagnostics.end() ? nullptr : &*it;
}

std::string all(const LoadResult& r) {
  std::string s;
  for (const auto& d : r.diagnostics) s += format(d) + "\n";
  return s;
}

TEST(PolicyLoader, BundledExampleIsValidWithoutWarnings) {
  LoadResult r = load_policy_file(kSource + "/examples/salestim.yaml");
  ASSERT_TRUE(r.policy) << all(r);
  EXPECT_TRUE(r.diagnostics.empty()) << all(r);
  const Policy& p = *r.policy;
  EXPECT_EQ(p.metadata.name, "salestim");
  EXPECT_EQ(p.metadata.classification, "public");
  ASSERT_EQ(p.flows.size(), 3u);
  EXPECT_TRUE(p.flows[2].customer_network);
  EXPECT_FALSE(p.flows[0].customer_network);
  ASSERT_EQ(p.services.size(), 6u);
  std::size_t hosts = 0;
  for (const auto& s : p.services) {
    hosts += s.hosts.size();
    EXPECT_EQ(s.ports, std::vector<std::uint16_t>{443}) << s.id;
    EXPECT_FALSE(s.purpose.empty()) << s.id;
    EXPECT_EQ(s.flow, "platform") << s.id;
  }
  EXPECT_EQ(hosts, 10u);  // every host of "Domains whitelisting"
  ASSERT_EQ(p.services[0].pins.size(), 1u);
  EXPECT_EQ(p.services[0].pins[0].base64, "+pHxm2I5Ejq4BEmb3uAe1e1PUu/xh20r7/slACMzx/4=");
  ASSERT_EQ(p.certificates.size(), 1u);
  EXPECT_EQ(p.certificates[0].fingerprint_sha256,
            "fd5b33fcdd9d4afd2a941b230f73f03b91678fd05f52dc4a22163e6926bc4c43");
  EXPECT_EQ(p.certificates[0].serial, "7eb6cb4ac0117946");
  EXPECT_EQ(p.tls.min_version, "1.2");
  EXPECT_EQ(p.tls.hsts.max_age, 63072000u);
}

TEST(PolicyLoader, PageTypoIsRejectedWithLocation) {
  LoadResult r = load_policy_file(kSource + "/tests/fixtures/policy/salestim-page-typo.yaml");
  EXPECT_FALSE(r.policy);
  ASSERT_EQ(r.diagnostics.size(), 1u) << all(r);
  const Diagnostic& d = r.diagnostics[0];
  EXPECT_EQ(d.severity, Severity::kError);
  EXPECT_EQ(d.where.line, 47);
  // `      - hosts: ["*.msecnd.net", "*..visualstudio.com"]`: the pattern starts at column 34;
  // the empty label is the second '.', two bytes in.
  EXPECT_EQ(d.where.column, 36) << format(d);
  EXPECT_NE(d.message.find("*..visualstudio.com"), std::string::npos);
  EXPECT_NE(d.hint.find("*.visualstudio.com"), std::string::npos) << d.hint;
}

TEST(PolicyLoader, UnknownKeyGetsDidYouMean) {
  LoadResult r = load_policy_text(minimal("    purpse: typo\n"), "t.yaml");
  EXPECT_FALSE(r.policy);
  const Diagnostic* d = find(r, "unknown key 'purpse'");
  ASSERT_NE(d, nullptr) << all(r);
  EXPECT_EQ(d->where.line, 11);
  EXPECT_EQ(d->where.column, 5);
  EXPECT_EQ(d->hint, "did you mean 'purpose'?");
  EXPECT_EQ(format(*d), "t.yaml:11:5: error: unknown key 'purpse' in service\n  hint: did you mean 'purpose'?");
}

TEST(PolicyLoader, UnknownTopLevelKeyListsAllowed) {
  LoadResult r = load_policy_text(minimal("", "zzzzzz: 1\n"), "t.yaml");
  const Diagnostic* d = find(r, "unknown key 'zzzzzz'");
  ASSERT_NE(d, nullptr) << all(r);
  EXPECT_NE(d->hint.find("allowed keys:"), std::string::npos);
}

TEST(PolicyLoader, DuplicateServiceIds) {
  LoadResult r = load_policy_text(minimal("  - id: web\n    name: Again\n    hosts: [a.example.org]\n"
                                          "    purpose: P\n"),
                                  "t.yaml");
  const Diagnostic* d = find(r, "duplicate service id 'web'");
  ASSERT_NE(d, nullptr) << all(r);
  EXPECT_EQ(d->where.line, 11);
  EXPECT_EQ(d->hint, "first defined at line 7");
}

TEST(PolicyLoader, PortsOutsideRangeOrNotNumbers) {
  for (const char* bad : {"0", "65536", "-1", "\"443\"", "https", "1e3", "99999999999999999999"}) {
    LoadResult r = load_policy_text(minimal(std::string("    ports: [") + bad + "]\n"), "t.yaml");
    EXPECT_FALSE(r.policy) << bad;
    ASSERT_FALSE(r.diagnostics.empty()) << bad;
    EXPECT_EQ(r.diagnostics[0].where.line, 11) << bad;
    EXPECT_EQ(r.diagnostics[0].where.column, 13) << bad << ": " << all(r);
  }
  LoadResult ok = load_policy_text(minimal("    ports: [443, 8443, 1, 65535]\n"), "t.yaml");
  ASSERT_TRUE(ok.policy) << all(ok);
  EXPECT_EQ(ok.policy->services[0].ports, (std::vector<std::uint16_t>{443, 8443, 1, 65535}));
}

TEST(PolicyLoader, PinsMustBeBase64Of32Bytes) {
  LoadResult r = load_policy_text(
      minimal("    pins: [\"not base64\", \"AAAA\", \"+pHxm2I5Ejq4BEmb3uAe1e1PUu/xh20r7/slACMzx/4=\"]\n"),
      "t.yaml");
  EXPECT_FALSE(r.policy);
  EXPECT_EQ(std::count_if(r.diagnostics.begin(), r.diagnostics.end(),
                          [](const Diagnostic& d) {
                            return d.message.find("not the base64 of 32 bytes") != std::string::npos;
                          }),
            2)
      << all(r);
}

TEST(PolicyLoader, BillionLaughsIsRefused) {
  std::string bomb = "moat: policy/v1\na: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'k'; ++c) {
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) bomb += std::string(i ? ", *" : "*") + prev;
    bomb += "]\n";
    prev = c;
  }
  LoadResult r = load_policy_text(bomb, "bomb.yaml");
  EXPECT_FALSE(r.policy);
  ASSERT_EQ(r.diagnostics.size(), 1u) << all(r);
  EXPECT_NE(r.diagnostics[0].message.find("expands to more than"), std::string::npos);
}

TEST(PolicyLoader, DeepNestingIsAnErrorNotACrash) {
  std::string deep = "moat: " + std::string(100000, '[') + std::string(100000, ']') + "\n";
  LoadResult r = load_policy_text(deep, "deep.yaml");
  EXPECT_FALSE(r.policy);
  EXPECT_FALSE(r.diagnostics.empty());
}

TEST(PolicyLoader, UnquotedWildcardExplainsAliases) {
  LoadResult r = load_policy_text(
      "moat: policy/v1\nmetadata: {publisher: X, name: x, revision: 1}\nservices:\n"
      "  - id: a\n    name: A\n    purpose: P\n    hosts: [*.example.com]\n",
      "t.yaml");
  EXPECT_FALSE(r.policy);
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].where.line, 7);
  EXPECT_NE(r.diagnostics[0].hint.find("is an alias: quote"), std::string::npos) << all(r);
}

TEST(PolicyLoader, NotAPolicy) {
  for (const char* text : {"", "just a scalar", "- a\n- b\n", "a: [unclosed", "\x01\x02\x03",
                           "moat: policy/v1\n---\nmoat: policy/v1\n", "key: value\n"}) {
    LoadResult r = load_policy_text(text, "t.yaml");
    EXPECT_FALSE(r.policy) << text;
    EXPECT_FALSE(r.diagnostics.empty()) << text;
    EXPECT_TRUE(has_errors(r.diagnostics)) << text;
  }
  std::string with_nul("moat: policy/v1\0x", 17);
  LoadResult r = load_policy_text(with_nul, "t.yaml");
  ASSERT_FALSE(r.diagnostics.empty());
  EXPECT_NE(r.diagnostics[0].message.find("NUL"), std::string::npos);
}

TEST(PolicyLoader, MissingRequiredKeys) {
  LoadResult r = load_policy_text("moat: policy/v1\nmetadata: {publisher: X}\nservices:\n  - id: a\n",
                                  "t.yaml");
  for (const char* needle : {"'name'", "'revision'", "'hosts'", "'purpose'"}) {
    EXPECT_NE(find(r, needle), nullptr) << needle << "\n" << all(r);
  }
}

TEST(PolicyLoader, WrongSchemaAndOldTls) {
  LoadResult r = load_policy_text(minimal("", "tls: {min_version: \"1.0\"}\n"), "t.yaml");
  const Diagnostic* d = find(r, "TLS 1.0 is not allowed");
  ASSERT_NE(d, nullptr) << all(r);
  EXPECT_NE(d->hint.find("RFC 8996"), std::string::npos);
  LoadResult s = load_policy_text("moat: policy/v9\n", "t.yaml");
  EXPECT_NE(find(s, "unsupported schema 'policy/v9'"), nullptr) << all(s);
}

TEST(PolicyLoader, UnknownFlowIsAnError) {
  LoadResult r = load_policy_text(
      minimal("    flow: nope\n", "flows:\n  - {id: platform, name: P, customer_network: true}\n"),
      "t.yaml");
  const Diagnostic* d = find(r, "unknown flow 'nope'");
  ASSERT_NE(d, nullptr) << all(r);
  EXPECT_EQ(d->hint, "flows defined: platform");
}

TEST(PolicyLoader, FileProblemsAreReported) {
  LoadResult dir = load_policy_file(kSource + "/examples");
  EXPECT_TRUE(dir.unreadable);
  EXPECT_NE(dir.diagnostics.at(0).message.find("directory"), std::string::npos);
  LoadResult missing = load_policy_file(kSource + "/no/such/file.yaml");
  EXPECT_TRUE(missing.unreadable);
}

std::shared_ptr<const Policy> load_ok(const std::string& text, const std::string& name) {
  LoadResult r = load_policy_text(text, name);
  EXPECT_TRUE(r.policy) << all(r);
  return r.policy;
}

TEST(PolicySetChecks, DuplicateNamesAndOverlaps) {
  auto a = load_ok(minimal(), "a.yaml");
  auto b = load_ok(minimal(), "b.yaml");
  ASSERT_TRUE(a && b);
  std::vector<std::shared_ptr<const Policy>> both{a, b};
  auto d = check_policy_set(both);
  EXPECT_TRUE(has_errors(d));

  auto c = load_ok(
      "moat: policy/v1\nmetadata: {publisher: C, name: c, revision: 1}\nservices:\n"
      "  - {id: api, name: API, purpose: P, hosts: [www.example.com, \"*.deep.example.com\"]}\n",
      "c.yaml");
  std::vector<std::shared_ptr<const Policy>> overlapping{a, c};
  auto w = check_policy_set(overlapping);
  EXPECT_FALSE(has_errors(w));
  ASSERT_EQ(w.size(), 2u);
  EXPECT_NE(w[0].message.find("overlaps '*.example.com'"), std::string::npos) << format(w[0]);
  EXPECT_EQ(w[0].where.file, "c.yaml");
}

TEST(PolicySetChecks, RevisionMustNotGoBackwards) {
  auto newer = load_ok(minimal(), "new.yaml");
  std::string old_text = minimal();
  old_text.replace(old_text.find("revision: 3"), 11, "revision: 5");
  auto older = load_ok(old_text, "old.yaml");
  auto d = check_revision(*older, *newer);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].severity, Severity::kError);
  EXPECT_EQ(d[0].where.line, 5);
  EXPECT_NE(d[0].hint.find("revision 6"), std::string::npos);
  EXPECT_TRUE(check_revision(*newer, *older).empty());
}

}  // namespace
}  // namespace moat::core::policy

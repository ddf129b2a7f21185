// The cert mode over files: renderers, target parsing, and verify's checks and exit codes.
#include "cert/cert.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "../core/tls/test_certs.hpp"

namespace moat::cert {
namespace {

namespace fs = std::filesystem;

class CertModeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("moat-cert-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    key_ = test::make_key("p256");
    test::CertSpec spec;
    spec.subject_cns = {"www.example.test"};
    spec.sans = {"DNS:www.example.test", "DNS:*.api.example.test"};
    auto now = std::chrono::system_clock::now();
    long t = static_cast<long>(
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
    spec.not_before = t - 86400;
    spec.not_after = t + 86400 * 40 + 3600;  // 40 full days left
    leaf_ = test::make_cert(key_.get(), spec);
    leaf_path_ = write("leaf.pem", test::to_pem(leaf_.get()));
    pin_ = core::tls::spki_pin(leaf_.get());
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& content) {
    auto path = dir_ / name;
    std::ofstream(path, std::ios::binary) << content;
    return path.string();
  }

  std::string policy(const std::string& hosts, const std::string& pins) {
    std::string text =
        "moat: policy/v1\n"
        "metadata: {publisher: T, name: t, title: T, classification: public, revision: 1}\n"
        "flows:\n"
        "  - {id: platform, name: N, description: D, customer_network: true}\n"
        "services:\n"
        "  - id: web\n"
        "    name: Web\n"
        "    flow: platform\n"
        "    hosts: [" +
        hosts +
        "]\n"
        "    ports: [443]\n"
        "    purpose: P\n";
    if (!pins.empty()) text += "    pins: [" + pins + "]\n";
    return write("policy.yaml", text);
  }

  int run_verify(VerifyOptions options, std::string& out, std::string& err) {
    std::ostringstream o, e;
    int code = verify(options, o, e);
    out = o.str();
    err = e.str();
    return code;
  }

  fs::path dir_;
  core::tls::EvpPkeyPtr key_;
  core::tls::X509Ptr leaf_;
  std::string leaf_path_;
  std::string pin_;
};

TEST(Printable, EscapesControlsAndInvalidUtf8) {
  EXPECT_EQ(printable("plain"), "plain");
  EXPECT_EQ(printable("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_EQ(printable("a\nb\x1b[31m"), "a\\x0ab\\x1b[31m");
  EXPECT_EQ(printable("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(printable("\xc2\x9b"), "\\xc2\\x9b");           // C1 control (CSI)
  EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");           // overlong '/'
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // surrogate
  EXPECT_EQ(printable("\xe2\x82"), "\\xe2\\x82");           // truncated sequence
  EXPECT_EQ(printable(std::string_view("a\0b", 3)), "a\\x00b");
}

TEST_F(CertModeTest, ShowRendersEveryFormat) {
  for (Format format : {Format::kText, Format::kMarkdown, Format::kJson}) {
    ShowOptions options;
    options.target.target = leaf_path_;
    options.format = format;
    std::ostringstream out, err;
    ASSERT_EQ(show(options, out, err), 0) << err.str();
    EXPECT_NE(out.str().find(pin_), std::string::npos);
    if (format == Format::kJson) {
      auto doc = nlohmann::json::parse(out.str());
      EXPECT_EQ(doc["schema"], "moat.cert/v1");
      EXPECT_EQ(doc["certificates"][0]["validity"]["days_left"], 40);
      EXPECT_EQ(doc["certificates"][0]["alternative_names"]["dns"][1], "*.api.example.test");
    }
    if (format == Format::kMarkdown) {
      EXPECT_EQ(
          out.str().rfind("| Key | Value |\n|-----|-------|\n| Domain | www.example.test |\n", 0),
          0u);
    }
  }
}

TEST_F(CertModeTest, MarkdownEscapesPipesAndControls) {
  test::CertSpec spec;
  spec.subject_cns = {"a|b\n| Injected | row |"};
  auto cert = test::make_cert(key_.get(), spec);
  ShowOptions options;
  options.target.target = write("odd.pem", test::to_pem(cert.get()));
  options.format = Format::kMarkdown;
  std::ostringstream out, err;
  ASSERT_EQ(show(options, out, err), 0);
  EXPECT_NE(out.str().find("| Domain | a\\|b\\x0a\\| Injected \\| row \\| |\n"), std::string::npos)
      << out.str();
}

TEST_F(CertModeTest, TargetErrors) {
  struct Case {
    std::string target;
    std::string message;
  };
  std::vector<Case> cases = {
      {"", "TARGET is empty"},           {"nothing-here.pem", "no such file, and not HOST:PORT"},
      {"host:0", "not HOST:PORT"},       {"host:65536", "not HOST:PORT"},
      {"host:", "not HOST:PORT"},        {":443", "not HOST:PORT"},
      {"bad host:443", "not HOST:PORT"}, {"[not-v6]:443", "not HOST:PORT"},
      {dir_.string(), "is a directory"}, {(dir_ / "missing.pem").string(), "cannot open"},
  };
  for (const auto& c : cases) {
    TargetOptions t;
    t.target = c.target;
    auto r = load_source(t);
    ASSERT_FALSE(r) << c.target;
    EXPECT_NE(r.error().message.find(c.message), std::string::npos)
        << c.target << ": " << r.error().message;
  }
  TargetOptions t;
  t.target = "localhost:443";
  t.connect = "localhost";
  auto r = load_source(t);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("--connect localhost: not an IP"), std::string::npos);
}

TEST_F(CertModeTest, VerifyPassesAndFailsPerCheck) {
  VerifyOptions options;
  options.target.target = leaf_path_;
  options.host = "www.example.test";
  options.policies = {policy("\"*.example.test\"", "\"" + pin_ + "\"")};
  std::string out, err;
  EXPECT_EQ(run_verify(options, out, err), 0) << out << err;
  EXPECT_NE(out.find("result: ok, all 5 checks passed"), std::string::npos) << out;

  options.host = "x.api.example.test";  // the policy's wildcard matches, the certificate's does
  EXPECT_EQ(run_verify(options, out, err), 0) << out;

  options.host = "a.b.api.example.test";  // one label only for the certificate
  EXPECT_EQ(run_verify(options, out, err), 1);
  EXPECT_NE(out.find("FAIL name"), std::string::npos) << out;

  options.host = "www.example.test";
  options.min_days = 41;
  EXPECT_EQ(run_verify(options, out, err), 1);
  EXPECT_NE(out.find("FAIL days-left  40 days left, at least 41 required"), std::string::npos)
      << out;
  options.min_days = 40;
  EXPECT_EQ(run_verify(options, out, err), 0) << out;

  options.policies = {
      policy("\"*.example.test\"", "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"")};
  EXPECT_EQ(run_verify(options, out, err), 1);
  EXPECT_NE(out.find("FAIL pin"), std::string::npos) << out;

  options.policies = {policy("\"*.example.test\"", "")};
  EXPECT_EQ(run_verify(options, out, err), 1);
  EXPECT_NE(out.find("lists no pins"), std::string::npos) << out;
  options.allow_unpinned = true;
  EXPECT_EQ(run_verify(options, out, err), 0) << out;
}

TEST_F(CertModeTest, VerifyUsageErrors) {
  VerifyOptions options;
  options.target.target = leaf_path_;
  options.policies = {policy("\"*.example.test\"", "\"" + pin_ + "\"")};
  std::string out, err;
  EXPECT_EQ(run_verify(options, out, err), 2);  // a file target needs --host
  EXPECT_NE(err.find("needs --host"), std::string::npos) << err;
  options.host = "www.example.test";
  options.policies = {write("broken.yaml", "moat: policy/v1\nservices: 3\n")};
  EXPECT_EQ(run_verify(options, out, err), 2);
  EXPECT_NE(err.find("broken.yaml:"), std::string::npos) << err;
  options.policies = {};
  EXPECT_EQ(run_verify(options, out, err), 2);
}

}  // namespace
}  // namespace moat::cert

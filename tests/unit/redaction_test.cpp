// The host's use of SHHH (host/src/redaction.cpp): channel switches, the JSON-lines audit file
// (0600, sha256 only, one line per finding), the chorus_shhh_* metrics, and log lines redacted.
#include "redaction.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sodium.h>

#include "config.hpp"
#include "logging.hpp"
#include "metrics.hpp"

namespace chorus::host {
namespace {

namespace fs = std::filesystem;

const std::string kSecret = "TESTSECRET-abcdefghijklmnopqrstuvwx";

std::string sha256_hex(const std::string &s) {
  unsigned char d[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(d, reinterpret_cast<const unsigned char *>(s.data()), s.size());
  char hex[2 * sizeof d + 1];
  sodium_bin2hex(hex, sizeof hex, d, sizeof d);
  return hex;
}

std::vector<nlohmann::json> read_lines(const std::string &path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

class RedactionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("chorus-redaction-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    config_.rules.push_back({"test.secret", "TESTSECRET-[a-z]{24}", "critical", {"test"}});
  }
  void TearDown() override {
    uninstall_redaction();
    fs::remove_all(dir_);
  }
  void install() {
    std::string why;
    ASSERT_TRUE(install_redaction(config_, dir_.string(), &metrics_, &why)) << why;
  }
  std::string audit() const { return (dir_ / "shhh-audit.jsonl").string(); }

  fs::path dir_;
  ShhhConfig config_;
  MetricsRegistry metrics_;
};

TEST_F(RedactionTest, AuditsEachFindingWithItsHashNeverTheSecret) {
  install();
  EXPECT_FALSE(fs::exists(audit()));  // created on the first finding
  uint32_t n = 9;
  EXPECT_EQ(redact_for(shhh::Channel::kPubsub, false, "nothing here", "gossip", &n), "nothing here");
  EXPECT_EQ(n, 0u);
  EXPECT_FALSE(fs::exists(audit()));
  EXPECT_EQ(redact_for(shhh::Channel::kPubsub, false, "a " + kSecret + " b", "gossip", &n), "a [REDACTED] b");
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(redact_for(shhh::Channel::kUcxi, true, R"({"x":{"y":")" + kSecret + R"("}})", "ucxi", &n),
            R"({"x":{"y":"[REDACTED]"}})");
  struct stat st {};
  ASSERT_EQ(::stat(audit().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::stringstream whole;
  whole << std::ifstream(audit()).rdbuf();
  EXPECT_EQ(whole.str().find(kSecret), std::string::npos);
  const auto lines = read_lines(audit());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["channel"], "pubsub");
  EXPECT_EQ(lines[0]["source"], "gossip");
  EXPECT_EQ(lines[0]["rule"], "test.secret");
  EXPECT_EQ(lines[0]["severity"], "critical");
  EXPECT_EQ(lines[0]["tags"], nlohmann::json::array({"test"}));
  EXPECT_EQ(lines[0]["sha256"], sha256_hex(kSecret));
  EXPECT_EQ(lines[0]["offset"], 2);
  EXPECT_EQ(lines[0]["length"], kSecret.size());
  EXPECT_FALSE(lines[0].contains("json_path"));
  EXPECT_TRUE(lines[0]["ts"].get<std::string>().ends_with("Z"));
  EXPECT_EQ(lines[1]["channel"], "ucxi");
  EXPECT_EQ(lines[1]["json_path"], "/x/y");
  const std::string text = metrics_.render();
  EXPECT_NE(text.find(R"(chorus_shhh_findings_total{rule="test.secret",severity="critical",channel="pubsub"} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(chorus_shhh_findings_total{rule="test.secret",severity="critical",channel="ucxi"} 1)"),
            std::string::npos);
}

TEST_F(RedactionTest, ChannelsSwitchOffAndSoDoesTheWholeSentinel) {
  config_.pubsub = false;
  install();
  EXPECT_TRUE(redaction_enabled(shhh::Channel::kLog));
  EXPECT_FALSE(redaction_enabled(shhh::Channel::kPubsub));
  EXPECT_EQ(redact_for(shhh::Channel::kPubsub, false, kSecret, "gossip"), kSecret);
  EXPECT_EQ(redact_for(shhh::Channel::kUcxi, false, kSecret, "ucxi"), "[REDACTED]");
  config_.enabled = false;
  install();
  EXPECT_EQ(redact_for(shhh::Channel::kUcxi, false, kSecret, "ucxi"), kSecret);
  uninstall_redaction();
  EXPECT_EQ(redact_for(shhh::Channel::kLog, false, kSecret, "host"), kSecret);
}

TEST_F(RedactionTest, AuditFileOffOrElsewhereAndWriteFailuresAreCounted) {
  config_.audit_file = "off";
  install();
  EXPECT_EQ(audit_file_path(config_, dir_.string()), "");
  EXPECT_EQ(redact_for(shhh::Channel::kLog, false, kSecret, "host"), "[REDACTED]");
  EXPECT_FALSE(fs::exists(audit()));
  config_.audit_file = "sub/audit.jsonl";  // relative: under the state directory; sub/ does not exist
  EXPECT_EQ(audit_file_path(config_, dir_.string()), (dir_ / "sub/audit.jsonl").string());
  install();
  EXPECT_EQ(redact_for(shhh::Channel::kLog, false, kSecret, "host"), "[REDACTED]");  // never fatal
  EXPECT_EQ(redact_for(shhh::Channel::kLog, false, kSecret, "host"), "[REDACTED]");
  EXPECT_NE(metrics_.render().find("chorus_shhh_audit_errors_total 2"), std::string::npos) << metrics_.render();
  config_.audit_file = (dir_ / "abs.jsonl").string();
  install();
  redact_for(shhh::Channel::kLog, false, kSecret, "host");
  EXPECT_EQ(read_lines((dir_ / "abs.jsonl").string()).size(), 1u);
}

TEST_F(RedactionTest, ABadRuleKeepsTheRunningState) {
  install();
  ShhhConfig broken;
  broken.rules.push_back({"broken", "(unclosed", "high", {}});
  std::string why;
  EXPECT_FALSE(install_redaction(broken, dir_.string(), &metrics_, &why));
  EXPECT_EQ(why.rfind("host.shhh.rules: rule 'broken': ", 0), 0u) << why;
  EXPECT_EQ(redact_for(shhh::Channel::kLog, false, kSecret, "host"), "[REDACTED]");
}

// log() redacts before writing (stderr, captured here), in both formats, and audits with the
// component as the source.
TEST_F(RedactionTest, LogLinesAreRedactedBeforeTheyAreWritten) {
  install();
  for (const char *format : {"text", "json"}) {
    configure_logging(LogLevel::kInfo, format);
    ::testing::internal::CaptureStderr();
    log(LogLevel::kInfo, "some.plugin", "connecting with " + kSecret);
    log_flush();
    const std::string out = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(out.find(kSecret), std::string::npos) << out;
    EXPECT_NE(out.find("connecting with [REDACTED]"), std::string::npos) << out;
  }
  configure_logging(LogLevel::kInfo, "text");
  const auto lines = read_lines(audit());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["channel"], "log");
  EXPECT_EQ(lines[0]["source"], "some.plugin");
}

}  // namespace
}  // namespace chorus::host

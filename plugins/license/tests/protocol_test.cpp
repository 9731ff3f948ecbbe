// The exchange (protocol.cpp) and the cache (cache.cpp): what each answer means, timestamps, and
// what survives a reopen of the SQLite file.
#include <chorus/plugin.hpp>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "cache.hpp"
#include "protocol.hpp"

namespace chorus::license {
namespace {

constexpr const char *kValid =
    R"({"valid":true,"license_id":"lic-1","expires_at":"2030-01-01T00:00:00Z","features":["p2p","ai"]})";

TEST(Protocol, RequestBodyCarriesTheDocumentedFields) {
  const auto body = nlohmann::json::parse(request_body({"lic-1", "cluster-a", "agent-7", "1.2.3"}));
  EXPECT_EQ(body, (nlohmann::json{{"license_id", "lic-1"}, {"cluster_id", "cluster-a"}, {"agent_id", "agent-7"},
                                  {"product", "chorus-agent"}, {"version", "1.2.3"}}));
}

TEST(Protocol, AValidAnswerForOurLicence) {
  const Answer a = classify_answer(200, kValid, "", "lic-1");
  ASSERT_EQ(a.outcome, Outcome::valid) << a.reason;
  EXPECT_EQ(a.expires_at_unix_ms, 1893456000000);
  EXPECT_EQ(a.features, (std::vector<std::string>{"p2p", "ai"}));
}

TEST(Protocol, RefusalsAreInvalidWithTheServersReason) {
  for (int status : {200, 403}) {
    const Answer a = classify_answer(status, R"({"valid":false,"reason":"licence revoked"})", "", "lic-1");
    EXPECT_EQ(a.outcome, Outcome::invalid) << status;
    EXPECT_EQ(a.reason, "licence revoked");
  }
  // A 403 is a refusal even when its body is unreadable: fail closed.
  const Answer bare = classify_answer(403, "<html>forbidden</html>", "", "lic-1");
  EXPECT_EQ(bare.outcome, Outcome::invalid);
  EXPECT_FALSE(bare.reason.empty());
}

TEST(Protocol, EverythingElseIsUnreachableNotInvalid) {
  const struct {
    int status;
    const char *body;
  } cases[] = {
      {0, ""},                                                                             // connection refused
      {500, R"({"valid":false,"reason":"db down"})"},                                     // 5xx
      {404, "not here"},                                                                   // other 4xx
      {302, ""},                                                                           // redirect
      {200, "{not json"},                                                                  // malformed
      {200, "[]"},                                                                         // not an object
      {200, R"({"valid":"yes"})"},                                                        // no boolean
      {200, R"({"valid":true,"license_id":"lic-2","expires_at":"2030-01-01T00:00:00Z"})"},  // another id
      {200, R"({"valid":true,"license_id":"lic-1"})"},                                    // no expiry
      {200, R"({"valid":true,"license_id":"lic-1","expires_at":"tomorrow"})"},            // bad expiry
      {200, R"({"valid":true,"license_id":"lic-1","expires_at":"2030-01-01T00:00:00Z","features":[1]})"},
  };
  for (const auto &c : cases) {
    const Answer a = classify_answer(c.status, c.body, c.status == 0 ? "Connection refused" : "", "lic-1");
    EXPECT_EQ(a.outcome, Outcome::unreachable) << c.status << " " << c.body;
    EXPECT_FALSE(a.reason.empty()) << c.body;
  }
  EXPECT_EQ(classify_answer(0, "", "Connection refused", "lic-1").reason, "Connection refused");
}

TEST(Protocol, Rfc3339) {
  EXPECT_EQ(parse_rfc3339_ms("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parse_rfc3339_ms("2030-01-01T02:00:00.250+02:00"), 1893456000250);
  EXPECT_EQ(parse_rfc3339_ms("2029-12-31T23:00:00-01:00"), 1893456000000);
  EXPECT_EQ(parse_rfc3339_ms("2028-02-29T00:00:00Z").has_value(), true);
  for (const char *bad : {"", "2027-02-29T00:00:00Z", "2030-13-01T00:00:00Z", "2030-01-01 00:00:00Z",
                          "2030-01-01T00:00:00", "2030-01-01T00:00:00Zjunk", "2030-01-01T24:00:00Z",
                          "1969-12-31T23:59:59Z", "2030-01-01T00:00:00.Z"})
    EXPECT_FALSE(parse_rfc3339_ms(bad).has_value()) << bad;
  EXPECT_EQ(format_rfc3339_ms(1893456000000), "2030-01-01T00:00:00Z");
  EXPECT_EQ(format_rfc3339_ms(1893456000250), "2030-01-01T00:00:00.250Z");
}

class CacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/license-cache-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(CacheTest, KeepsAConfirmationAcrossReopenPerLicenceAndCluster) {
  const std::string path = dir_ + "/cache.db";
  {
    Cache c(path);
    EXPECT_FALSE(c.load("lic-1", "c").has_value());
    c.store("lic-1", "c", ConfirmedLicense{1000, 2000, {"p2p"}});
  }
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  Cache c(path);
  const auto got = c.load("lic-1", "c");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->validated_at_unix_ms, 1000);
  EXPECT_EQ(got->expires_at_unix_ms, 2000);
  EXPECT_EQ(got->features, std::vector<std::string>{"p2p"});
  EXPECT_FALSE(c.load("lic-2", "c").has_value());
  EXPECT_FALSE(c.load("lic-1", "other").has_value());
  c.forget("lic-1", "c");
  EXPECT_FALSE(c.load("lic-1", "c").has_value());
}

TEST_F(CacheTest, AnUnusableFileIsAClearError) {
  const std::string path = dir_ + "/cache.db";
  { FILE *f = std::fopen(path.c_str(), "w"); ASSERT_NE(f, nullptr); std::fputs("this is not a database, it is text long enough to matter", f); std::fclose(f); }
  try {
    Cache c(path);
    FAIL() << "opened a file that is not a database";
  } catch (const chorus::Error &e) {
    EXPECT_EQ(e.code(), CHORUS_E_IO);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
}

}  // namespace
}  // namespace chorus::license

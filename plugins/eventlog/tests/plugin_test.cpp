// eventlog on the SDK's FakeHost (chorus/testing/fake_host.hpp): the plugin's code is linked into
// this test, driven through its C ABI exactly as the agent drives it, with the fake host checking
// the ABI rules (routes, metrics, health, the stop protocol) as it goes.
#include <chorus/testing/fake_host.hpp>
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "request.hpp"

extern "C" const chorus_plugin_descriptor *chorus_plugin_entry_v1(const chorus_abi_info *) noexcept;

namespace {

// The config as the host hands it over: validated against the schema, every default filled in.
constexpr const char *kConfig = R"({"greeting":"hi","max_name_bytes":8})";

TEST(Request, AcceptsANameWithinTheLimit) {
  std::string why;
  const auto r = chorus::eventlog::parse_greet_request(R"({"name":"ada"})", 8, &why);
  ASSERT_TRUE(r.has_value()) << why;
  EXPECT_EQ(r->name, "ada");
}

TEST(Request, RefusesWhatIsNotANameWithinTheLimit) {
  for (const char *body : {"", "[]", "{}", R"({"name":7})", R"({"name":""})", R"({"name":"123456789"})", "{\"name\":"}) {
    std::string why;
    EXPECT_FALSE(chorus::eventlog::parse_greet_request(body, 8, &why).has_value()) << body;
    EXPECT_FALSE(why.empty()) << body;
  }
}

TEST(Plugin, DescriptorDeclaresTheConfigSchema) {
  const chorus_abi_info abi = chorus::testing::fake_abi_info();
  const chorus_plugin_descriptor *d = chorus_plugin_entry_v1(&abi);
  ASSERT_NE(d, nullptr);
  EXPECT_STREQ(d->id, "eventlog");
  const auto schema = nlohmann::json::parse(d->config_schema_json);
  EXPECT_EQ(schema.at("properties").at("greeting").at("default"), "hello");
  EXPECT_EQ(schema.at("properties").at("max_name_bytes").at("default"), 64);
}

TEST(Plugin, GreetsCountsAndRefusesBadRequests) {
  chorus::testing::FakeHost host;
  {
    auto p = chorus::testing::load(&chorus_plugin_entry_v1, host, kConfig);
    ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
    EXPECT_EQ(host.health().state, CHORUS_HEALTH_OK);

    const auto ok = host.http("POST", "/eventlog/greet", R"({"name":"ada"})");
    EXPECT_EQ(ok.status, 200);
    EXPECT_EQ(nlohmann::json::parse(ok.body).at("greeting"), "hi, ada");

    const auto bad = host.http("POST", "/eventlog/greet", R"({"name":"far too long"})");
    EXPECT_EQ(bad.status, 400);
    EXPECT_EQ(host.metric_value("chorus_eventlog_requests_total", {"ok"}), 1.0);
    EXPECT_EQ(host.metric_value("chorus_eventlog_requests_total", {"bad_request"}), 1.0);
    EXPECT_EQ(p.stop(), CHORUS_OK);
  }
  EXPECT_TRUE(host.violations().empty()) << host.violations().front();
}

TEST(Plugin, ReconfigureChangesTheGreetingWithoutARestart) {
  chorus::testing::FakeHost host;
  auto p = chorus::testing::load(&chorus_plugin_entry_v1, host, kConfig);
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  ASSERT_EQ(p.reconfigure(R"({"greeting":"good day","max_name_bytes":8})"), CHORUS_OK) << p.message();
  const auto r = host.http("POST", "/eventlog/greet", R"({"name":"ada"})");
  EXPECT_EQ(nlohmann::json::parse(r.body).at("greeting"), "good day, ada");
}

}  // namespace

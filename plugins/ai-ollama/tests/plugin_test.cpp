// ai-ollama on the SDK's FakeHost, linked into this test (src/plugin.cpp): what the plugin itself declares
// (descriptor, config schema, settings source, metric names). The shared provider is tested in
// libs/ai-common/tests.
#include <chorus/services/ai_provider_v1.h>
#include <chorus/testing/fake_host.hpp>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

extern "C" const chorus_plugin_descriptor *chorus_plugin_entry_v1(const chorus_abi_info *) noexcept;

namespace {

const chorus_plugin_descriptor *descriptor() {
  const chorus_abi_info abi = chorus::testing::fake_abi_info();
  return chorus_plugin_entry_v1(&abi);
}

TEST(Plugin, DeclaresASwappableAiProviderAndItsSchema) {
  const chorus_plugin_descriptor *d = descriptor();
  ASSERT_NE(d, nullptr);
  EXPECT_STREQ(d->id, "ai-ollama");
  ASSERT_EQ(d->provides_count, 1u);
  EXPECT_STREQ(d->provides[0].service, CHORUS_AI_PROVIDER_SERVICE);
  EXPECT_EQ(d->provides[0].major, CHORUS_AI_PROVIDER_V1_MAJOR);
  EXPECT_NE(d->provides[0].flags & CHORUS_PROVIDE_SWAPPABLE, 0u);
  EXPECT_EQ(d->requirements_count, 0u);
  ASSERT_NE(d->config_schema_json, nullptr);
  const auto schema = nlohmann::json::parse(d->config_schema_json);
  EXPECT_EQ(schema.at("properties").at("endpoint").at("default"), "http://localhost:11434");
  EXPECT_EQ(schema.at("additionalProperties"), false);
}

TEST(Plugin, StartsServesItsTableAndStopsCleanly) {
  chorus::testing::FakeHost host;
  {
    auto p = chorus::testing::load(&chorus_plugin_entry_v1, host, R"({"endpoint":"http://127.0.0.1:9","health_interval_ms":0})");
    ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
    ASSERT_EQ(p.services().size(), 1u);
    const auto *table = static_cast<const chorus_ai_provider_v1 *>(p.services()[0].table.table);
    EXPECT_GE(table->struct_size, sizeof(uint32_t));
    EXPECT_TRUE(host.metric_defined("chorus_ai_ollama_requests_total"));
    EXPECT_EQ(p.stop(), CHORUS_OK);
  }
  EXPECT_TRUE(host.violations().empty()) << host.violations().front();
}

TEST(Plugin, RefusesAnEndpointThatIsNotHttp) {
  chorus::testing::FakeHost host;
  auto p = chorus::testing::load(&chorus_plugin_entry_v1, host, R"({"endpoint":"ftp://x"})");
  EXPECT_EQ(p.status(), CHORUS_E_CONFIG);
}

TEST(Plugin, TheEnvironmentOverridesTheConfiguredEndpoint) {
  // A bad value in OLLAMA_ENDPOINT must win over the good one in the config, so the load fails.
  ASSERT_EQ(::setenv("OLLAMA_ENDPOINT", "ftp://from-the-environment", 1), 0);
  chorus::testing::FakeHost host;
  auto p = chorus::testing::load(&chorus_plugin_entry_v1, host, R"({"endpoint":"http://127.0.0.1:9","health_interval_ms":0})");
  ::unsetenv("OLLAMA_ENDPOINT");
  EXPECT_EQ(p.status(), CHORUS_E_CONFIG) << p.message();
}

}  // namespace

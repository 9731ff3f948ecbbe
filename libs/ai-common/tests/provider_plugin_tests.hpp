// The tests every AI provider plugin (ai-ollama, ai-openai) runs on the SDK's FakeHost against its own
// src/plugin.cpp: what the plugin itself declares (descriptor, config schema, settings source, metric
// names). A plugin's tests/plugin_test.cpp defines kPluginFacts and includes this file once. The shared
// provider behaviour is tested in libs/ai-common/tests.
#pragma once
#include <chorus/services/ai_provider_v1.h>
#include <chorus/testing/fake_host.hpp>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

extern "C" const chorus_plugin_descriptor *chorus_plugin_entry_v1(const chorus_abi_info *) noexcept;

namespace {

struct ProviderPluginFacts {
  const char *id;           // "ai-ollama"
  const char *url_key;      // the config key of the server's URL: "endpoint"
  const char *url_default;  // its schema default
  const char *url_env;      // the environment variable that overrides it
  const char *test_url;     // a usable http URL for a start without a server
  const char *metric;       // a metric the plugin defines at start
};

extern const ProviderPluginFacts kPluginFacts;

std::string config_with_url(const char *url, bool no_probe) {
  nlohmann::json cfg = {{kPluginFacts.url_key, url}};
  if (no_probe) cfg["health_interval_ms"] = 0;
  return cfg.dump();
}

TEST(Plugin, DeclaresASwappableAiProviderAndItsSchema) {
  const chorus_abi_info abi = chorus::testing::fake_abi_info();
  const chorus_plugin_descriptor *d = chorus_plugin_entry_v1(&abi);
  ASSERT_NE(d, nullptr);
  EXPECT_STREQ(d->id, kPluginFacts.id);
  ASSERT_EQ(d->provides_count, 1u);
  EXPECT_STREQ(d->provides[0].service, CHORUS_AI_PROVIDER_SERVICE);
  EXPECT_EQ(d->provides[0].major, CHORUS_AI_PROVIDER_V1_MAJOR);
  EXPECT_NE(d->provides[0].flags & CHORUS_PROVIDE_SWAPPABLE, 0u);
  EXPECT_EQ(d->requirements_count, 0u);
  ASSERT_NE(d->config_schema_json, nullptr);
  const auto schema = nlohmann::json::parse(d->config_schema_json);
  EXPECT_EQ(schema.at("properties").at(kPluginFacts.url_key).at("default"), kPluginFacts.url_default);
  EXPECT_EQ(schema.at("additionalProperties"), false);
}

TEST(Plugin, StartsServesItsTableAndStopsCleanly) {
  chorus::testing::FakeHost host;
  {
    auto p = chorus::testing::load(&chorus_plugin_entry_v1, host, config_with_url(kPluginFacts.test_url, true));
    ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
    ASSERT_EQ(p.services().size(), 1u);
    const auto *table = static_cast<const chorus_ai_provider_v1 *>(p.services()[0].table.table);
    EXPECT_GE(table->struct_size, sizeof(uint32_t));
    EXPECT_TRUE(host.metric_defined(kPluginFacts.metric));
    EXPECT_EQ(p.stop(), CHORUS_OK);
  }
  EXPECT_TRUE(host.violations().empty()) << host.violations().front();
}

TEST(Plugin, RefusesAServerUrlThatIsNotHttp) {
  chorus::testing::FakeHost host;
  auto p = chorus::testing::load(&chorus_plugin_entry_v1, host, config_with_url("ftp://x", false));
  EXPECT_EQ(p.status(), CHORUS_E_CONFIG);
}

TEST(Plugin, TheEnvironmentOverridesTheConfiguredServerUrl) {
  // A bad value in the environment must win over the good one in the config, so the load fails.
  ASSERT_EQ(::setenv(kPluginFacts.url_env, "ftp://from-the-environment", 1), 0);
  chorus::testing::FakeHost host;
  auto p = chorus::testing::load(&chorus_plugin_entry_v1, host, config_with_url(kPluginFacts.test_url, true));
  ::unsetenv(kPluginFacts.url_env);
  EXPECT_EQ(p.status(), CHORUS_E_CONFIG) << p.message();
}

}  // namespace

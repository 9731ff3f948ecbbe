// ai-openai's own declarations on the SDK's FakeHost (the shared tests: provider_plugin_tests.hpp).
#include "provider_plugin_tests.hpp"

namespace {
const ProviderPluginFacts kPluginFacts{"ai-openai",          "base_url",
                                       "https://api.openai.com/v1", "RESETDATA_BASE_URL",
                                       "http://127.0.0.1:9/v1",     "chorus_ai_openai_requests_total"};
}  // namespace

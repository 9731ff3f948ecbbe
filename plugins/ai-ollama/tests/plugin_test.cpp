// ai-ollama's own declarations on the SDK's FakeHost (the shared tests: provider_plugin_tests.hpp).
#include "provider_plugin_tests.hpp"

namespace {
const ProviderPluginFacts kPluginFacts{"ai-ollama",       "endpoint",           "http://localhost:11434",
                                       "OLLAMA_ENDPOINT", "http://127.0.0.1:9", "chorus_ai_ollama_requests_total"};
}  // namespace

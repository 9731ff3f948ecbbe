// ai-ollama: chorus.ai.provider v1 over the Ollama HTTP API (/api/chat, /api/generate, /api/tags,
// NDJSON streaming). Swappable: the host may replace it while requests are in flight.
#include <chorus/plugin.hpp>
#include <chorus/services/ai_provider_v1.h>

#include "ai_common/provider.hpp"

// Tests build a second copy with another version to exercise hot swap by file replacement.
#ifndef CHORUS_AI_OLLAMA_VERSION
#define CHORUS_AI_OLLAMA_VERSION "1.0.0"
#endif

namespace chorus::ai_ollama {
namespace {
constexpr const char *kVersion = CHORUS_AI_OLLAMA_VERSION;

// OLLAMA_ENDPOINT is the CHORUS name (docs/contract.md, Environment names); it overrides `endpoint`.
const chorus::ai_common::SettingsSource kSource{
    .url_key = "endpoint",
    .url_env = {"OLLAMA_ENDPOINT"},
    .api_key_key = nullptr,
    .api_key_env = {},
    .model_env = {}};

class OllamaProvider final : public chorus::ai_common::ProviderPlugin {
 public:
  OllamaProvider(chorus::Host &host, std::string_view cfg)
      : ProviderPlugin(host, chorus::ai_common::make_ollama_dialect(), chorus::ai_common::settings_from(cfg, kSource), "chorus_ai_ollama") {
    set_version(kVersion);
  }
};

// The JSON Schema of plugins.ai-ollama.config: the one declaration of its keys, types, ranges and defaults.
constexpr const char *kConfigSchema =
    "{\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"
    "\"endpoint\": {\"type\": \"string\", \"minLength\": 1, \"default\": \"http://localhost:11434\"},"
    CHORUS_AI_COMMON_SCHEMA "}}";
}  // namespace
}  // namespace chorus::ai_ollama

CHORUS_PLUGIN(chorus::ai_ollama::OllamaProvider,
              .id = "ai-ollama",
              .version = CHORUS_AI_OLLAMA_VERSION,
              .description = "AI provider for Ollama (chat, generate, tags; NDJSON streaming)",
              .vendor = "CHORUS",
              .license = "Apache-2.0",
              .provides = chorus::ai_common::kProviderServices,
              .config_schema = chorus::ai_ollama::kConfigSchema);

// ai-openai: chorus.ai.provider v1 over the OpenAI chat completions API (SSE streaming, /models,
// bearer auth, tool calls passed through). ResetData and other OpenAI-compatible services are
// configured through it with base_url, api_key and default_model. Swappable.
#include <chorus/plugin.hpp>
#include <chorus/services/ai_provider_v1.h>

#include "ai_common/provider.hpp"

namespace chorus::ai_openai {
namespace {
constexpr const char *kVersion = "1.0.0";

// ResetData is CHORUS's OpenAI-compatible provider (CHORUS: ResetDataConfig{BaseURL, APIKey, Model});
// its variables override `base_url`, `api_key` and `default_model`. See README.md for precedence.
const chorus::ai_common::SettingsSource kSource{
    .url_key = "base_url",
    .url_env = {"RESETDATA_BASE_URL"},
    .api_key_key = "api_key",
    .api_key_env = {"RESETDATA_API_KEY"},
    .model_env = {"RESETDATA_MODEL"}};

class OpenAiProvider final : public chorus::ai_common::ProviderPlugin {
 public:
  OpenAiProvider(chorus::Host &host, std::string_view cfg)
      : ProviderPlugin(host, chorus::ai_common::make_openai_dialect(), chorus::ai_common::settings_from(cfg, kSource), "chorus_ai_openai") {
    set_version(kVersion);
  }
};

// The JSON Schema of plugins.ai-openai.config: the one declaration of its keys, types, ranges and defaults.
constexpr const char *kConfigSchema =
    "{\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"
    "\"base_url\": {\"type\": \"string\", \"minLength\": 1, \"default\": \"https://api.openai.com/v1\"},"
    "\"api_key\": {\"type\": \"string\", \"default\": \"\", \"x-secret\": true},"
    CHORUS_AI_COMMON_SCHEMA "}}";
}  // namespace
}  // namespace chorus::ai_openai

CHORUS_PLUGIN(chorus::ai_openai::OpenAiProvider,
              .id = "ai-openai",
              .version = "1.0.0",
              .description = "AI provider for OpenAI-compatible APIs (chat completions, SSE, models; ResetData)",
              .vendor = "CHORUS",
              .license = "Apache-2.0",
              .provides = chorus::ai_common::kProviderServices,
              .config_schema = chorus::ai_openai::kConfigSchema);

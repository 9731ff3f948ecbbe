// ai-openai: chorus.ai.provider v1 over the OpenAI chat completions API (SSE streaming, /models,
// bearer auth, tool calls passed through). ResetData and other OpenAI-compatible services are
// configured through it with base_url, api_key and default_model. Swappable.
#include <chorus/plugin.hpp>
#include <chorus/services/ai_provider_v1.h>

#include <nlohmann/json.hpp>

#include "ai_common/provider.hpp"

namespace {
constexpr const char *kVersion = "1.0.0";

chorus_ai::ProviderSettings settings_from(std::string_view cfg_json) {
  chorus_ai::ProviderSettings s;
  s.base_url = "https://api.openai.com/v1";
  chorus_ai::parse_common_settings(cfg_json, s);
  auto cfg = nlohmann::json::parse(cfg_json.empty() ? std::string_view("{}") : cfg_json, nullptr, false);
  if (auto it = cfg.find("base_url"); it != cfg.end() && it->is_string() && !it->get<std::string>().empty())
    s.base_url = it->get<std::string>();
  if (auto it = cfg.find("api_key"); it != cfg.end() && it->is_string()) s.api_key = it->get<std::string>();
  for (char c : s.api_key)
    if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f)
      throw chorus::Error(CHORUS_E_CONFIG, "api_key contains whitespace or control characters");
  return s;
}

class OpenAiProvider final : public chorus_ai::ProviderPlugin {
 public:
  OpenAiProvider(chorus::Host &host, std::string_view cfg)
      : ProviderPlugin(host, chorus_ai::make_openai_dialect(), settings_from(cfg), "chorus_ai_openai") {
    set_version(kVersion);
  }
};

constexpr chorus_provide kProvides[] = {
    chorus::provide(CHORUS_AI_PROVIDER_SERVICE, CHORUS_AI_PROVIDER_V1_MAJOR, CHORUS_AI_PROVIDER_V1_MINOR,
                    CHORUS_PROVIDE_SWAPPABLE)};

#define CHORUS_AI_SCHEMA_PREFIX \
  "{\"type\": \"object\", \"additionalProperties\": false, \"properties\": {" \
  "\"base_url\": {\"type\": \"string\", \"minLength\": 1, \"default\": \"https://api.openai.com/v1\"}," \
  "\"api_key\": {\"type\": \"string\", \"default\": \"\", \"x-secret\": true},"
}  // namespace

CHORUS_PLUGIN(OpenAiProvider,
              .id = "ai-openai",
              .version = "1.0.0",
              .description = "AI provider for OpenAI-compatible APIs (chat completions, SSE, models; ResetData)",
              .vendor = "CHORUS",
              .license = "Apache-2.0",
              .provides = kProvides,
              .config_schema = CHORUS_AI_SCHEMA_PREFIX CHORUS_AI_COMMON_SCHEMA "}}");

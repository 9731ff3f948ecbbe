// ai-ollama: chorus.ai.provider v1 over the Ollama HTTP API (/api/chat, /api/generate, /api/tags,
// NDJSON streaming). Swappable: the host may replace it while requests are in flight.
#include <chorus/plugin.hpp>
#include <chorus/services/ai_provider_v1.h>

#include <cstdlib>

#include <nlohmann/json.hpp>

#include "ai_common/provider.hpp"

// Tests build a second copy with another version to exercise hot swap by file replacement.
#ifndef CHORUS_AI_OLLAMA_VERSION
#define CHORUS_AI_OLLAMA_VERSION "1.0.0"
#endif

namespace {
constexpr const char *kVersion = CHORUS_AI_OLLAMA_VERSION;

chorus_ai::ProviderSettings settings_from(std::string_view cfg_json) {
  chorus_ai::ProviderSettings s;
  s.base_url = "http://localhost:11434";
  chorus_ai::parse_common_settings(cfg_json, s);
  auto cfg = nlohmann::json::parse(cfg_json.empty() ? std::string_view("{}") : cfg_json, nullptr, false);
  if (auto it = cfg.find("endpoint"); it != cfg.end() && it->is_string() && !it->get<std::string>().empty())
    s.base_url = it->get<std::string>();
  // Precedence: defaults < file < environment (contract section 3).
  if (const char *env = std::getenv("OLLAMA_ENDPOINT"); env != nullptr && *env != '\0') s.base_url = env;
  return s;
}

class OllamaProvider final : public chorus_ai::ProviderPlugin {
 public:
  OllamaProvider(chorus::Host &host, std::string_view cfg)
      : ProviderPlugin(host, chorus_ai::make_ollama_dialect(), settings_from(cfg), "chorus_ai_ollama") {
    set_version(kVersion);
  }
};

constexpr chorus_provide kProvides[] = {
    chorus::provide(CHORUS_AI_PROVIDER_SERVICE, CHORUS_AI_PROVIDER_V1_MAJOR, CHORUS_AI_PROVIDER_V1_MINOR,
                    CHORUS_PROVIDE_SWAPPABLE)};

#define CHORUS_AI_SCHEMA_PREFIX \
  "{\"type\": \"object\", \"additionalProperties\": false, \"properties\": {" \
  "\"endpoint\": {\"type\": \"string\", \"minLength\": 1, \"default\": \"http://localhost:11434\"},"
}  // namespace

CHORUS_PLUGIN(OllamaProvider,
              .id = "ai-ollama",
              .version = CHORUS_AI_OLLAMA_VERSION,
              .description = "AI provider for Ollama (chat, generate, tags; NDJSON streaming)",
              .vendor = "CHORUS",
              .license = "Apache-2.0",
              .provides = kProvides,
              .config_schema = CHORUS_AI_SCHEMA_PREFIX CHORUS_AI_COMMON_SCHEMA "}}");

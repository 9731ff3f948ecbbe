// The generic chorus.ai.provider v1 implementation shared by ai-ollama and ai-openai: request
// admission (bounded concurrency + queue), retries with exponential backoff and full jitter for
// idempotent failures, a circuit breaker, timeouts, cancellation, metrics and health. The wire
// protocol is a Dialect. One HttpEngine thread per provider instance.
#pragma once

#include <chorus/plugin.hpp>
#include <chorus/services/ai_provider_v1.h>

#include <memory>
#include <string>
#include <vector>

#include "ai_common/dialect.hpp"

namespace chorus::ai_common {

// Every value comes from the config after the host applied the plugin's schema (the defaults live in
// CHORUS_AI_COMMON_SCHEMA and the plugin's own keys), then from the environment.
struct ProviderSettings {
  std::string base_url;              // endpoint (ollama) or base URL incl. /v1 (openai); no trailing '/'
  std::string api_key;               // bearer token; never logged
  std::string default_model;
  uint64_t connect_timeout_ms = 0;
  uint64_t first_byte_timeout_ms = 0;
  uint64_t total_timeout_ms = 0;
  uint32_t max_retries = 0;
  uint64_t retry_base_ms = 0;
  uint64_t retry_max_ms = 0;
  uint32_t breaker_threshold = 0;    // consecutive failures that open the breaker; 0 disables it
  uint64_t breaker_cooldown_ms = 0;
  uint32_t max_concurrency = 0;      // upstream requests at once
  uint32_t max_queue = 0;            // waiting beyond that; more is CHORUS_E_BUSY
  size_t max_response_bytes = 0;
  uint64_t health_interval_ms = 0;   // period of the backend probe (model list); 0 disables it
  uint64_t health_timeout_ms = 0;    // a probe slower than this counts as failed
};

// Where one provider plugin finds its endpoint, key and default model besides the common keys.
// Environment variables override the config file (contract section 3: defaults < file < env); in
// each list the first variable that is set and non-empty wins.
struct SettingsSource {
  const char *url_key;                      // config key of the endpoint ("endpoint", "base_url")
  std::vector<const char *> url_env;        // environment overrides of the endpoint
  const char *api_key_key = nullptr;        // config key of the bearer token, or nullptr (none)
  std::vector<const char *> api_key_env;    // environment overrides of the token
  std::vector<const char *> model_env;      // environment overrides of default_model
};

// The config schema keys shared by every provider: JSON Schema "properties" members, no braces. A
// provider's schema is its own keys (url_key with its default, api_key_key) followed by these:
//   constexpr const char *kConfigSchema = "{\"type\": \"object\", \"additionalProperties\": false, "
//       "\"properties\": {\"endpoint\": {...}," CHORUS_AI_COMMON_SCHEMA "}}";
#define CHORUS_AI_COMMON_SCHEMA \
  "\"default_model\": {\"type\": \"string\", \"default\": \"\"}," \
  "\"connect_timeout_ms\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 600000, \"default\": 5000}," \
  "\"first_byte_timeout_ms\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 3600000, \"default\": 120000}," \
  "\"total_timeout_ms\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 86400000, \"default\": 600000}," \
  "\"max_retries\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 10, \"default\": 2}," \
  "\"retry_base_ms\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 600000, \"default\": 200}," \
  "\"retry_max_ms\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 600000, \"default\": 5000}," \
  "\"breaker_threshold\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 1000, \"default\": 5}," \
  "\"breaker_cooldown_ms\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 3600000, \"default\": 10000}," \
  "\"max_concurrency\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 4096, \"default\": 16}," \
  "\"max_queue\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 1000000, \"default\": 1024}," \
  "\"max_response_bytes\": {\"type\": \"integer\", \"minimum\": 1024, \"maximum\": 1073741824, \"default\": 8388608}," \
  "\"health_interval_ms\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 86400000, \"default\": 30000}," \
  "\"health_timeout_ms\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 600000, \"default\": 10000}"

// The settings of one provider from its config (validated and completed by its schema), then the
// environment. Throws chorus::Error(CONFIG) with the offending key named.
ProviderSettings settings_from(std::string_view cfg_json, const SettingsSource &src);

// What every provider plugin declares: chorus.ai.provider v1, swappable (no state across requests).
inline constexpr chorus_provide kProviderServices[] = {
    chorus::provide(CHORUS_AI_PROVIDER_SERVICE, CHORUS_AI_PROVIDER_V1_MAJOR, CHORUS_AI_PROVIDER_V1_MINOR,
                    CHORUS_PROVIDE_SWAPPABLE)};

class ProviderPlugin : public chorus::Plugin {
 public:
  ProviderPlugin(chorus::Host &host, std::unique_ptr<Dialect> dialect, ProviderSettings settings,
                 std::string metric_prefix);
  ~ProviderPlugin() override;
  void start() override;
  void stop(std::chrono::milliseconds budget) override;
  void drain() override;
  chorus::ServiceTable service(std::string_view name, uint16_t major) override;
  void set_version(std::string v);  // the plugin version reported in done JSON

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace chorus::ai_common

#include "settings.hpp"

#include <chorus/plugin.hpp>
#include <chorus/services/license_v1.h>

#include <nlohmann/json.hpp>

namespace chorus::license {

namespace {

[[noreturn]] void fail(const std::string &what) { throw chorus::Error(CHORUS_E_CONFIG, what); }

}  // namespace

Settings parse_settings(std::string_view config_json, std::string_view host_info_json, const EnvLookup &env) {
  const auto cfg = nlohmann::json::parse(config_json, nullptr, false);
  if (!cfg.is_object()) fail("config must be an object validated against the schema");
  const auto info = nlohmann::json::parse(host_info_json, nullptr, false);
  auto fact = [&](const char *key) {
    return info.is_object() && info.contains(key) && info[key].is_string() ? info[key].get<std::string>() : std::string();
  };
  try {
    Settings s;
    s.license_id = cfg.at("license_id").get<std::string>();
    if (auto v = env("CHORUS_LICENSE_ID")) s.license_id = *v;
    s.endpoint = cfg.at("endpoint").get<std::string>();
    if (auto v = env("CHORUS_LICENSE_ENDPOINT")) s.endpoint = *v;
    s.cluster_id = cfg.at("cluster_id").get<std::string>();
    if (s.cluster_id.empty()) s.cluster_id = fact("cluster_id");
    s.agent_id = fact("agent_id");
    s.version = fact("host_version");
    s.state_dir = fact("state_dir");
    s.request_timeout_ms = cfg.at("request_timeout_ms").get<int64_t>();
    s.timing.revalidate_interval_ms = cfg.at("revalidate_interval_ms").get<int64_t>();
    s.timing.retry_interval_ms = cfg.at("retry_interval_ms").get<int64_t>();
    s.timing.grace_period_ms = cfg.at("grace_period_ms").get<int64_t>();
    const auto &cb = cfg.at("circuit_breaker");
    s.timing.failure_threshold = cb.at("failure_threshold").get<uint32_t>();
    s.timing.open_ms = cb.at("open_ms").get<int64_t>();

    if (s.license_id.empty())
      fail("license_id is empty: set plugins.license.config.license_id or CHORUS_LICENSE_ID");
    if (s.license_id.size() > CHORUS_LICENSE_ID_MAX)
      fail("license_id is longer than " + std::to_string(CHORUS_LICENSE_ID_MAX) + " bytes");
    if (s.endpoint.empty())
      fail("endpoint is empty: set plugins.license.config.endpoint or CHORUS_LICENSE_ENDPOINT to the licence "
           "server's URL (there is no default server)");
    if (s.endpoint.rfind("http://", 0) != 0 && s.endpoint.rfind("https://", 0) != 0)
      fail("endpoint '" + s.endpoint + "' is not an http:// or https:// URL");
    while (!s.endpoint.empty() && s.endpoint.back() == '/') s.endpoint.pop_back();
    if (s.state_dir.empty()) fail("the host has no state directory for the licence cache");
    return s;
  } catch (const nlohmann::json::exception &e) {
    fail(std::string("config does not match the schema: ") + e.what());
  }
}

}  // namespace chorus::license

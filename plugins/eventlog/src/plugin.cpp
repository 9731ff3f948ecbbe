// eventlog: answers POST /eventlog/greet with a configurable greeting. See README.md.
//
// Generated from the chorus-agent plugin template (plugin-api/template). The shape stays: the
// descriptor and the glue to the host here, parsers and other logic in their own files (request.cpp),
// the config schema below as the one declaration of every key, its type, range and default.
#include <chorus/plugin.hpp>

#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "request.hpp"

namespace chorus::eventlog {
namespace {

// The config schema: the host validates the plugin's config section against it and fills in the
// defaults before the plugin sees it, so the code below reads keys that are present and in range.
constexpr const char *kConfigSchema = R"({
  "type": "object",
  "properties": {
    "greeting": {"type": "string", "minLength": 1, "maxLength": 256, "default": "hello"},
    "max_name_bytes": {"type": "integer", "minimum": 1, "maximum": 4096, "default": 64}
  },
  "additionalProperties": false
})";

struct Settings {
  std::string greeting;
  size_t max_name_bytes;
};

Settings settings_from(std::string_view config_json) {
  const auto cfg = nlohmann::json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  if (!cfg.is_object() || !cfg.contains("greeting") || !cfg.contains("max_name_bytes"))
    throw chorus::Error(CHORUS_E_CONFIG, "config must be an object validated against the schema");
  return Settings{cfg["greeting"].get<std::string>(), cfg["max_name_bytes"].get<size_t>()};
}

class EventlogPlugin final : public chorus::Plugin {
 public:
  // create(): read the config, define metrics, mount routes. No threads, no network yet.
  EventlogPlugin(chorus::Host &host, std::string_view config_json)
      : host_(host), settings_(settings_from(config_json)) {
    requests_ = host_.counter("chorus_eventlog_requests_total", "Greet requests by result", {"result"});
    host_.route("POST", "/eventlog/greet", [this](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
      greet(req, std::move(ex));
    });
  }

  void start() override { host_.report_health(chorus::Health::ok); }

  // A new config while running; without this override the host restarts the plugin instead.
  void reconfigure(std::string_view config_json) override {
    Settings next = settings_from(config_json);
    std::lock_guard lk(mu_);
    settings_ = std::move(next);
  }

 private:
  void greet(const chorus::HttpRequest &req, chorus::HttpExchange ex) {
    const Settings s = settings();
    std::string why;
    const auto parsed = parse_greet_request(req.body(), s.max_name_bytes, &why);
    if (!parsed) {
      requests_.inc("bad_request");
      ex.respond(400, "application/json", nlohmann::json{{"error", why}}.dump());
      return;
    }
    requests_.inc("ok");
    ex.respond(200, "application/json", nlohmann::json{{"greeting", s.greeting + ", " + parsed->name}}.dump());
  }

  Settings settings() const {
    std::lock_guard lk(mu_);
    return settings_;
  }

  chorus::Host &host_;
  mutable std::mutex mu_;  // handlers run on host threads while reconfigure may replace settings_
  Settings settings_;
  chorus::Counter requests_;
};

}  // namespace
}  // namespace chorus::eventlog

CHORUS_PLUGIN(chorus::eventlog::EventlogPlugin,
              .id = "eventlog",
              .version = "0.1.0",
              .description = "eventlog (from the chorus-agent plugin template)",
              .vendor = "CHORUS",
              .license = "Apache-2.0",
              .config_schema = chorus::eventlog::kConfigSchema);

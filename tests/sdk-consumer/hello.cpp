// acme.hello - a small third-party plugin written with the chorus SDK (chorus/plugin.hpp).
//
// GET /acme/hello (ACME_HELLO_ROUTE) answers {"greeting": ..., "plugin": ..., "requests": n}. The
// plugin reports its health, counts requests in chorus_acme_hello_requests_total, provides a tiny
// service named after its id, and takes one config key, `greeting` (a string, default "hello").
//
// The id and the route are defines, so one source builds two plugins: acme.hello (CMake,
// find_package) and acme.hello-pc (pkg-config, pkgconfig.mk). Together they prove both ways of
// consuming the installed SDK.
#include <chorus/plugin.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#ifndef ACME_HELLO_ID
#define ACME_HELLO_ID "acme.hello"
#endif
#ifndef ACME_HELLO_ROUTE
#define ACME_HELLO_ROUTE "/acme/hello"
#endif

// The service's C table (normally in its own header shared with consumers). Append-only.
extern "C" {
typedef struct acme_hello_v1 {
  uint32_t struct_size;
  /* Copies the greeting (NUL-terminated, truncated to cap) into buf; returns its full length. */
  size_t (*greeting)(void *self, char *buf, size_t cap);
} acme_hello_v1;
}

namespace {

class Hello final : public chorus::Plugin {
 public:
  Hello(chorus::Host &host, std::string_view config_json) : host_(host) {
    configure(config_json);
    requests_ = host_.counter("chorus_acme_hello_requests_total", "Requests served by " ACME_HELLO_ID);
    host_.route("GET", ACME_HELLO_ROUTE, [this](const chorus::HttpRequest &, chorus::HttpExchange ex) {
      requests_.inc();
      const nlohmann::json body = {
          {"greeting", greeting()}, {"plugin", ACME_HELLO_ID}, {"requests", ++served_}};
      ex.respond(200, "application/json", body.dump());
    });
    table_.struct_size = sizeof table_;
    table_.greeting = &Hello::c_greeting;
  }

  void start() override {
    host_.report_health(chorus::Health::ok, "greeting with '" + greeting() + "'");
    host_.info(ACME_HELLO_ID " ready");
  }

  void reconfigure(std::string_view config_json) override { configure(config_json); }

  chorus::ServiceTable service(std::string_view name, uint16_t major) override {
    if (name == ACME_HELLO_ID && major == 1) return {&table_, this};
    return Plugin::service(name, major);
  }

 private:
  void configure(std::string_view config_json) {
    const auto cfg = nlohmann::json::parse(config_json, nullptr, /*allow_exceptions=*/false);
    if (!cfg.is_object()) throw chorus::Error(CHORUS_E_CONFIG, "config must be an object");
    // The host has validated the config against the schema below and filled in the default.
    std::string g = cfg.value("greeting", std::string("hello"));
    std::lock_guard lk(mu_);
    greeting_ = std::move(g);
  }

  std::string greeting() const {
    std::lock_guard lk(mu_);
    return greeting_;
  }

  static size_t c_greeting(void *self, char *buf, size_t cap) noexcept {
    try {
      const std::string g = static_cast<Hello *>(self)->greeting();
      if (buf != nullptr && cap > 0) {
        const size_t n = std::min(g.size(), cap - 1);
        std::memcpy(buf, g.data(), n);
        buf[n] = '\0';
      }
      return g.size();
    } catch (...) {
      return 0;
    }
  }

  chorus::Host &host_;
  mutable std::mutex mu_;
  std::string greeting_;
  chorus::Counter requests_;
  std::atomic<uint64_t> served_{0};
  acme_hello_v1 table_{};
};

constexpr chorus_provide kProvides[] = {chorus::provide(ACME_HELLO_ID, 1, 0)};

}  // namespace

CHORUS_PLUGIN(Hello,
              .id = ACME_HELLO_ID,
              .version = "1.0.0",
              .description = "Says hello over HTTP (SDK consumer test)",
              .vendor = "ACME",
              .license = "Apache-2.0",
              .provides = kProvides,
              .config_schema = R"({
                "type": "object",
                "properties": { "greeting": { "type": "string", "minLength": 1, "default": "hello" } },
                "additionalProperties": false
              })");

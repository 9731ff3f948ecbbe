// Tests of the C++ plugin SDK (chorus/plugin.hpp) and of the fake host (chorus/testing/fake_host.hpp).
// The plugins below are written exactly as third parties write theirs and are driven through their
// descriptors' C vtables, so the trampolines and the exception mapping are what is under test.
#include <chorus/plugin.hpp>
#include <chorus/testing/fake_host.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cctype>
#include <cstring>
#include <mutex>
#include <memory>
#include <string>
#include <vector>

#include "instance.hpp"  // the real host's API table, to compare with FakeHost's

using namespace std::chrono_literals;
using chorus::testing::FakeHost;
using chorus::testing::load;

// ------------------------------------------------------------------------------------------------
// A service interface shared by the test plugins, written like a real chorus/services/*.h header.
// ------------------------------------------------------------------------------------------------
extern "C" {
typedef struct sdk_echo_v1 {
  uint32_t struct_size;
  /* 1.0 */
  chorus_status (*echo)(void *self, const char *in, size_t len, chorus_buf *out, chorus_error *err);
  void (*reset)(void *self);
  uint64_t (*count)(void *self);
  /* 1.1 */
  chorus_status (*shout)(void *self, const char *in, size_t len, chorus_buf *out, chorus_error *err);
} sdk_echo_v1;
}

namespace {

// A chorus_buf owning a std::string, released by the receiver.
void to_buf(std::string s, chorus_buf *out) {
  auto *owned = new std::string(std::move(s));
  out->data = owned->data();
  out->len = owned->size();
  out->owner = owned;
  out->release = [](chorus_buf *b) { delete static_cast<std::string *>(b->owner); };
}
std::string take(chorus_buf &b) {
  std::string s(b.data, b.len);
  if (b.release) b.release(&b);
  return s;
}

// ------------------------------------------------------------------------------------------------
// Plugin 1: EchoPlugin - provides sdk.echo, HTTP routes, metrics, timers, health, reconfigure.
// ------------------------------------------------------------------------------------------------
class EchoPlugin final : public chorus::Plugin {
 public:
  EchoPlugin(chorus::Host &host, std::string_view config_json) : host_(host) {
    apply(config_json);
    requests_ = host_.counter("chorus_echo_requests_total", "Requests by route", {"route"});
    ticks_ = host_.gauge("chorus_echo_ticks", "Timer ticks");
    sizes_ = host_.histogram("chorus_echo_body_bytes", "Body sizes", {}, {16, 256, 4096});

    host_.route("GET", "/echo", [this](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
      requests_.inc("echo");
      std::string body = greeting_ + " " + std::string(req.header("x-name")) + " q=" + std::string(req.query());
      ex.respond(200, "text/plain", body, {{"X-Echo", "1"}});
    });
    host_.route("POST", "/echo/async", [this](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
      sizes_.observe(static_cast<double>(req.body().size()));
      // Answer later from a task: the handle moves along, the handler returns unanswered.
      host_.post([ex = std::move(ex), body = std::string(req.body())]() mutable {
        ex.respond(200, "application/octet-stream", body);
      });
    });
    host_.route("GET", "/stream/", CHORUS_ROUTE_PREFIX, [](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
      const int n = std::stoi(std::string(req.path().substr(std::string_view("/stream/").size())));
      ex.begin_stream(200, "application/x-ndjson");
      for (int i = 0; i < n; ++i) ex.write("{\"i\":" + std::to_string(i) + "}\n");
      ex.end();
    });
    host_.route("GET", "/stream-dropped", [](const chorus::HttpRequest &, chorus::HttpExchange ex) {
      ex.begin_stream(200, "text/event-stream");
      ex.write("data: 1\n\n");
      // no end(): the handle's destructor ends the stream
    });
    host_.route("GET", "/busy", [](const chorus::HttpRequest &, chorus::HttpExchange) {
      throw chorus::Error(CHORUS_E_BUSY, "slow down");
    });
    host_.route("GET", "/crash", [](const chorus::HttpRequest &, chorus::HttpExchange) {
      throw std::runtime_error("secret detail");
    });
    host_.route("GET", "/answered-then-throw", [](const chorus::HttpRequest &, chorus::HttpExchange ex) {
      ex.respond(201, "text/plain", "done");
      throw std::runtime_error("after the answer");
    });
    host_.route("GET", "/dropped", [](const chorus::HttpRequest &, chorus::HttpExchange) {});

    table_.struct_size = sizeof table_;
    table_.echo = &EchoPlugin::c_echo;
    table_.reset = [](void *self) { static_cast<EchoPlugin *>(self)->calls_ = 0; };
    table_.count = [](void *self) -> uint64_t { return static_cast<EchoPlugin *>(self)->calls_; };
    table_.shout = &EchoPlugin::c_shout;
  }

  void start() override {
    tick_timer_ = host_.timer(100ms, 100ms, [this] { ticks_.add(1); });
    host_.report_health(chorus::Health::ok, "ready");
    host_.info("echo started");
  }
  void stop(std::chrono::milliseconds) override {
    host_.cancel_timer(tick_timer_);
    host_.info("echo stopped");
  }
  void reconfigure(std::string_view config_json) override { apply(config_json); }
  void drain() override { host_.report_health(chorus::Health::degraded, "draining"); }
  void reload() override { host_.report_health(chorus::Health::ok, "reloaded"); }
  chorus::ServiceTable service(std::string_view name, uint16_t major) override {
    if (name == "sdk.echo" && major == 1) return {&table_, this};
    return Plugin::service(name, major);
  }

 private:
  void apply(std::string_view config_json) {
    auto cfg = nlohmann::json::parse(config_json, nullptr, false);
    if (cfg.is_discarded() || !cfg.is_object()) throw chorus::Error(CHORUS_E_CONFIG, "config is not a JSON object");
    std::string g = cfg.value("greeting", "hello");
    if (g.empty()) throw chorus::Error(CHORUS_E_CONFIG, "greeting must not be empty");
    greeting_ = g;
  }
  static chorus_status c_echo(void *self, const char *in, size_t len, chorus_buf *out, chorus_error *err) noexcept {
    return chorus::guard(err, [&] {
      auto *p = static_cast<EchoPlugin *>(self);
      if (len == 0) throw chorus::Error(CHORUS_E_INVALID_ARG, "empty input");
      ++p->calls_;
      to_buf(p->greeting_ + ":" + std::string(in, len), out);
    });
  }
  static chorus_status c_shout(void *self, const char *in, size_t len, chorus_buf *out, chorus_error *err) noexcept {
    return chorus::guard(err, [&] {
      std::string s(in, len);
      for (char &c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      ++static_cast<EchoPlugin *>(self)->calls_;
      to_buf(s, out);
    });
  }

  chorus::Host &host_;
  std::string greeting_;
  chorus::Counter requests_;
  chorus::Gauge ticks_;
  chorus::Histogram sizes_;
  uint64_t tick_timer_ = 0;
  sdk_echo_v1 table_{};
  std::atomic<uint64_t> calls_{0};
};

constexpr chorus_provide kEchoProvides[] = {chorus::provide("sdk.echo", 1, 1)};

CHORUS_PLUGIN_DESCRIPTOR(kEchoDescriptor, EchoPlugin,
                         .id = "sdk.echo-plugin",
                         .version = "1.2.3-rc.1",
                         .description = "Echo test plugin",
                         .vendor = "chorus tests",
                         .license = "MIT",
                         .provides = kEchoProvides,
                         .config_schema = R"({"type":"object","properties":{"greeting":{"type":"string"}}})");

// ------------------------------------------------------------------------------------------------
// Plugin 2: FailingPlugin - throws what its config says, where its config says; overrides nothing
// but the constructor, start and stop (so reconfigure and service keep their defaults).
// ------------------------------------------------------------------------------------------------
[[noreturn]] void throw_kind(const std::string &kind) {
  if (kind == "error") throw chorus::Error(CHORUS_E_CONFIG, "bad setting 'x'");
  if (kind == "error-ok") throw chorus::Error(CHORUS_OK, "code zero");
  if (kind == "service-code") throw chorus::Error(CHORUS_E_SERVICE_BASE + 7, "service specific");
  if (kind == "restart") throw chorus::NeedsRestart("port changed");
  if (kind == "bad_alloc") throw std::bad_alloc();
  if (kind == "std") throw std::runtime_error("plain std exception");
  if (kind == "long") {
    // 600 x "é" (2 bytes each): must be cut at a character boundary below 512 bytes.
    std::string s;
    for (int i = 0; i < 600; ++i) s += "\xC3\xA9";
    throw chorus::Error(CHORUS_E_IO, s);
  }
  throw 42;  // not an exception class at all
}

class FailingPlugin final : public chorus::Plugin {
 public:
  FailingPlugin(chorus::Host &host, std::string_view config_json) : host_(host) {
    auto cfg = nlohmann::json::parse(config_json);
    where_ = cfg.value("where", "");
    kind_ = cfg.value("kind", "");
    if (cfg.value("route", false)) host_.route("GET", "/failing", [](const chorus::HttpRequest &, chorus::HttpExchange) {});
    if (cfg.value("duplicate_route", false)) {
      host_.route("GET", "/dup", [](const chorus::HttpRequest &, chorus::HttpExchange) {});
      host_.route("GET", "/dup", [](const chorus::HttpRequest &, chorus::HttpExchange) {});
    }
    if (where_ == "ctor") throw_kind(kind_);
  }
  void start() override {
    host_.timer(10ms, 10ms, [] {});
    if (where_ == "start") throw_kind(kind_);
  }
  void stop(std::chrono::milliseconds) override {
    if (where_ == "stop") throw_kind(kind_);
  }

 private:
  chorus::Host &host_;
  std::string where_, kind_;
};

constexpr chorus_provide kBrokenProvides[] = {chorus::provide("sdk.broken", 1, 0)};
// FailingPlugin does not override service(): declaring a provide makes the host's get_service fail.
CHORUS_PLUGIN_DESCRIPTOR(kBrokenProviderDescriptor, FailingPlugin, .id = "sdk.broken-provider", .version = "1.0.0",
                         .provides = kBrokenProvides);

constexpr chorus_require kFailingRequires[] = {chorus::require("sdk.echo", "^1"),
                                               chorus::require("sdk.kv", ">=1.2 <2", CHORUS_REQUIRE_OPTIONAL)};

CHORUS_PLUGIN_DESCRIPTOR(kFailingDescriptor, FailingPlugin, .id = "sdk.failing", .version = "0.1.0",
                         .requirements = kFailingRequires, .min_host_minor = 0);

// A schema the host's loader refuses (a misspelt keyword): the fake host refuses it the same way.
CHORUS_PLUGIN_DESCRIPTOR(kBadSchemaDescriptor, FailingPlugin, .id = "sdk.bad-schema", .version = "1.0.0",
                         .config_schema = R"({"type":"object","properties":{"n":{"type":"integer","maximun":3}}})");

// ------------------------------------------------------------------------------------------------
// Plugin 3: ConsumerPlugin - requires sdk.echo, holds a ServiceRef while running, watches it.
// ------------------------------------------------------------------------------------------------
class ConsumerPlugin final : public chorus::Plugin {
 public:
  ConsumerPlugin(chorus::Host &host, std::string_view) : host_(host) {
    host_.watch("sdk.echo", [this](std::string_view service, chorus::ServiceEvent e) {
      std::lock_guard lk(mu_);
      events_.push_back(std::string(service) + ":" + std::to_string(static_cast<int>(e)));
    });
    host_.route("GET", "/use", [this](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
      // Per-request acquire, as for swappable services.
      auto echo = host_.acquire<sdk_echo_v1>("sdk.echo", "^1");
      chorus::ErrorBuffer err;
      chorus_buf out{};
      const std::string in(req.query());
      chorus_status s = echo.call<&sdk_echo_v1::shout>(in.data(), in.size(), &out, err.get());
      if (s == CHORUS_E_UNSUPPORTED) s = echo.call<&sdk_echo_v1::echo>(in.data(), in.size(), &out, err.get());
      err.check(s, "echo");
      ex.respond(200, "text/plain", take(out) + " via " + std::string(echo.provider_id()));
    });
  }
  void start() override { held_ = host_.acquire<sdk_echo_v1>("sdk.echo", "^1"); }
  void stop(std::chrono::milliseconds) override { held_.reset(); }
  std::vector<std::string> events() {
    std::lock_guard lk(mu_);
    return events_;
  }

 private:
  chorus::Host &host_;
  chorus::ServiceRef<sdk_echo_v1> held_;
  std::mutex mu_;
  std::vector<std::string> events_;
};

constexpr chorus_require kConsumerRequires[] = {chorus::require("sdk.echo", "^1")};
CHORUS_PLUGIN_DESCRIPTOR(kConsumerDescriptor, ConsumerPlugin, .id = "sdk.consumer", .version = "2.0.0",
                         .requirements = kConsumerRequires);

ConsumerPlugin *consumer_of(const chorus::testing::PluginHandle &p) {
  auto *inst = static_cast<chorus::detail::Instance *>(p.instance());
  return static_cast<ConsumerPlugin *>(inst->plugin.get());
}

std::string failing_config(std::string where, std::string kind) {
  return nlohmann::json{{"where", where}, {"kind", kind}}.dump();
}

// ================================================================================================
// Descriptor
// ================================================================================================

// The descriptor is constant-initialised data: no code runs at dlopen.
static_assert(kEchoDescriptor.abi_major == CHORUS_ABI_MAJOR);
static_assert(kEchoDescriptor.vtable == &kEchoDescriptor_chorus_vtable_);

TEST(SdkDescriptor, Fields) {
  const chorus_plugin_descriptor &d = kEchoDescriptor;
  EXPECT_EQ(d.struct_size, sizeof(chorus_plugin_descriptor));
  EXPECT_EQ(d.abi_major, CHORUS_ABI_MAJOR);
  EXPECT_EQ(d.abi_minor, CHORUS_ABI_MINOR);
  EXPECT_EQ(d.min_host_minor, CHORUS_ABI_MINOR);  // default
  EXPECT_EQ(d.flags, 0u);
  EXPECT_STREQ(d.id, "sdk.echo-plugin");
  EXPECT_STREQ(d.version, "1.2.3-rc.1");
  EXPECT_STREQ(d.description, "Echo test plugin");
  EXPECT_STREQ(d.vendor, "chorus tests");
  EXPECT_STREQ(d.license, "MIT");
  ASSERT_EQ(d.provides_count, 1u);
  EXPECT_EQ(d.provides, kEchoProvides);
  EXPECT_EQ(d.provides[0].struct_size, sizeof(chorus_provide));
  EXPECT_STREQ(d.provides[0].service, "sdk.echo");
  EXPECT_EQ(d.provides[0].major, 1);
  EXPECT_EQ(d.provides[0].minor, 1);
  EXPECT_EQ(d.requirements_count, 0u);
  EXPECT_EQ(d.requirements, nullptr);
  EXPECT_NE(std::string_view(d.config_schema_json).find("greeting"), std::string_view::npos);
  ASSERT_NE(d.build_info, nullptr);
  EXPECT_NE(std::string_view(d.build_info).find("C++20"), std::string_view::npos) << d.build_info;
  for (const void *r : d.reserved) EXPECT_EQ(r, nullptr);

  const chorus_plugin_vtable *vt = d.vtable;
  ASSERT_NE(vt, nullptr);
  EXPECT_EQ(vt->struct_size, sizeof(chorus_plugin_vtable));
  EXPECT_TRUE(vt->create && vt->start && vt->get_service && vt->stop && vt->destroy && vt->reconfigure && vt->drain);
}

TEST(SdkDescriptor, RequirementsAndMinHostMinor) {
  const chorus_plugin_descriptor &d = kFailingDescriptor;
  EXPECT_EQ(d.min_host_minor, 0);
  EXPECT_EQ(d.provides_count, 0u);
  EXPECT_EQ(d.provides, nullptr);
  ASSERT_EQ(d.requirements_count, 2u);
  EXPECT_EQ(d.requirements[0].struct_size, sizeof(chorus_require));
  EXPECT_STREQ(d.requirements[0].service, "sdk.echo");
  EXPECT_STREQ(d.requirements[0].range, "^1");
  EXPECT_EQ(d.requirements[0].flags, 0u);
  EXPECT_STREQ(d.requirements[1].range, ">=1.2 <2");
  EXPECT_EQ(d.requirements[1].flags, CHORUS_REQUIRE_OPTIONAL);
  EXPECT_EQ(d.description, nullptr);
  EXPECT_EQ(d.config_schema_json, nullptr);
  // Each plugin gets its own vtable; the fake host accepts all three descriptors.
  EXPECT_NE(kFailingDescriptor.vtable, kEchoDescriptor.vtable);
  EXPECT_NE(kFailingDescriptor.vtable->create, kConsumerDescriptor.vtable->create);
  EXPECT_FALSE(chorus::testing::PluginHandle::check_descriptor(kEchoDescriptor));
  EXPECT_FALSE(chorus::testing::PluginHandle::check_descriptor(kFailingDescriptor));
  EXPECT_FALSE(chorus::testing::PluginHandle::check_descriptor(kConsumerDescriptor));
}

TEST(SdkDescriptor, Builders) {
  constexpr chorus_provide p = chorus::provide("a.b", 3, 4, CHORUS_PROVIDE_SWAPPABLE);
  static_assert(p.struct_size == sizeof(chorus_provide) && p.major == 3 && p.minor == 4 && p.reserved == 0);
  EXPECT_EQ(p.flags, CHORUS_PROVIDE_SWAPPABLE);
  constexpr chorus_require r = chorus::require("a.b");
  static_assert(r.struct_size == sizeof(chorus_require) && r.flags == 0);
  EXPECT_STREQ(r.range, "*");
  static_assert(chorus::detail::valid_semver("1.0.0") && chorus::detail::valid_semver("10.20.30-alpha.1+b5"));
  static_assert(!chorus::detail::valid_semver("1.0") && !chorus::detail::valid_semver("01.0.0") &&
                !chorus::detail::valid_semver("1.0.0-") && !chorus::detail::valid_semver("v1.0.0"));
  static_assert(chorus::detail::valid_name("acme.echo_2-x", 64) && !chorus::detail::valid_name("Acme", 64) &&
                !chorus::detail::valid_name("", 64) && !chorus::detail::valid_name(".x", 64));
}

// ================================================================================================
// Lifecycle and exception mapping
// ================================================================================================

TEST(SdkLifecycle, CreateStartStopDestroy) {
  FakeHost host;
  {
    auto p = load(kEchoDescriptor, host, R"({"greeting":"hi"})");
    ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
    EXPECT_TRUE(p.running());
    EXPECT_TRUE(host.has_log("echo started", CHORUS_LOG_INFO));
    EXPECT_EQ(host.health().state, CHORUS_HEALTH_OK);
    EXPECT_EQ(host.health().message, "ready");
    EXPECT_EQ(host.route_count(), 8u);
    EXPECT_EQ(p.stop(), CHORUS_OK);
    EXPECT_FALSE(p.stop_overran_budget());
    EXPECT_TRUE(host.has_log("echo stopped"));
    EXPECT_EQ(host.route_count(), 0u);  // removed by the host at stop
    EXPECT_EQ(host.active_timers(), 0u);
  }
  EXPECT_TRUE(host.violations().empty()) << host.violations().front();
}

TEST(SdkLifecycle, ConstructorExceptionsMapToCodes) {
  struct Case {
    const char *kind;
    chorus_status code;
    const char *message;
  } cases[] = {
      {"error", CHORUS_E_CONFIG, "bad setting 'x'"},
      {"error-ok", CHORUS_E_INTERNAL, "code zero"},
      {"service-code", CHORUS_E_SERVICE_BASE + 7, "service specific"},
      {"restart", CHORUS_E_NEEDS_RESTART, "port changed"},
      {"bad_alloc", CHORUS_E_NO_MEMORY, "out of memory"},
      {"std", CHORUS_E_INTERNAL, "plain std exception"},
      {"int", CHORUS_E_INTERNAL, "unknown exception (not derived from std::exception)"},
  };
  for (const auto &c : cases) {
    SCOPED_TRACE(c.kind);
    FakeHost host;
    auto p = load(kFailingDescriptor, host, failing_config("ctor", c.kind));
    EXPECT_EQ(p.status(), c.code);
    EXPECT_EQ(p.message(), c.message);
    EXPECT_EQ(p.instance(), nullptr);
    EXPECT_FALSE(p.running());
  }
}

TEST(SdkLifecycle, LongMessagesAreTruncatedAtCharacterBoundaries) {
  FakeHost host;
  auto p = load(kFailingDescriptor, host, failing_config("ctor", "long"));
  EXPECT_EQ(p.status(), CHORUS_E_IO);
  const std::string m = p.message();
  EXPECT_LT(m.size(), size_t{CHORUS_ERROR_MESSAGE_MAX});
  EXPECT_GE(m.size(), size_t{CHORUS_ERROR_MESSAGE_MAX} - 2);
  EXPECT_EQ(m.size() % 2, 0u);  // whole "é"s only
  EXPECT_EQ(m.substr(m.size() - 2), "\xC3\xA9");
}

TEST(SdkLifecycle, StartExceptionDestroysWithoutStop) {
  FakeHost host;
  auto p = load(kFailingDescriptor, host, failing_config("start", "std"));
  EXPECT_EQ(p.status(), CHORUS_E_INTERNAL);
  EXPECT_EQ(p.message(), "plain std exception");
  EXPECT_FALSE(p.running());
  EXPECT_EQ(p.instance(), nullptr);     // destroyed
  EXPECT_EQ(host.active_timers(), 0u);  // the timer start() made was cancelled by the host
  EXPECT_TRUE(host.violations().empty());
}

TEST(SdkLifecycle, StopExceptionMapsToCode) {
  FakeHost host;
  auto p = load(kFailingDescriptor, host, failing_config("stop", "error"));
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  EXPECT_EQ(p.stop(), CHORUS_E_CONFIG);
  EXPECT_EQ(p.message(), "bad setting 'x'");
  p.destroy();
  EXPECT_EQ(p.instance(), nullptr);
}

TEST(SdkLifecycle, FailedCreateRemovesItsRoutes) {
  FakeHost host;
  auto p = load(kFailingDescriptor, host, R"({"where":"ctor","kind":"error","route":true})");
  EXPECT_EQ(p.status(), CHORUS_E_CONFIG);
  EXPECT_EQ(host.route_count(), 0u);
}

TEST(SdkLifecycle, DuplicateRouteFailsCreateWithExists) {
  FakeHost host;
  auto p = load(kFailingDescriptor, host, R"({"duplicate_route":true})");
  EXPECT_EQ(p.status(), CHORUS_E_EXISTS);
  EXPECT_NE(p.message().find("/dup"), std::string::npos) << p.message();
}

TEST(SdkLifecycle, ConfigErrorsFromConstructor) {
  FakeHost host;
  auto p = load(kEchoDescriptor, host, R"({"greeting":""})");
  EXPECT_EQ(p.status(), CHORUS_E_CONFIG);
  EXPECT_EQ(p.message(), "greeting must not be empty");
}

TEST(SdkLifecycle, ReconfigureDefaultNeedsRestart) {
  FakeHost host;
  auto p = load(kFailingDescriptor, host, "{}");
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  EXPECT_EQ(p.reconfigure(R"({"x":1})"), CHORUS_E_NEEDS_RESTART);
}

TEST(SdkLifecycle, ReconfigureOverride) {
  FakeHost host;
  auto p = load(kEchoDescriptor, host, "{}");
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  EXPECT_EQ(p.reconfigure(R"({"greeting":"howdy"})"), CHORUS_OK);
  EXPECT_EQ(host.http("GET", "/echo").body.substr(0, 5), "howdy");
  EXPECT_EQ(p.reconfigure(R"({"greeting":""})"), CHORUS_E_CONFIG);
  EXPECT_EQ(p.message(), "greeting must not be empty");
}

// The fake host applies the descriptor's config schema with the host's code (chorus/config_schema.hpp)
// before create and reconfigure: a refused config never reaches the plugin, and the message is the host's.
TEST(SdkLifecycle, ConfigSchemaIsAppliedLikeTheHost) {
  FakeHost host;
  auto p = load(kEchoDescriptor, host, R"({"greeting":5})");
  EXPECT_EQ(p.status(), CHORUS_E_CONFIG);
  EXPECT_EQ(p.message(), "plugins.sdk.echo-plugin.config.greeting: expected a string, got number");
  EXPECT_FALSE(p.running());
  EXPECT_FALSE(host.has_log("echo started"));

  FakeHost host2;
  auto q = load(kEchoDescriptor, host2, "{}");
  ASSERT_EQ(q.status(), CHORUS_OK) << q.message();
  EXPECT_EQ(q.reconfigure("[1]"), CHORUS_E_CONFIG);
  EXPECT_EQ(q.message(), "plugins.sdk.echo-plugin.config: not an object");
  EXPECT_EQ(q.reconfigure(R"({"greeting":[]})"), CHORUS_E_CONFIG);
  EXPECT_EQ(q.message(), "plugins.sdk.echo-plugin.config.greeting: expected a string, got array");
  EXPECT_TRUE(q.running());
  EXPECT_EQ(host2.http("GET", "/echo").body.substr(0, 5), "hello");  // the old config still applies

  FakeHost host3;
  auto bad = load(kBadSchemaDescriptor, host3, "{}");
  EXPECT_EQ(bad.status(), CHORUS_E_VERSION);
  EXPECT_EQ(bad.message().rfind("config_schema_json: schema.properties.n: unknown keyword 'maximun'", 0), 0u)
      << bad.message();
}

TEST(SdkLifecycle, PrepareConfigFillsTheSchemaDefaults) {
  using chorus::testing::prepare_config;
  const char *schema = R"({"type":"object","additionalProperties":false,"properties":{
    "n":{"type":"integer","minimum":1,"default":3},
    "inner":{"type":"object","default":{},"properties":{"s":{"type":"string","default":"x"}}}}})";
  auto c = prepare_config(schema, "acme", "{}");
  ASSERT_TRUE(c.ok()) << c.error;
  EXPECT_EQ(nlohmann::json::parse(c.json), nlohmann::json::parse(R"({"n":3,"inner":{"s":"x"}})"));
  EXPECT_EQ(prepare_config(schema, "acme", "").json, c.json);  // no config: section = an empty one
  EXPECT_EQ(prepare_config(schema, "acme", R"({"n":0})").error, "plugins.acme.config.n: 0 is less than the minimum 1");
  EXPECT_EQ(prepare_config(schema, "acme", R"({"m":1})").error, "plugins.acme.config: unknown key 'm'");
  EXPECT_EQ(prepare_config(nullptr, "acme", R"({"m":1})").json, R"({"m":1})");  // no schema: passed as is
  EXPECT_EQ(prepare_config(nullptr, "acme", "[1]").error, "plugins.acme.config: not an object");
}

TEST(SdkLifecycle, Drain) {
  FakeHost host;
  auto p = load(kEchoDescriptor, host, "{}");
  p.drain();
  EXPECT_EQ(host.health().state, CHORUS_HEALTH_DEGRADED);
  EXPECT_EQ(host.health_history().size(), 2u);
}

TEST(SdkLifecycle, ReloadReachesThePlugin) {
  FakeHost host;
  auto p = load(kEchoDescriptor, host, "{}");
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  p.reload();
  EXPECT_EQ(host.health().message, "reloaded");
}

TEST(SdkLifecycle, EntryPointThatRefusesTheHost) {
  FakeHost host;
  auto p = load(+[](const chorus_abi_info *) -> const chorus_plugin_descriptor * { return nullptr; }, host);
  EXPECT_EQ(p.status(), CHORUS_E_INVALID_ARG);
}

TEST(SdkLifecycle, MalformedDescriptorIsRejectedBeforeCreate) {
  chorus_plugin_descriptor d = kEchoDescriptor;
  d.abi_major = 2;
  FakeHost host;
  auto p = load(d, host);
  EXPECT_EQ(p.status(), CHORUS_E_VERSION);
  EXPECT_EQ(host.route_count(), 0u);
}

// ================================================================================================
// Services
// ================================================================================================

TEST(SdkService, GetServiceAndCallThroughTheTable) {
  FakeHost host;
  auto p = load(kEchoDescriptor, host, R"({"greeting":"hi"})");
  chorus::ServiceTable t;
  ASSERT_EQ(p.get_service("sdk.echo", 1, &t), CHORUS_OK) << p.message();
  const auto *tbl = static_cast<const sdk_echo_v1 *>(t.table);
  EXPECT_EQ(tbl->struct_size, sizeof(sdk_echo_v1));
  chorus::ErrorBuffer err;
  chorus_buf out{};
  ASSERT_EQ(tbl->echo(t.self, "x", 1, &out, err.get()), CHORUS_OK);
  EXPECT_EQ(take(out), "hi:x");
  EXPECT_EQ(tbl->echo(t.self, "", 0, &out, err.get()), CHORUS_E_INVALID_ARG);  // via chorus::guard
  EXPECT_EQ(err.text(), "empty input");
  EXPECT_EQ(tbl->count(t.self), 1u);

  EXPECT_EQ(p.get_service("sdk.echo", 2, &t), CHORUS_E_NOT_FOUND);
  EXPECT_NE(p.message().find("sdk.echo"), std::string::npos);
  EXPECT_EQ(t.table, nullptr);
}

TEST(SdkService, DeclaredServiceWithoutTableFailsTheLoad) {
  FakeHost host;
  auto p = load(kBrokenProviderDescriptor, host, "{}");
  EXPECT_EQ(p.status(), CHORUS_E_NOT_FOUND);
  EXPECT_NE(p.message().find("get_service('sdk.broken') failed"), std::string::npos) << p.message();
  EXPECT_EQ(p.instance(), nullptr);     // stopped and destroyed
  EXPECT_EQ(host.active_timers(), 0u);  // the timer start() made is gone
}

TEST(SdkService, DefaultServiceIsNotFound) {
  FakeHost host;
  auto p = load(kFailingDescriptor, host, "{}");
  chorus::ServiceTable t;
  EXPECT_EQ(p.get_service("anything", 1, &t), CHORUS_E_NOT_FOUND);
  EXPECT_EQ(p.message(), "this plugin does not provide 'anything' major 1");
}

// Two plugins talking through the registry: EchoPlugin's table is published into the consumer's
// fake host, the consumer acquires it per request and holds one ref while running.
TEST(SdkService, ConsumerUsesProviderThroughServiceRef) {
  FakeHost provider_host;
  auto provider = load(kEchoDescriptor, provider_host, R"({"greeting":"hi"})");
  ASSERT_EQ(provider.services().size(), 1u);  // fetched by the "host" right after start
  EXPECT_EQ(provider.services()[0].name, "sdk.echo");

  FakeHost host;
  provider.publish_to(host);
  {
    auto consumer = load(kConsumerDescriptor, host);
    ASSERT_EQ(consumer.status(), CHORUS_OK) << consumer.message();
    EXPECT_EQ(host.held_refs("sdk.echo"), 1u);
    auto r = host.http("GET", "/use?abc");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "ABC via sdk.echo-plugin");  // 1.1 provider: shout is there
    EXPECT_EQ(host.held_refs(), 1u);                // the per-request ref was released
    consumer.stop();
    EXPECT_EQ(host.held_refs(), 0u);
  }
  EXPECT_TRUE(host.violations().empty()) << host.violations().front();
}

TEST(SdkService, ConsumerStartFailsWithoutProvider) {
  FakeHost host;
  auto consumer = load(kConsumerDescriptor, host);
  EXPECT_EQ(consumer.status(), CHORUS_E_NOT_FOUND);
  EXPECT_NE(consumer.message().find("sdk.echo"), std::string::npos);
}

TEST(SdkService, WatchEvents) {
  FakeHost provider_host;
  auto provider = load(kEchoDescriptor, provider_host);
  chorus::ServiceTable t;
  ASSERT_EQ(provider.get_service("sdk.echo", 1, &t), CHORUS_OK);

  FakeHost host;
  host.provide("sdk.echo", 1, 0, t.table, t.self, "first");
  auto consumer = load(kConsumerDescriptor, host);
  ASSERT_EQ(consumer.status(), CHORUS_OK);
  host.provide("sdk.echo", 1, 1, t.table, t.self, "second");  // re-bound
  host.withdraw("sdk.echo");
  host.provide("sdk.echo", 1, 1, t.table, t.self, "third");
  host.run_pending();
  EXPECT_EQ(consumer_of(consumer)->events(),
            (std::vector<std::string>{"sdk.echo:1", "sdk.echo:2", "sdk.echo:0"}));
  consumer.stop();
  EXPECT_EQ(host.watch_count(), 0u);
}

// A provider compiled against 1.0 publishes a table that ends before `shout`.
TEST(SdkService, ShorterTableSlotsAreUnsupported) {
  static std::atomic<int> shout_calls{0};
  sdk_echo_v1 full{};
  full.struct_size = sizeof full;
  full.echo = [](void *, const char *in, size_t len, chorus_buf *out, chorus_error *) -> chorus_status {
    to_buf("old:" + std::string(in, len), out);
    return CHORUS_OK;
  };
  full.reset = [](void *self) { *static_cast<int *>(self) = 0; };
  full.shout = [](void *, const char *, size_t, chorus_buf *, chorus_error *) -> chorus_status {
    ++shout_calls;
    return CHORUS_OK;
  };
  // Exactly as long as a 1.0 table: reading past it would be an out-of-bounds access (ASan).
  const size_t short_size = offsetof(sdk_echo_v1, shout);
  auto storage = std::make_unique<unsigned char[]>(short_size);
  std::memcpy(storage.get(), &full, short_size);
  auto *short_table = reinterpret_cast<sdk_echo_v1 *>(storage.get());
  short_table->struct_size = static_cast<uint32_t>(short_size);

  int self = 5;
  FakeHost host;
  host.provide("sdk.echo", 1, 0, short_table, &self, "old.provider");
  chorus::Host h(host.api(), host.ctx());
  {
    auto ref = h.acquire<sdk_echo_v1>("sdk.echo", "^1");
    ASSERT_TRUE(ref);
    EXPECT_EQ(ref.major(), 1);
    EXPECT_EQ(ref.minor(), 0);
    EXPECT_EQ(ref.provider_id(), "old.provider");
    EXPECT_EQ(ref.self(), &self);
    EXPECT_TRUE(ref.has<&sdk_echo_v1::echo>());
    EXPECT_TRUE(ref.has<&sdk_echo_v1::reset>());
    EXPECT_FALSE(ref.has<&sdk_echo_v1::count>());  // inside the table but NULL
    EXPECT_FALSE(ref.has<&sdk_echo_v1::shout>());  // past struct_size
    EXPECT_TRUE(ref.has<&sdk_echo_v1::struct_size>());

    chorus::ErrorBuffer err;
    chorus_buf out{};
    EXPECT_EQ(ref.call<&sdk_echo_v1::shout>("a", size_t{1}, &out, err.get()), CHORUS_E_UNSUPPORTED);
    EXPECT_EQ(shout_calls.load(), 0);
    ASSERT_EQ(ref.call<&sdk_echo_v1::echo>("a", size_t{1}, &out, err.get()), CHORUS_OK);
    EXPECT_EQ(take(out), "old:a");
    EXPECT_EQ(ref.call<&sdk_echo_v1::reset>(), CHORUS_OK);  // void slot
    EXPECT_EQ(self, 0);

    auto moved = std::move(ref);
    EXPECT_FALSE(ref);
    EXPECT_EQ(ref.call<&sdk_echo_v1::echo>("a", size_t{1}, &out, err.get()), CHORUS_E_UNAVAILABLE);
    EXPECT_TRUE(moved);
    EXPECT_EQ(host.held_refs(), 1u);
  }
  EXPECT_EQ(host.held_refs(), 0u);
  EXPECT_TRUE(host.violations().empty());
}

TEST(SdkService, AcquireErrors) {
  FakeHost host;
  chorus::Host h(host.api(), host.ctx());
  sdk_echo_v1 table{};
  table.struct_size = sizeof table;
  host.provide("sdk.echo", 1, 4, &table, nullptr);
  host.provide("sdk.echo", 2, 0, &table, nullptr);
  EXPECT_EQ(h.acquire<sdk_echo_v1>("sdk.echo", "^1.2").minor(), 4);
  EXPECT_EQ(h.acquire<sdk_echo_v1>("sdk.echo").major(), 2);  // "*" picks the highest
  EXPECT_EQ(h.acquire<sdk_echo_v1>("sdk.echo", ">=1.2 <2").major(), 1);
  try {
    (void)h.acquire<sdk_echo_v1>("sdk.echo", "^3");
    ADD_FAILURE() << "no throw";
  } catch (const chorus::Error &e) {
    EXPECT_EQ(e.code(), CHORUS_E_VERSION);
    EXPECT_NE(std::string(e.what()).find("^3"), std::string::npos) << e.what();
  }
  chorus::ErrorBuffer err;
  auto none = h.try_acquire<sdk_echo_v1>("sdk.nothing", "*", &err);
  EXPECT_FALSE(none);
  EXPECT_EQ(err.code, CHORUS_E_NOT_FOUND);
  EXPECT_EQ(host.held_refs(), 0u);
}

TEST(SdkService, RangeMatcherOfTheFake) {
  using chorus::testing::detail::range_matches;
  auto m = [](std::string_view r, uint64_t a, uint64_t b, uint64_t c) {
    bool ok = false;
    const bool res = range_matches(r, {a, b, c}, &ok);
    EXPECT_TRUE(ok) << r;
    return res;
  };
  EXPECT_TRUE(m("^1.2", 1, 9, 0));
  EXPECT_FALSE(m("^1.2", 1, 1, 0));
  EXPECT_FALSE(m("^1.2", 2, 0, 0));
  EXPECT_TRUE(m("^0.2", 0, 2, 5));
  EXPECT_FALSE(m("^0.2", 0, 3, 0));
  EXPECT_TRUE(m("~1.2.3", 1, 2, 9));
  EXPECT_FALSE(m("~1.2.3", 1, 3, 0));
  EXPECT_TRUE(m("1.4.2", 1, 4, 2));
  EXPECT_FALSE(m("1.4.2", 1, 4, 3));
  EXPECT_TRUE(m("1", 1, 7, 0));
  EXPECT_TRUE(m(">=1.2 <2", 1, 2, 0));
  EXPECT_FALSE(m(">=1.2 <2", 2, 0, 0));
  EXPECT_FALSE(m(">1.2", 1, 2, 7));
  EXPECT_TRUE(m("<=1.2", 1, 2, 7));
  EXPECT_TRUE(m("*", 9, 9, 9));
  EXPECT_TRUE(m("", 0, 0, 1));
  bool ok = true;
  range_matches("^x", {1, 0, 0}, &ok);
  EXPECT_FALSE(ok);
}

// ================================================================================================
// HTTP
// ================================================================================================

class SdkHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    plugin_ = std::make_unique<chorus::testing::PluginHandle>(load(kEchoDescriptor, host_, R"({"greeting":"hi"})"));
    ASSERT_EQ(plugin_->status(), CHORUS_OK) << plugin_->message();
  }
  FakeHost host_;
  std::unique_ptr<chorus::testing::PluginHandle> plugin_;
};

TEST_F(SdkHttp, SyncAnswerWithHeadersAndQuery) {
  auto r = host_.http("GET", "/echo?x=1", "", {{"X-NAME", "bob"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain");
  EXPECT_EQ(r.body, "hi bob q=x=1");
  EXPECT_EQ(r.header("x-echo"), "1");
  EXPECT_TRUE(r.finished);
  EXPECT_EQ(host_.metric_value("chorus_echo_requests_total", {"echo"}), 1.0);
}

TEST_F(SdkHttp, AsyncAnswerFromPostedTask) {
  const size_t id = host_.http_start("POST", "/echo/async", "payload");
  EXPECT_EQ(host_.response(id).status, 0);  // not answered yet: the handler only posted
  EXPECT_EQ(host_.pending_tasks(), 1u);
  EXPECT_EQ(host_.run_pending(), 1u);
  auto r = host_.response(id);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "payload");
  EXPECT_FALSE(host_.has_log("returned without answering"));
  // http() runs posted tasks itself.
  EXPECT_EQ(host_.http("POST", "/echo/async", "x").body, "x");
  EXPECT_EQ(host_.histogram_samples("chorus_echo_body_bytes"), (std::vector<double>{7, 1}));
  EXPECT_EQ(host_.metric_value("chorus_echo_body_bytes"), 8.0);
}

TEST_F(SdkHttp, StreamingOnPrefixRoute) {
  auto r = host_.http("GET", "/stream/3");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.streaming);
  EXPECT_TRUE(r.finished);
  EXPECT_EQ(r.chunks, (std::vector<std::string>{"{\"i\":0}\n", "{\"i\":1}\n", "{\"i\":2}\n"}));
  EXPECT_EQ(host_.http("GET", "/nothing").status, 404);
  EXPECT_EQ(host_.http("POST", "/echo").status, 404);  // method mismatch
}

TEST_F(SdkHttp, DroppedStreamIsEndedByTheHandle) {
  auto r = host_.http("GET", "/stream-dropped");
  EXPECT_TRUE(r.finished);
  EXPECT_EQ(r.body, "data: 1\n\n");
}

TEST_F(SdkHttp, ExceptionsBecomeErrorResponses) {
  auto busy = host_.http("GET", "/busy");
  EXPECT_EQ(busy.status, 429);
  EXPECT_EQ(busy.body, "slow down");
  auto crash = host_.http("GET", "/crash");
  EXPECT_EQ(crash.status, 500);
  EXPECT_EQ(crash.body, "internal error\n");  // the detail goes to the log, not to the client
  EXPECT_TRUE(host_.has_log("HTTP handler failed: CHORUS_E_INTERNAL: secret detail", CHORUS_LOG_ERROR));
  auto answered = host_.http("GET", "/answered-then-throw");
  EXPECT_EQ(answered.status, 201);  // not answered twice
  EXPECT_TRUE(host_.violations().empty()) << host_.violations().front();
}

TEST_F(SdkHttp, UnansweredExchangeIsNotAutoAnswered) {
  const size_t id = host_.http_start("GET", "/dropped");
  auto r = host_.response(id);
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.finished);
  EXPECT_TRUE(host_.has_log("returned without answering", CHORUS_LOG_WARN));
  plugin_->stop();  // the host cancels what is still open: the client gets a 503
  r = host_.response(id);
  EXPECT_EQ(r.status, 503);
  EXPECT_TRUE(r.cancelled);
  EXPECT_FALSE(r.finished);  // ... but the plugin lost the exchange, which the fake reports
  auto v = host_.violations();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_NE(v[0].find("GET /dropped"), std::string::npos) << v[0];
}

TEST(SdkHttpExchange, DisconnectedClientAndMisuse) {
  FakeHost host;
  chorus::Host h(host.api(), host.ctx());
  std::vector<chorus_status> results;
  h.route("GET", "/sse", [&](const chorus::HttpRequest &, chorus::HttpExchange ex) {
    EXPECT_TRUE(ex);
    EXPECT_EQ(ex.write("too early"), CHORUS_E_INVALID_ARG);  // no stream yet
    results.push_back(ex.begin_stream(200, "text/event-stream", {{"Cache-Control", "no-cache"}}));
    h.post([ex = std::move(ex), &results]() mutable {
      results.push_back(ex.write("data: a\n\n"));
      results.push_back(ex.write("data: b\n\n"));
      results.push_back(ex.end());
      results.push_back(ex.end());  // already ended: the handle is empty
      EXPECT_FALSE(ex);
    });
  });
  const size_t id = host.http_start("GET", "/sse");
  host.disconnect(id);
  host.run_pending();
  EXPECT_EQ(results, (std::vector<chorus_status>{CHORUS_OK, CHORUS_E_CANCELLED, CHORUS_E_CANCELLED,
                                                 CHORUS_E_CANCELLED, CHORUS_E_INVALID_ARG}));
  auto r = host.response(id);
  EXPECT_EQ(r.header("cache-control"), "no-cache");
  EXPECT_TRUE(r.finished);
  EXPECT_TRUE(host.violations().empty());
}

TEST(SdkHttpExchange, RefusedRespondKeepsTheExchange) {
  FakeHost host;
  chorus::Host h(host.api(), host.ctx());
  std::vector<chorus_status> results;
  h.route("GET", "/x", [&](const chorus::HttpRequest &, chorus::HttpExchange ex) {
    results.push_back(ex.respond(204, "text/plain", "a body on 204"));  // refused by the host
    EXPECT_TRUE(ex);                                                     // still ours to answer
    results.push_back(ex.respond(200, "text/plain", "ok"));
    EXPECT_FALSE(ex);
  });
  auto r = host.http("GET", "/x");
  EXPECT_EQ(results, (std::vector<chorus_status>{CHORUS_E_INVALID_ARG, CHORUS_OK}));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(host.violations().size(), 1u);  // the fake flags the invalid call
}

// ================================================================================================
// Timers, tasks, metrics, health, logs, host info
// ================================================================================================

TEST(SdkHost, TimersDrivenByTheManualClock) {
  FakeHost host;
  auto p = load(kEchoDescriptor, host);
  ASSERT_EQ(p.status(), CHORUS_OK);
  EXPECT_EQ(host.active_timers(), 1u);
  EXPECT_EQ(host.advance(99ms), 0u);
  EXPECT_EQ(host.advance(251ms), 3u);  // t=100, 200, 300
  EXPECT_EQ(host.metric_value("chorus_echo_ticks"), 3.0);
  p.stop();  // the plugin cancels its timer
  EXPECT_EQ(host.active_timers(), 0u);
  EXPECT_EQ(host.advance(1s), 0u);
}

TEST(SdkHost, TimerCallablesAreDestroyedAfterOneShotAndCancel) {
  FakeHost host;
  chorus::Host h(host.api(), host.ctx());
  auto token = std::make_shared<int>(0);
  const uint64_t t0 = host.now_ms();
  uint64_t fired_at = 0;
  h.timer(50ms, 0ms, [token, &h, &fired_at] {
    ++*token;
    fired_at = h.now_ms();
  });
  const uint64_t periodic = h.timer(10ms, 10ms, [token] { ++*token; });
  EXPECT_EQ(token.use_count(), 3);
  host.advance(50ms);
  EXPECT_EQ(fired_at, t0 + 50);
  EXPECT_EQ(*token, 6);               // 5 periodic + 1 one-shot
  EXPECT_EQ(token.use_count(), 2);    // the one-shot's callable is gone
  EXPECT_EQ(h.cancel_timer(periodic), CHORUS_OK);
  EXPECT_EQ(token.use_count(), 1);
  EXPECT_EQ(h.cancel_timer(periodic), CHORUS_E_NOT_FOUND);
}

TEST(SdkHost, TimerCancelledFromItsOwnCallback) {
  FakeHost host;
  chorus::Host h(host.api(), host.ctx());
  int runs = 0;
  uint64_t id = 0;
  id = h.timer(10ms, 10ms, [&] {
    if (++runs == 2) {
      EXPECT_EQ(h.cancel_timer(id), CHORUS_OK);
    }
  });
  host.advance(100ms);
  EXPECT_EQ(runs, 2);
  EXPECT_EQ(host.active_timers(), 0u);
}

TEST(SdkHost, PostRunsOnceAndLogsExceptions) {
  FakeHost host;
  chorus::Host h(host.api(), host.ctx());
  int ran = 0;
  h.post([&] { ++ran; });
  h.post([&] {
    ++ran;
    throw std::logic_error("task broke");
  });
  h.post([&] { h.post([&] { ++ran; }); });  // tasks may post tasks
  EXPECT_EQ(ran, 0);
  EXPECT_EQ(host.run_pending(), 4u);
  EXPECT_EQ(ran, 3);
  EXPECT_TRUE(host.has_log("posted task failed: CHORUS_E_INTERNAL: task broke", CHORUS_LOG_ERROR));
}

TEST(SdkHost, MoveOnlyCallablesAndRefusedPost) {
  FakeHost host;
  chorus::Host h(host.api(), host.ctx());
  auto token = std::make_shared<int>(0);
  h.post([p = std::make_unique<int>(7), token] { EXPECT_EQ(*p, 7); });
  host.run_pending();
  EXPECT_EQ(token.use_count(), 1);  // destroyed after running

  host.begin_stopping();
  try {
    h.post([token] {});
    ADD_FAILURE() << "no throw";
  } catch (const chorus::Error &e) {
    EXPECT_EQ(e.code(), CHORUS_E_UNAVAILABLE);
  }
  EXPECT_EQ(token.use_count(), 1);  // the refused box was freed by the SDK
}

TEST(SdkHost, QueuedTasksAreDroppedAtStop) {
  FakeHost host;
  chorus::Host h(host.api(), host.ctx());
  auto token = std::make_shared<int>(0);
  bool ran = false;
  h.post([token, &ran] { ran = true; });
  host.begin_stopping();
  EXPECT_EQ(host.run_pending(), 0u);
  host.end_plugin();
  EXPECT_FALSE(ran);
  EXPECT_EQ(token.use_count(), 1);  // its destructor ran instead
}

TEST(SdkHost, Metrics) {
  FakeHost host;
  chorus::Host h(host.api(), host.ctx());
  auto c = h.counter("chorus_t_total", "help", {"peer", "reason"});
  const std::string peer = "p1";
  EXPECT_EQ(c.add(peer, std::string_view("timeout"), 2), CHORUS_OK);
  EXPECT_EQ(c.inc("p1", "timeout"), CHORUS_OK);
  EXPECT_EQ(host.metric_value("chorus_t_total", {"p1", "timeout"}), 3.0);
  EXPECT_EQ(host.metric_value("chorus_t_total", {"p2", "timeout"}), std::nullopt);
  auto g = h.gauge("chorus_t_level", "help");
  g.set(5);
  g.add(-2.5);
  EXPECT_EQ(host.metric_value("chorus_t_level"), 2.5);
  auto hist = h.histogram("chorus_t_seconds", "help", {"op"}, {0.1, 1, 10});
  hist.observe("get", 0.5);
  hist.observe("get", 2);
  EXPECT_EQ(host.histogram_samples("chorus_t_seconds", {"get"}), (std::vector<double>{0.5, 2}));
  // Same shape => same id; other shape => CHORUS_E_EXISTS.
  EXPECT_EQ(h.counter("chorus_t_total", "again", {"peer", "reason"}).id(), c.id());
  try {
    (void)h.gauge("chorus_t_total", "help");
    ADD_FAILURE() << "no throw";
  } catch (const chorus::Error &e) {
    EXPECT_EQ(e.code(), CHORUS_E_EXISTS);
  }
  try {
    (void)h.counter("bad name", "help");
    ADD_FAILURE() << "no throw";
  } catch (const chorus::Error &e) {
    EXPECT_EQ(e.code(), CHORUS_E_INVALID_ARG);
    EXPECT_NE(std::string(e.what()).find("chorus_"), std::string::npos);
  }
  EXPECT_TRUE(host.violations().empty());
  // Wrong label count is a contract violation the fake reports.
  EXPECT_EQ(c.inc("only-one"), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(host.violations().size(), 1u);
  EXPECT_EQ(chorus::Counter().inc(), CHORUS_E_UNAVAILABLE);
}

TEST(SdkHost, LogsHealthAndHostInfo) {
  FakeHost host;
  chorus::Host h(host.api(), host.ctx());
  host.set_log_level(CHORUS_LOG_WARN);
  EXPECT_FALSE(h.log_enabled(chorus::LogLevel::info));
  h.info("hidden");
  h.debug("hidden");
  h.warn("shown");
  h.error("also shown");
  h.log(chorus::LogLevel::trace, "hidden");
  auto logs = host.logs();
  ASSERT_EQ(logs.size(), 2u);
  EXPECT_EQ(logs[0].level, CHORUS_LOG_WARN);
  EXPECT_EQ(logs[0].text, "shown");
  EXPECT_EQ(logs[1].level, CHORUS_LOG_ERROR);

  h.report_health(chorus::Health::unhealthy, "disk full");
  EXPECT_EQ(host.health().state, CHORUS_HEALTH_UNHEALTHY);
  EXPECT_EQ(host.health().message, "disk full");

  host.set_plugin_id("acme.x");
  auto info = nlohmann::json::parse(h.host_info());
  EXPECT_EQ(info["plugin_id"], "acme.x");
  EXPECT_TRUE(info.contains("agent_id") && info.contains("state_dir") && info.contains("http_listen"));
  host.set_host_info(R"({"agent_id":"a1"})");
  EXPECT_EQ(h.host_info(), R"({"agent_id":"a1"})");
  EXPECT_EQ(host.outstanding_bufs(), 0u);  // every chorus_buf was released
}

// A host of an older minor publishes a shorter table: the SDK checks struct_size before each slot.
TEST(SdkHost, OlderHostWithShorterApi) {
  FakeHost host;
  const chorus_host_api old_api = host.truncated_api(offsetof(chorus_host_api, timer_start));
  chorus::Host h(&old_api, host.ctx());
  h.info("still logs");
  EXPECT_TRUE(host.has_log("still logs"));
  bool ran = false;
  h.post([&] { ran = true; });
  host.run_pending();
  EXPECT_TRUE(ran);
  try {
    h.timer(1ms, 0ms, [] {});
    ADD_FAILURE() << "no throw";
  } catch (const chorus::Error &e) {
    EXPECT_EQ(e.code(), CHORUS_E_UNSUPPORTED);
  }
  EXPECT_EQ(h.cancel_timer(1), CHORUS_E_UNSUPPORTED);
  EXPECT_GT(h.now_ms(), 0u);  // falls back to the plugin's own steady clock
  h.report_health(chorus::Health::degraded);  // silently skipped
  EXPECT_TRUE(host.health_history().empty());
  EXPECT_THROW((void)h.acquire<sdk_echo_v1>("x"), chorus::Error);
}

// ================================================================================================
// Error helpers
// ================================================================================================

TEST(SdkErrors, SetErrorHonoursStructSizeAndNull) {
  chorus::set_error(nullptr, CHORUS_E_IO, "ignored");  // must not crash

  chorus_error e{};
  std::memset(&e, 'z', sizeof e);
  e.struct_size = static_cast<uint32_t>(offsetof(chorus_error, message) + 4);  // room for 3 chars + NUL
  chorus::set_error(&e, CHORUS_E_IO, "abcdef");
  EXPECT_EQ(e.code, CHORUS_E_IO);
  EXPECT_STREQ(e.message, "abc");
  EXPECT_EQ(e.message[4], 'z');  // nothing written past struct_size

  chorus_error tiny{};
  tiny.struct_size = 4;  // not even `code`
  chorus::set_error(&tiny, CHORUS_E_IO, "x");
  EXPECT_EQ(tiny.code, 0);
  EXPECT_EQ(tiny.message[0], '\0');
}

TEST(SdkErrors, SetErrorKeepsUtf8SequencesWhole) {
  chorus_error e{};
  e.struct_size = static_cast<uint32_t>(offsetof(chorus_error, message) + 4);  // 3 bytes + NUL
  chorus::set_error(&e, CHORUS_E_IO, "a\xC3\xA9z");  // 'a', U+00E9 (2 bytes), 'z': the cut falls after 'a'+2
  EXPECT_STREQ(e.message, "a\xC3\xA9");
  chorus::set_error(&e, CHORUS_E_IO, "ab\xC3\xA9");  // the cut would split U+00E9: drop it whole
  EXPECT_STREQ(e.message, "ab");
}

TEST(SdkErrors, HostAndFakeHostDescribeStatusesAlike) {
  chorus::testing::FakeHost host;
  const chorus_host_api *real = chorus::host::host_api_table();
  for (chorus_status s : {CHORUS_OK, CHORUS_E_NOT_FOUND, CHORUS_E_PROTOCOL, CHORUS_E_SERVICE_BASE + 3, -99}) {
    EXPECT_STREQ(real->status_str(s), host.api()->status_str(s)) << s;
    EXPECT_STREQ(real->status_str(s), chorus_status_describe(s)) << s;
  }
  EXPECT_STREQ(real->status_str(CHORUS_E_NOT_FOUND), "not found");
  EXPECT_STREQ(chorus_status_name(CHORUS_E_NOT_FOUND), "CHORUS_E_NOT_FOUND");
}

TEST(SdkErrors, GuardStatusNamesAndCheck) {
  chorus::ErrorBuffer err;
  EXPECT_EQ(chorus::guard(err.get(), [] {}), CHORUS_OK);
  EXPECT_EQ(chorus::guard(err.get(), [] { return CHORUS_E_BUSY; }), CHORUS_E_BUSY);
  EXPECT_EQ(chorus::guard(err.get(), [] { throw chorus::NeedsRestart(); }), CHORUS_E_NEEDS_RESTART);
  EXPECT_EQ(err.text(), "this change needs a restart");
  EXPECT_STREQ(chorus::status_name(CHORUS_E_TIMEOUT), "CHORUS_E_TIMEOUT");
  EXPECT_STREQ(chorus::status_name(1234), "CHORUS_E_SERVICE_SPECIFIC");
  EXPECT_STREQ(chorus::status_name(-99), "CHORUS_E_UNKNOWN");
  EXPECT_NO_THROW(chorus::check(CHORUS_OK));
  try {
    chorus::check(CHORUS_E_IO, "open");
    ADD_FAILURE() << "no throw";
  } catch (const chorus::Error &e) {
    EXPECT_EQ(e.code(), CHORUS_E_IO);
    EXPECT_STREQ(e.what(), "open: CHORUS_E_IO");
  }
  EXPECT_EQ(chorus::http_status_for(CHORUS_E_NOT_FOUND), 404);
  EXPECT_EQ(chorus::http_status_for(CHORUS_E_INTERNAL), 500);
}

// Host::redact: through the slot when the host has it; on a table that ends before the slot (a
// 1.0/1.1 host), the input back unchanged - what a plugin with min_host_minor < 2 relies on.
TEST(SdkRedact, UsesTheSlotAndDegradesWithoutIt) {
  chorus::testing::FakeHost fake;
  fake.add_redact_secret("s3cr3t-value");
  chorus::Host full(fake.api(), fake.ctx());
  EXPECT_TRUE(full.can_redact());
  uint32_t n = 7;
  EXPECT_EQ(full.redact(chorus::Channel::pubsub, "a s3cr3t-value b", false, &n), "a [REDACTED] b");
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(fake.outstanding_bufs(), 0u);  // the SDK released the host's buffer
  const chorus_host_api old = fake.truncated_api(offsetof(chorus_host_api, redact));
  chorus::Host older(&old, fake.ctx());
  EXPECT_FALSE(older.can_redact());
  EXPECT_EQ(older.redact(chorus::Channel::ucxi, "a s3cr3t-value b", true, &n), "a s3cr3t-value b");
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(fake.redactions().size(), 1u);  // the truncated table never reached the slot
  // Bad arguments at the C boundary.
  chorus_buf buf{};
  EXPECT_EQ(fake.api()->redact(fake.ctx(), 3, CHORUS_REDACT_TEXT, "x", 1, &buf, nullptr), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(fake.api()->redact(fake.ctx(), 0, 2, "x", 1, &buf, nullptr), CHORUS_E_INVALID_ARG);
  // The real host publishes the slot, and says 1.2.
  const chorus_host_api *real = chorus::host::host_api_table();
  EXPECT_TRUE(CHORUS_HAS(chorus_host_api, real, redact));
  EXPECT_EQ(real->abi_minor, 2);
}

}  // namespace

// The reasoning plugin (the built .so) with the fake host and a scripted in-process provider.
#include <chorus/services/ai_provider_v1.h>
#include <chorus/services/reasoning_v1.h>
#include <chorus/testing/fake_host.hpp>
#include <gtest/gtest.h>

#include <dlfcn.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include <nlohmann/json.hpp>

namespace {
using nlohmann::json;

chorus_plugin_entry_fn entry() {
  const std::string path = std::string(CHORUS_AI_PLUGIN_DIR) + "/chorus-reasoning.so";
  void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  return h ? reinterpret_cast<chorus_plugin_entry_fn>(dlsym(h, CHORUS_PLUGIN_ENTRY_SYMBOL)) : nullptr;
}

// A provider whose requests the test completes by hand.
struct ScriptedProvider {
  chorus_ai_provider_v1 table{};
  std::vector<std::string> requests;
  std::vector<chorus_ai_sink> sinks;
  std::vector<uint64_t> cancelled;
  ScriptedProvider() {
    table.struct_size = sizeof table;
    table.chat = [](void *self, const char *j, size_t n, const chorus_ai_sink *s, uint64_t *id, chorus_error *) -> chorus_status {
      auto *p = static_cast<ScriptedProvider *>(self);
      p->requests.emplace_back(j, n);
      p->sinks.push_back(*s);
      *id = p->sinks.size();
      return CHORUS_OK;
    };
    table.cancel = [](void *self, uint64_t id) -> chorus_status {
      auto *p = static_cast<ScriptedProvider *>(self);
      p->cancelled.push_back(id);
      const auto &s = p->sinks.at(id - 1);
      s.on_error(s.user, CHORUS_E_CANCELLED, "cancelled", 9);
      return CHORUS_OK;
    };
  }
  json last() const { return json::parse(requests.back()); }
  void chunk(size_t i, const std::string &j) { sinks.at(i).on_chunk(sinks[i].user, j.data(), j.size()); }
  void done(size_t i, const std::string &j) { sinks.at(i).on_done(sinks[i].user, j.data(), j.size()); }
  void fail(size_t i, chorus_status s, const std::string &m) { sinks.at(i).on_error(sinks[i].user, s, m.data(), m.size()); }
};

const char *kDone = R"({"model":"m1","content":"hi there","finish_reason":"stop","usage":{"total_tokens":3},"provider":"p","provider_version":"1"})";

struct Fixture : ::testing::Test {
  chorus::testing::FakeHost host;
  ScriptedProvider prov;
  void SetUp() override {
    host.provide(CHORUS_AI_PROVIDER_SERVICE, 1, 0, &prov.table, &prov, "ai-fake");
  }
};
}  // namespace

TEST_F(Fixture, JsonAnswerAndTheProviderRefIsHeldUntilTheTerminalCallback) {
  auto plugin = chorus::testing::load(entry(), host, R"({"models":["m1","m2"]})");
  ASSERT_EQ(plugin.status(), CHORUS_OK) << plugin.message();
  const size_t ex = host.http_start("POST", "/api/v1/ai/chat", R"({"messages":[{"role":"user","content":"hello"}]})");
  host.run_pending();
  ASSERT_EQ(prov.requests.size(), 1u);
  EXPECT_EQ(prov.last()["model"], "m1");  // no webhook: the first configured model
  EXPECT_EQ(host.held_refs(CHORUS_AI_PROVIDER_SERVICE), 1u);
  EXPECT_EQ(host.response(ex).status, 0);
  prov.done(0, kDone);
  host.run_pending();
  auto r = host.response(ex);
  ASSERT_EQ(r.status, 200);
  json j = json::parse(r.body);
  EXPECT_EQ(j["choices"][0]["message"]["content"], "hi there");
  EXPECT_EQ(j["provider"], "ai-fake");
  EXPECT_EQ(r.header("X-Chorus-Provider"), "ai-fake");
  EXPECT_EQ(host.held_refs(CHORUS_AI_PROVIDER_SERVICE), 0u);
  EXPECT_EQ(plugin.stop(), CHORUS_OK);
  EXPECT_TRUE(host.violations().empty());
}

TEST_F(Fixture, SseStreamAndStreamedErrors) {
  auto plugin = chorus::testing::load(entry(), host, "{}");
  ASSERT_EQ(plugin.status(), CHORUS_OK) << plugin.message();
  const size_t ex = host.http_start("POST", "/api/v1/ai/chat", R"({"messages":[{"role":"user","content":"x"}],"stream":true})");
  host.run_pending();
  EXPECT_FALSE(prov.last().contains("model"));  // nothing configured: the provider's default
  prov.chunk(0, R"({"delta":"hi"})");
  prov.chunk(0, R"({"delta":" there"})");
  prov.done(0, kDone);
  host.run_pending();
  auto r = host.response(ex);
  EXPECT_TRUE(r.streaming);
  EXPECT_TRUE(r.finished);
  EXPECT_EQ(r.content_type, "text/event-stream");
  EXPECT_NE(r.body.find("\"content\":\"hi\""), std::string::npos);
  EXPECT_NE(r.body.find("data: [DONE]\n\n"), std::string::npos);

  const size_t ex2 = host.http_start("POST", "/api/v1/ai/chat", R"({"messages":[{"role":"user","content":"x"}],"stream":true})");
  host.run_pending();
  prov.fail(1, CHORUS_E_PROTOCOL, "truncated answer");
  host.run_pending();
  auto r2 = host.response(ex2);
  EXPECT_NE(r2.body.find("event: error\ndata: "), std::string::npos);
  EXPECT_NE(r2.body.find("truncated answer"), std::string::npos);
  EXPECT_EQ(host.held_refs(CHORUS_AI_PROVIDER_SERVICE), 0u);
  EXPECT_EQ(plugin.stop(), CHORUS_OK);
  EXPECT_TRUE(host.violations().empty());
}

TEST_F(Fixture, ErrorsMapToHttpStatuses) {
  auto plugin = chorus::testing::load(entry(), host, R"({"models":["m1"]})");
  ASSERT_EQ(plugin.status(), CHORUS_OK) << plugin.message();
  EXPECT_EQ(host.http("POST", "/api/v1/ai/chat", "{nope").status, 400);
  EXPECT_EQ(host.http("POST", "/api/v1/ai/chat", R"({"model":"zzz","messages":[{"role":"user","content":"x"}]})").status, 400);
  struct Case { chorus_status st; int http; };
  for (Case c : {Case{CHORUS_E_BUSY, 429}, Case{CHORUS_E_UNAVAILABLE, 503}, Case{CHORUS_E_TIMEOUT, 504},
                 Case{CHORUS_AI_E_UPSTREAM, 502}, Case{CHORUS_E_NOT_FOUND, 404}}) {
    const size_t ex = host.http_start("POST", "/api/v1/ai/chat", R"({"messages":[{"role":"user","content":"x"}]})");
    host.run_pending();
    prov.fail(prov.sinks.size() - 1, c.st, "boom");
    host.run_pending();
    EXPECT_EQ(host.response(ex).status, c.http);
  }
  host.withdraw(CHORUS_AI_PROVIDER_SERVICE);
  host.run_pending();
  auto r = host.http("POST", "/api/v1/ai/chat", R"({"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("no AI provider"), std::string::npos);
  EXPECT_EQ(plugin.stop(), CHORUS_OK);
  EXPECT_TRUE(host.violations().empty());
}

TEST_F(Fixture, StopCancelsOpenRequests) {
  auto plugin = chorus::testing::load(entry(), host, "{}");
  ASSERT_EQ(plugin.status(), CHORUS_OK);
  host.http_start("POST", "/api/v1/ai/chat", R"({"messages":[{"role":"user","content":"x"}]})");
  host.run_pending();
  EXPECT_EQ(plugin.stop(), CHORUS_OK);
  EXPECT_EQ(prov.cancelled, std::vector<uint64_t>{1});
  EXPECT_EQ(host.held_refs(CHORUS_AI_PROVIDER_SERVICE), 0u);
}

TEST_F(Fixture, RolePromptComposition) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("chorus-prompts-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "roles.yaml") << "roles:\n  dev:\n    name: Dev\n    system_prompt: |\n      You are dev.\n";
  std::ofstream(dir / "defaults.md") << "Be brief.\n";
  const std::string cfg = json{{"prompts_dir", dir.string()}, {"default_instructions_path", (dir / "defaults.md").string()},
                               {"role", "dev"}}.dump();
  auto plugin = chorus::testing::load(entry(), host, cfg);
  ASSERT_EQ(plugin.status(), CHORUS_OK) << plugin.message();
  host.http_start("POST", "/api/v1/ai/chat", R"({"messages":[{"role":"user","content":"x"}]})");
  host.run_pending();
  EXPECT_EQ(prov.last()["messages"][0], (json{{"role", "system"}, {"content", "You are dev.\n\nBe brief."}}));
  prov.done(0, kDone);
  EXPECT_EQ(plugin.stop(), CHORUS_OK);

  std::ofstream(dir / "roles.yaml") << "roles: [unclosed\n";
  chorus::testing::FakeHost host2;
  auto bad = chorus::testing::load(entry(), host2, cfg);
  EXPECT_EQ(bad.status(), CHORUS_E_CONFIG);
  EXPECT_NE(bad.message().find("invalid YAML at line"), std::string::npos) << bad.message();
  fs::remove_all(dir);
}

// Keys, types and ranges are the schema's to check (the host applies it, the fake host here too).
TEST_F(Fixture, TheSchemaRefusesBadValuesNamingTheKey) {
  auto plugin = chorus::testing::load(entry(), host, R"({"webhook_timeout_ms":0})");
  EXPECT_EQ(plugin.status(), CHORUS_E_CONFIG);
  EXPECT_EQ(plugin.message(), "plugins.reasoning.config.webhook_timeout_ms: 0 is less than the minimum 1");
  chorus::testing::FakeHost host2;
  auto bad = chorus::testing::load(entry(), host2, R"({"models":["m1",""]})");
  EXPECT_EQ(bad.status(), CHORUS_E_CONFIG);
  EXPECT_EQ(bad.message(), "plugins.reasoning.config.models[1]: '' is shorter than 1 characters");
}

// ---------------------------------------------------------------- the chorus.reasoning v1 table
namespace {
// Records callbacks (the scripted provider calls back on the test thread).
struct RecordingSink {
  int terminals = 0;
  chorus_status status = CHORUS_OK;
  std::string text;
  std::vector<std::string> chunks;
  chorus_ai_sink c{};
  RecordingSink() {
    c.struct_size = sizeof c;
    c.user = this;
    c.on_chunk = [](void *u, const char *j, size_t n) { static_cast<RecordingSink *>(u)->chunks.emplace_back(j, n); };
    c.on_done = [](void *u, const char *j, size_t n) {
      auto *s = static_cast<RecordingSink *>(u);
      s->terminals++;
      s->text.assign(j, n);
    };
    c.on_error = [](void *u, chorus_status st, const char *m, size_t n) {
      auto *s = static_cast<RecordingSink *>(u);
      s->terminals++;
      s->status = st;
      s->text.assign(m, n);
    };
  }
};

const chorus_reasoning_v1 *reasoning_table(chorus::testing::PluginHandle &p, void **self) {
  for (const auto &s : p.services())
    if (s.name == CHORUS_REASONING_SERVICE && s.major == CHORUS_REASONING_V1_MAJOR) {
      *self = s.table.self;
      return static_cast<const chorus_reasoning_v1 *>(s.table.table);
    }
  return nullptr;
}

struct ServiceFixture : Fixture {
  std::filesystem::path dir;
  void SetUp() override {
    Fixture::SetUp();
    dir = std::filesystem::temp_directory_path() / ("chorus-rsvc-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "roles.yaml") << "roles:\n  dev:\n    system_prompt: You are dev.\n";
    std::ofstream(dir / "defaults.md") << "Be brief.\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir); }
  std::string config() const {
    return json{{"models", {"m1", "m2"}}, {"prompts_dir", dir.string()},
                {"default_instructions_path", (dir / "defaults.md").string()}, {"role", "dev"}}.dump();
  }
  // Loads the plugin with config() and finds its chorus.reasoning v1 table (call through
  // ASSERT_NO_FATAL_FAILURE).
  void start() {
    plugin.emplace(chorus::testing::load(entry(), host, config()));
    ASSERT_EQ(plugin->status(), CHORUS_OK) << plugin->message();
    t = reasoning_table(*plugin, &self);
    ASSERT_NE(t, nullptr);
  }
  std::optional<chorus::testing::PluginHandle> plugin;
  void *self = nullptr;
  const chorus_reasoning_v1 *t = nullptr;
};

chorus_status complete(const chorus_reasoning_v1 *t, void *self, const std::string &req, RecordingSink &sink,
                       uint64_t *id, chorus::ErrorBuffer &err) {
  return t->complete(self, req.data(), req.size(), &sink.c, id, err.get());
}
}  // namespace

TEST_F(ServiceFixture, SystemPromptSlot) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_GE(t->struct_size, sizeof(chorus_reasoning_v1));
  chorus_buf buf{};
  ASSERT_EQ(t->system_prompt(self, &buf, nullptr), CHORUS_OK);
  EXPECT_EQ(std::string(buf.data, buf.len), "You are dev.\n\nBe brief.");
  buf.release(&buf);
  chorus::ErrorBuffer err;
  EXPECT_EQ(t->system_prompt(self, nullptr, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_NE(err.text().find("out must not be NULL"), std::string::npos) << err.text();
  EXPECT_EQ(plugin->stop(), CHORUS_OK);
}

TEST_F(ServiceFixture, CompleteRejectsBadCallsWithoutAnyCallback) {
  ASSERT_NO_FATAL_FAILURE(start());
  const std::string good = R"({"messages":[{"role":"user","content":"x"}]})";
  RecordingSink sink;
  chorus::ErrorBuffer err;
  uint64_t id = 42;
  EXPECT_EQ(t->complete(self, good.data(), good.size(), nullptr, &id, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(id, 0u);
  EXPECT_NE(err.text().find("complete chorus_ai_sink"), std::string::npos) << err.text();
  RecordingSink short_sink;
  short_sink.c.struct_size = 8;
  EXPECT_EQ(complete(t, self, good, short_sink, &id, err), CHORUS_E_INVALID_ARG);
  RecordingSink no_error_cb;
  no_error_cb.c.on_error = nullptr;
  EXPECT_EQ(complete(t, self, good, no_error_cb, &id, err), CHORUS_E_INVALID_ARG);
  struct Case { const char *body; const char *reason; };
  for (Case c : {Case{"{nope", "not valid JSON"}, Case{"[1]", "JSON object"},
                 Case{R"({"messages":[]})", "non-empty array"},
                 Case{R"({"messages":[{"content":"x"}]})", "string role"},
                 Case{R"({"messages":[{"role":"user","content":"x"}],"stream":"yes"})", "stream must be a boolean"},
                 Case{R"({"messages":[{"role":"user","content":"x"}],"tools":{}})", "tools must be an array"}}) {
    id = 42;
    EXPECT_EQ(complete(t, self, c.body, sink, &id, err), CHORUS_E_INVALID_ARG) << c.body;
    EXPECT_EQ(id, 0u) << c.body;
    EXPECT_NE(err.text().find(c.reason), std::string::npos) << c.body << " -> " << err.text();
  }
  EXPECT_EQ(t->complete(self, nullptr, 5, &sink.c, &id, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(sink.terminals + short_sink.terminals + no_error_cb.terminals, 0);
  EXPECT_TRUE(prov.requests.empty());
  EXPECT_EQ(plugin->stop(), CHORUS_OK);
  EXPECT_TRUE(host.violations().empty());
}

TEST_F(ServiceFixture, CompleteStreamsChunksThenExactlyOneDone) {
  ASSERT_NO_FATAL_FAILURE(start());
  RecordingSink sink;
  chorus::ErrorBuffer err;
  uint64_t id = 0;
  ASSERT_EQ(complete(t, self, R"({"messages":[{"role":"user","content":"hi"}],"stream":true,"temperature":0.5})", sink, &id,
                     err),
            CHORUS_OK)
      << err.text();
  EXPECT_NE(id, 0u);
  host.run_pending();
  ASSERT_EQ(prov.requests.size(), 1u);
  const json sent = prov.last();
  EXPECT_EQ(sent["model"], "m1");  // selection applies to the service too
  EXPECT_EQ(sent["stream"], true);
  EXPECT_EQ(sent["options"]["temperature"], 0.5);
  EXPECT_EQ(sent["messages"][0], (json{{"role", "system"}, {"content", "You are dev.\n\nBe brief."}}));
  EXPECT_EQ(sent["messages"][1]["content"], "hi");
  EXPECT_EQ(host.held_refs(CHORUS_AI_PROVIDER_SERVICE), 1u);
  prov.chunk(0, R"({"delta":"hi"})");
  prov.chunk(0, R"({"delta":" there"})");
  EXPECT_EQ(sink.terminals, 0);
  prov.done(0, kDone);
  host.run_pending();
  EXPECT_EQ(sink.chunks, (std::vector<std::string>{R"({"delta":"hi"})", R"({"delta":" there"})"}));
  EXPECT_EQ(sink.terminals, 1);
  EXPECT_EQ(sink.status, CHORUS_OK);
  EXPECT_EQ(json::parse(sink.text)["content"], "hi there");
  EXPECT_EQ(host.held_refs(CHORUS_AI_PROVIDER_SERVICE), 0u);
  // A finished id may still be cancelled, harmlessly; an id never issued is unknown.
  EXPECT_EQ(t->cancel(self, id), CHORUS_OK);
  EXPECT_EQ(sink.terminals, 1);
  EXPECT_EQ(t->cancel(self, 0), CHORUS_E_NOT_FOUND);
  EXPECT_EQ(t->cancel(self, 1u << 30), CHORUS_E_NOT_FOUND);
  EXPECT_EQ(plugin->stop(), CHORUS_OK);
  EXPECT_TRUE(host.violations().empty());
}

TEST_F(ServiceFixture, CompleteErrorPathsEndWithExactlyOneOnError) {
  ASSERT_NO_FATAL_FAILURE(start());
  chorus::ErrorBuffer err;
  uint64_t id = 0;
  const std::string req = R"({"messages":[{"role":"user","content":"x"}]})";

  // The provider fails the request: its status and message reach the caller.
  RecordingSink failed;
  ASSERT_EQ(complete(t, self, req, failed, &id, err), CHORUS_OK);
  host.run_pending();
  prov.fail(prov.sinks.size() - 1, CHORUS_E_BUSY, "rate limited upstream");
  EXPECT_EQ(failed.terminals, 1);
  EXPECT_EQ(failed.status, CHORUS_E_BUSY);
  EXPECT_EQ(failed.text, "rate limited upstream");

  // Cancel of an open request: the provider is told, the caller gets CANCELLED once.
  RecordingSink cancelled;
  ASSERT_EQ(complete(t, self, req, cancelled, &id, err), CHORUS_OK);
  host.run_pending();
  const size_t calls = prov.sinks.size();
  EXPECT_EQ(t->cancel(self, id), CHORUS_OK);
  EXPECT_EQ(prov.cancelled, std::vector<uint64_t>{calls});
  EXPECT_EQ(cancelled.terminals, 1);
  EXPECT_EQ(cancelled.status, CHORUS_E_CANCELLED);

  // A model outside the configured list: accepted, then one INVALID_ARG (or refused outright).
  RecordingSink bad_model;
  const chorus_status st = complete(t, self, R"({"model":"zzz","messages":[{"role":"user","content":"x"}]})", bad_model, &id, err);
  if (st == CHORUS_OK) {
    EXPECT_EQ(bad_model.terminals, 1);
    EXPECT_EQ(bad_model.status, CHORUS_E_INVALID_ARG);
    EXPECT_NE(bad_model.text.find("not among the configured models"), std::string::npos) << bad_model.text;
  } else {
    EXPECT_EQ(st, CHORUS_E_INVALID_ARG);
    EXPECT_EQ(bad_model.terminals, 0);
  }
  EXPECT_EQ(prov.sinks.size(), calls);  // never reached the provider

  // No provider bound: UNAVAILABLE, exactly once.
  host.withdraw(CHORUS_AI_PROVIDER_SERVICE);
  host.run_pending();
  RecordingSink orphan;
  const chorus_status st2 = complete(t, self, req, orphan, &id, err);
  if (st2 == CHORUS_OK) {
    EXPECT_EQ(orphan.terminals, 1);
    EXPECT_EQ(orphan.status, CHORUS_E_UNAVAILABLE);
    EXPECT_NE(orphan.text.find("no AI provider"), std::string::npos) << orphan.text;
  } else {
    EXPECT_EQ(st2, CHORUS_E_UNAVAILABLE);
    EXPECT_EQ(orphan.terminals, 0);
  }
  EXPECT_EQ(host.held_refs(CHORUS_AI_PROVIDER_SERVICE), 0u);
  EXPECT_EQ(plugin->stop(), CHORUS_OK);
  EXPECT_TRUE(host.violations().empty());
}

TEST_F(ServiceFixture, StopEndsOpenServiceRequests) {
  ASSERT_NO_FATAL_FAILURE(start());
  RecordingSink open;
  chorus::ErrorBuffer err;
  uint64_t id = 0;
  ASSERT_EQ(complete(t, self, R"({"messages":[{"role":"user","content":"x"}]})", open, &id, err), CHORUS_OK);
  host.run_pending();
  EXPECT_EQ(plugin->stop(), CHORUS_OK);
  EXPECT_EQ(open.terminals, 1);
  EXPECT_EQ(open.status, CHORUS_E_CANCELLED);
  EXPECT_EQ(host.held_refs(CHORUS_AI_PROVIDER_SERVICE), 0u);
}

// The reasoning plugin (the built .so) with the fake host and a scripted in-process provider.
#include <chorus/services/ai_provider_v1.h>
#include <chorus/services/reasoning_v1.h>
#include <chorus/testing/fake_host.hpp>
#include <gtest/gtest.h>

#include <dlfcn.h>

#include <filesystem>
#include <fstream>

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

// The provider plugins (the built .so files) driven through their C ABI with the fake host.
#include <chorus/services/ai_provider_v1.h>
#include <chorus/testing/fake_host.hpp>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>

#include <nlohmann/json.hpp>

namespace {
using nlohmann::json;

chorus_plugin_entry_fn entry_of(const char *id) {
  const std::string path = std::string(CHORUS_AI_PLUGIN_DIR) + "/chorus-" + id + ".so";
  void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) return nullptr;
  return reinterpret_cast<chorus_plugin_entry_fn>(dlsym(h, CHORUS_PLUGIN_ENTRY_SYMBOL));
}

// Collects callbacks; counts terminals to prove "exactly one".
struct Sink {
  std::mutex mu;
  std::condition_variable cv;
  int terminals = 0;
  chorus_status status = CHORUS_OK;
  std::string text;
  std::vector<std::string> chunks;
  chorus_ai_sink c{};
  Sink() {
    c.struct_size = sizeof c;
    c.user = this;
    c.on_chunk = [](void *u, const char *j, size_t n) {
      auto *s = static_cast<Sink *>(u);
      std::lock_guard lk(s->mu);
      s->chunks.emplace_back(j, n);
    };
    c.on_done = [](void *u, const char *j, size_t n) {
      auto *s = static_cast<Sink *>(u);
      std::lock_guard lk(s->mu);
      s->terminals++;
      s->text.assign(j, n);
      s->cv.notify_all();
    };
    c.on_error = [](void *u, chorus_status st, const char *m, size_t n) {
      auto *s = static_cast<Sink *>(u);
      std::lock_guard lk(s->mu);
      s->terminals++;
      s->status = st;
      s->text.assign(m, n);
      s->cv.notify_all();
    };
  }
  bool wait(int ms = 10000) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, std::chrono::milliseconds(ms), [&] { return terminals > 0; });
  }
};

// A TCP port that accepts connections (kernel backlog) but never answers.
struct SilentServer {
  int fd = -1;
  int port = 0;
  SilentServer() {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
    listen(fd, 64);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~SilentServer() { close(fd); }
};

int closed_port() {
  SilentServer s;
  return s.port;  // closed again when s goes away
}

const chorus_ai_provider_v1 *table_of(chorus::testing::PluginHandle &p, void **self) {
  for (const auto &s : p.services())
    if (s.name == CHORUS_AI_PROVIDER_SERVICE) {
      *self = s.table.self;
      return static_cast<const chorus_ai_provider_v1 *>(s.table.table);
    }
  return nullptr;
}
}  // namespace

TEST(Provider, RejectsABadEndpoint) {
  chorus::testing::FakeHost host;
  auto p = chorus::testing::load(entry_of("ai-ollama"), host, R"({"endpoint":"ftp://x"})");
  EXPECT_EQ(p.status(), CHORUS_E_CONFIG);
}

// Keys, types and ranges are the schema's to check (the host applies it, the fake host here too).
TEST(Provider, TheSchemaRefusesBadValuesNamingTheKey) {
  chorus::testing::FakeHost host;
  auto p = chorus::testing::load(entry_of("ai-ollama"), host, R"({"max_concurrency":0})");
  EXPECT_EQ(p.status(), CHORUS_E_CONFIG);
  EXPECT_EQ(p.message(), "plugins.ai-ollama.config.max_concurrency: 0 is less than the minimum 1");
  chorus::testing::FakeHost host2;
  auto q = chorus::testing::load(entry_of("ai-openai"), host2, R"({"endpoint":"http://127.0.0.1:9"})");
  EXPECT_EQ(q.status(), CHORUS_E_CONFIG);
  EXPECT_EQ(q.message(), "plugins.ai-openai.config: unknown key 'endpoint'");
}

TEST(Provider, InvalidRequestsFailSynchronouslyWithoutCallbacks) {
  chorus::testing::FakeHost host;
  auto p = chorus::testing::load(entry_of("ai-openai"), host, R"({"base_url":"http://127.0.0.1:9/v1","api_key":"sk-secret"})");
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  void *self = nullptr;
  auto *t = table_of(p, &self);
  ASSERT_NE(t, nullptr);
  Sink sink;
  chorus::ErrorBuffer err;
  uint64_t id = 7;
  EXPECT_EQ(t->chat(self, "{oops", 5, &sink.c, &id, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(id, 0u);
  EXPECT_EQ(t->chat(self, R"({"messages":[{"role":"user","content":"x"}]})", 43, &sink.c, &id, err.get()), CHORUS_E_INVALID_ARG)
      << "no model and no default_model";
  EXPECT_EQ(sink.terminals, 0);
  EXPECT_FALSE(host.has_log("sk-secret", 0));
}

TEST(Provider, RefusedConnectionsRetryThenFailAndOpenTheBreaker) {
  chorus::testing::FakeHost host;
  const std::string cfg = R"({"endpoint":"http://127.0.0.1:)" + std::to_string(closed_port()) +
                          R"(","default_model":"m","max_retries":2,"retry_base_ms":5,"retry_max_ms":10,"breaker_threshold":3,"breaker_cooldown_ms":60000})";
  auto p = chorus::testing::load(entry_of("ai-ollama"), host, cfg);
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  void *self = nullptr;
  auto *t = table_of(p, &self);
  const std::string req = R"({"messages":[{"role":"user","content":"x"}]})";
  Sink sink;
  uint64_t id = 0;
  ASSERT_EQ(t->chat(self, req.data(), req.size(), &sink.c, &id, nullptr), CHORUS_OK);
  ASSERT_TRUE(sink.wait());
  EXPECT_EQ(sink.terminals, 1);
  EXPECT_EQ(sink.status, CHORUS_E_UNAVAILABLE);
  EXPECT_NE(sink.text.find("cannot connect"), std::string::npos) << sink.text;
  EXPECT_NE(sink.text.find("after 3 attempts"), std::string::npos) << sink.text;
  // 3 failed attempts reached the threshold: the breaker is open and fails fast.
  Sink second;
  chorus::ErrorBuffer err;
  EXPECT_EQ(t->chat(self, req.data(), req.size(), &second.c, &id, err.get()), CHORUS_E_UNAVAILABLE);
  EXPECT_NE(err.text().find("circuit breaker open"), std::string::npos) << err.text();
  chorus_buf buf{};
  ASSERT_EQ(t->health(self, &buf, nullptr), CHORUS_OK);
  EXPECT_EQ(json::parse(std::string(buf.data, buf.len))["breaker"], "open");
  buf.release(&buf);
  EXPECT_EQ(host.health().state, CHORUS_HEALTH_UNHEALTHY);
}

TEST(Provider, FirstByteTimeoutAndCancel) {
  SilentServer silent;
  chorus::testing::FakeHost host;
  const std::string cfg = R"({"endpoint":"http://127.0.0.1:)" + std::to_string(silent.port) +
                          R"(","default_model":"m","first_byte_timeout_ms":200,"max_retries":0})";
  auto p = chorus::testing::load(entry_of("ai-ollama"), host, cfg);
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  void *self = nullptr;
  auto *t = table_of(p, &self);
  const std::string req = R"({"messages":[{"role":"user","content":"x"}],"stream":true})";
  Sink timed;
  uint64_t id = 0;
  ASSERT_EQ(t->chat(self, req.data(), req.size(), &timed.c, &id, nullptr), CHORUS_OK);
  ASSERT_TRUE(timed.wait());
  EXPECT_EQ(timed.status, CHORUS_E_TIMEOUT);

  Sink cancelled;
  ASSERT_EQ(t->chat(self, req.data(), req.size(), &cancelled.c, &id, nullptr), CHORUS_OK);
  EXPECT_EQ(t->cancel(self, id), CHORUS_OK);
  ASSERT_TRUE(cancelled.wait());
  EXPECT_EQ(cancelled.status, CHORUS_E_CANCELLED);
  EXPECT_EQ(cancelled.terminals, 1);
}

TEST(Provider, StopCancelsOpenRequestsExactlyOnce) {
  SilentServer silent;
  chorus::testing::FakeHost host;
  const std::string cfg = R"({"endpoint":"http://127.0.0.1:)" + std::to_string(silent.port) +
                          R"(","default_model":"m","max_concurrency":2})";
  auto p = chorus::testing::load(entry_of("ai-ollama"), host, cfg);
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  void *self = nullptr;
  auto *t = table_of(p, &self);
  const std::string req = R"({"messages":[{"role":"user","content":"x"}]})";
  std::vector<std::unique_ptr<Sink>> sinks;
  for (int i = 0; i < 5; ++i) {  // 2 running, 3 queued
    sinks.push_back(std::make_unique<Sink>());
    uint64_t id = 0;
    ASSERT_EQ(t->chat(self, req.data(), req.size(), &sinks.back()->c, &id, nullptr), CHORUS_OK);
  }
  EXPECT_EQ(p.stop(), CHORUS_OK);
  for (auto &s : sinks) {
    EXPECT_EQ(s->terminals, 1);
    EXPECT_EQ(s->status, CHORUS_E_CANCELLED);
  }
}

// settings_from(): the environment overrides the file, and is validated like it.
TEST(Provider, EnvironmentOverridesTheFileAndIsValidated) {
  struct Env {
    const char *name;
    explicit Env(const char *n, const char *v) : name(n) { setenv(n, v, 1); }
    ~Env() { unsetenv(name); }
  };
  {
    Env url("RESETDATA_BASE_URL", "ftp://not-http");
    chorus::testing::FakeHost host;
    auto p = chorus::testing::load(entry_of("ai-openai"), host, R"({"base_url":"http://127.0.0.1:9/v1"})");
    EXPECT_EQ(p.status(), CHORUS_E_CONFIG);
    EXPECT_NE(p.message().find("ftp://not-http"), std::string::npos) << p.message();
  }
  {
    Env key("RESETDATA_API_KEY", "sk-env secret");
    chorus::testing::FakeHost host;
    auto p = chorus::testing::load(entry_of("ai-openai"), host, R"({"api_key":"fine"})");
    EXPECT_EQ(p.status(), CHORUS_E_CONFIG);
    EXPECT_NE(p.message().find("api_key contains whitespace"), std::string::npos) << p.message();
    EXPECT_EQ(p.message().find("sk-env"), std::string::npos) << "the message must not carry the key";
  }
  {
    Env model("RESETDATA_MODEL", "env-model");
    Env empty("RESETDATA_BASE_URL", "");  // empty counts as unset: the file's base_url stays
    chorus::testing::FakeHost host;
    auto p = chorus::testing::load(entry_of("ai-openai"), host,
                                   R"({"base_url":"http://127.0.0.1:9/v1","default_model":"file-model","health_interval_ms":0})");
    ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
    void *self = nullptr;
    auto *t = table_of(p, &self);
    chorus_buf buf{};
    ASSERT_EQ(t->health(self, &buf, nullptr), CHORUS_OK);
    const json h = json::parse(std::string(buf.data, buf.len));
    buf.release(&buf);
    EXPECT_EQ(h["default_model"], "env-model");
    EXPECT_EQ(h["endpoint"], "http://127.0.0.1:9/v1");
    EXPECT_EQ(h["probe"]["enabled"], false);
  }
  {
    Env endpoint("OLLAMA_ENDPOINT", "http://127.0.0.1:7/");
    chorus::testing::FakeHost host;
    auto p = chorus::testing::load(entry_of("ai-ollama"), host, R"({"endpoint":"http://127.0.0.1:9","health_interval_ms":0})");
    ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
    void *self = nullptr;
    auto *t = table_of(p, &self);
    chorus_buf buf{};
    ASSERT_EQ(t->health(self, &buf, nullptr), CHORUS_OK);
    EXPECT_EQ(json::parse(std::string(buf.data, buf.len))["endpoint"], "http://127.0.0.1:7");
    buf.release(&buf);
  }
}

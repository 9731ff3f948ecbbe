// The plugin on the SDK's FakeHost, with fakes of the services it uses: chorus.dht (an in-memory
// network of one: values, providers and role-encrypted content, with the roles this node holds keys
// for, and failures the test injects), chorus.p2p.host (the local peer id, the connected peers) and
// chorus.pubsub (it records publications and hands the test's messages to the plugin's handler).
// The fake DHT completes operations from a queue the test pumps, never inside the call, like the
// real one; every HTTP exchange is driven until it is answered.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chorus/plugin.hpp>
#include <chorus/services/dht_v1.h>
#include <chorus/services/p2p_host_v1.h>
#include <chorus/services/pubsub_v1.h>
#include <chorus/services/ucxi_v1.h>
#include <chorus/testing/fake_host.hpp>
#include <nlohmann/json.hpp>
#include <sodium.h>

#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "envelope.hpp"
#include "http_routes.hpp"
#include "settings.hpp"

extern "C" const chorus_plugin_descriptor *chorus_plugin_entry_v1(const chorus_abi_info *) noexcept;

namespace chorus::ucxi {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

constexpr const char *kSelf = "12D3KooWSe1fSe1fSe1fSe1fSe1fSe1fSe1fSe1fSe1fSe1f";
constexpr const char *kPeerB = "12D3KooWPeerBPeerBPeerBPeerBPeerBPeerBPeerBPeerB";
constexpr const char *kAddr = "ucxl://agent-a:architect@chorus:task-1/*^/notes/plan.md";
constexpr const char *kAddrEnc = "ucxl%3A%2F%2Fagent-a%3Aarchitect%40chorus%3Atask-1%2F*%5E%2Fnotes%2Fplan.md";

std::string hex(const uint8_t *p, size_t n) {
  static const char *digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) out += {digits[p[i] >> 4], digits[p[i] & 15]};
  return out;
}

std::string sha256_hex(const std::vector<uint8_t> &b) {
  uint8_t h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, b.data(), b.size());
  return hex(h, sizeof h);
}

// Percent-encodes everything but unreserved characters (for addresses in query strings).
std::string enc(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out += static_cast<char>(c);
    else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// ---- a fake chorus.dht

class FakeDht {
 public:
  FakeDht() {
    table_.struct_size = sizeof table_;
    table_.put_value = &c_put_value;
    table_.get_value = &c_get_value;
    table_.provide = &c_provide;
    table_.find_providers = &c_find_providers;
    table_.store = &c_store;
    table_.retrieve = &c_retrieve;
  }
  const chorus_dht_v1 *table() const { return &table_; }

  // Roles the network knows (have a recipient) and the ones this node holds a key for.
  std::set<std::string> known_roles = {"architect", "reviewer", "secret"};
  std::set<std::string> my_roles = {"architect", "reviewer"};
  // The next operations fail with this status (CHORUS_OK: none).
  chorus_status fail_with = CHORUS_OK;
  // A successful put_value's data: {"replicas": n}, nothing when negative (as a dht before the field).
  int put_replicas = -1;

  // Runs the queued completions; returns how many ran.
  size_t pump() {
    size_t n = 0;
    while (true) {
      std::function<void()> f;
      {
        std::lock_guard lk(mu_);
        if (queue_.empty()) break;
        f = std::move(queue_.front());
        queue_.pop_front();
      }
      f();
      ++n;
    }
    return n;
  }

 private:
  struct Content {
    std::string role;
    std::vector<uint8_t> bytes;
  };

  static FakeDht *me(void *self) { return static_cast<FakeDht *>(self); }

  void complete(chorus_dht_done_fn done, void *arg, chorus_status st, std::string message, std::vector<uint8_t> data) {
    std::lock_guard lk(mu_);
    queue_.push_back([=]() {
      if (st == CHORUS_OK) return done(arg, st, nullptr, data.empty() ? nullptr : data.data(), data.size());
      chorus::ErrorBuffer err;
      chorus::set_error(err.get(), st, message);
      done(arg, st, err.get(), nullptr, 0);
    });
  }
  bool injected(chorus_dht_done_fn done, void *arg) {
    if (fail_with == CHORUS_OK) return false;
    complete(done, arg, fail_with, "injected failure", {});
    return true;
  }

  static chorus_status c_put_value(void *self, const uint8_t *key, size_t key_len, const uint8_t *value,
                                   size_t value_len, uint32_t, chorus_dht_done_fn done, void *arg, chorus_error *) noexcept {
    auto *d = me(self);
    if (d->injected(done, arg)) return CHORUS_OK;
    {
      std::lock_guard lk(d->mu_);
      d->values_[std::string(reinterpret_cast<const char *>(key), key_len)] = std::vector<uint8_t>(value, value + value_len);
    }
    std::vector<uint8_t> data;
    if (d->put_replicas >= 0) {
      const std::string j = nlohmann::json{{"replicas", d->put_replicas}}.dump();
      data.assign(j.begin(), j.end());
    }
    d->complete(done, arg, CHORUS_OK, "", std::move(data));
    return CHORUS_OK;
  }
  static chorus_status c_get_value(void *self, const uint8_t *key, size_t key_len, uint32_t, chorus_dht_done_fn done,
                                   void *arg, chorus_error *) noexcept {
    auto *d = me(self);
    if (d->injected(done, arg)) return CHORUS_OK;
    std::vector<uint8_t> v;
    bool found = false;
    {
      std::lock_guard lk(d->mu_);
      auto it = d->values_.find(std::string(reinterpret_cast<const char *>(key), key_len));
      if (it != d->values_.end()) v = it->second, found = true;
    }
    if (!found) d->complete(done, arg, CHORUS_E_NOT_FOUND, "no record", {});
    else d->complete(done, arg, CHORUS_OK, "", std::move(v));
    return CHORUS_OK;
  }
  static chorus_status c_provide(void *self, const uint8_t *key, size_t key_len, uint32_t, chorus_dht_done_fn done,
                                 void *arg, chorus_error *) noexcept {
    auto *d = me(self);
    if (d->injected(done, arg)) return CHORUS_OK;
    {
      std::lock_guard lk(d->mu_);
      d->providers_[std::string(reinterpret_cast<const char *>(key), key_len)].insert(kSelf);
    }
    d->complete(done, arg, CHORUS_OK, "", {});
    return CHORUS_OK;
  }
  static chorus_status c_find_providers(void *self, const uint8_t *key, size_t key_len, uint32_t, uint32_t,
                                        chorus_dht_done_fn done, void *arg, chorus_error *) noexcept {
    auto *d = me(self);
    if (d->injected(done, arg)) return CHORUS_OK;
    json list = json::array();
    {
      std::lock_guard lk(d->mu_);
      auto it = d->providers_.find(std::string(reinterpret_cast<const char *>(key), key_len));
      if (it != d->providers_.end())
        for (const auto &p : it->second) list.push_back({{"peer_id", p}, {"addrs", json::array({"/ip4/127.0.0.1/tcp/4001"})}});
    }
    if (list.empty()) d->complete(done, arg, CHORUS_E_NOT_FOUND, "no providers", {});
    else {
      const std::string text = list.dump();
      d->complete(done, arg, CHORUS_OK, "", std::vector<uint8_t>(text.begin(), text.end()));
    }
    return CHORUS_OK;
  }
  static chorus_status c_store(void *self, const char *key, const char *role, const uint8_t *content, size_t len,
                               uint32_t, chorus_dht_done_fn done, void *arg, chorus_error *err) noexcept {
    auto *d = me(self);
    if (!d->known_roles.count(role)) {
      chorus::set_error(err, CHORUS_E_INVALID_ARG, std::string("unknown role ") + role);
      return CHORUS_E_INVALID_ARG;
    }
    if (d->injected(done, arg)) return CHORUS_OK;
    std::vector<uint8_t> bytes(content, content + len);
    const std::string sha = sha256_hex(bytes);
    {
      std::lock_guard lk(d->mu_);
      d->content_[key] = Content{role, std::move(bytes)};
    }
    d->complete(done, arg, CHORUS_OK, "", std::vector<uint8_t>(sha.begin(), sha.end()));
    return CHORUS_OK;
  }
  static chorus_status c_retrieve(void *self, const char *key, uint32_t, chorus_dht_done_fn done, void *arg,
                                  chorus_error *) noexcept {
    auto *d = me(self);
    if (d->injected(done, arg)) return CHORUS_OK;
    Content c;
    bool found = false;
    {
      std::lock_guard lk(d->mu_);
      auto it = d->content_.find(key);
      if (it != d->content_.end()) c = it->second, found = true;
    }
    if (!found) d->complete(done, arg, CHORUS_E_NOT_FOUND, "no such content", {});
    else if (!d->my_roles.count(c.role))
      d->complete(done, arg, CHORUS_E_DHT_NOT_AUTHORISED, "no key for role " + c.role, {});
    else d->complete(done, arg, CHORUS_OK, "", std::move(c.bytes));
    return CHORUS_OK;
  }

  chorus_dht_v1 table_{};
  std::mutex mu_;
  std::deque<std::function<void()>> queue_;
  std::map<std::string, std::vector<uint8_t>> values_;
  std::map<std::string, std::set<std::string>> providers_;
  std::map<std::string, Content> content_;
};

// ---- a fake chorus.p2p.host

chorus_status fake_local_peer_id(void *, uint8_t *, size_t, size_t *peer_len, char *text, size_t text_cap,
                                 size_t *text_len) noexcept {
  const size_t n = std::strlen(kSelf);
  if (peer_len != nullptr) *peer_len = 0;
  if (text == nullptr || text_cap <= n) return CHORUS_E_TOO_LARGE;
  std::memcpy(text, kSelf, n + 1);
  *text_len = n;
  return CHORUS_OK;
}

chorus_status fake_list_peers(void *, chorus_buf *out, chorus_error *) noexcept {
  return chorus::give_buf(json::array({{{"peer_id", kPeerB}}}).dump(), out);
}

// ---- a fake chorus.pubsub

struct Published {
  std::string topic, type;
  json data;
};

class FakePubsub {
 public:
  FakePubsub() {
    table_.struct_size = sizeof table_;
    table_.subscribe = &c_subscribe;
    table_.unsubscribe = &c_unsubscribe;
    table_.publish = &c_publish;
  }
  const chorus_pubsub_v1 *table() const { return &table_; }

  std::vector<Published> published() {
    std::lock_guard lk(mu_);
    return published_;
  }
  size_t subscriptions() {
    std::lock_guard lk(mu_);
    return subs_.size();
  }
  // Hands a CHORUS envelope of `type` from peer `from` to the topic's handlers.
  void deliver(const std::string &topic, const std::string &type, const json &data, const std::string &from,
               bool local = false) {
    const std::string text = json{{"type", type}, {"from", "agent-b"}, {"timestamp", "2026-12-07T04:00:00Z"}, {"data", data}}.dump();
    std::vector<std::pair<chorus_pubsub_message_fn, void *>> handlers;
    {
      std::lock_guard lk(mu_);
      for (const auto &[id, s] : subs_)
        if (s.topic == topic) handlers.emplace_back(s.fn, s.arg);
    }
    chorus_pubsub_message m{};
    m.struct_size = sizeof m;
    m.local = local ? 1 : 0;
    m.topic = topic.c_str();
    m.data = reinterpret_cast<const uint8_t *>(text.data());
    m.data_len = text.size();
    m.from_text = from.c_str();
    m.received_from = from.c_str();
    m.type = type.c_str();
    for (auto &[fn, arg] : handlers) fn(arg, &m);
  }

 private:
  struct Sub {
    std::string topic;
    chorus_pubsub_message_fn fn;
    void *arg;
  };
  static FakePubsub *me(void *self) { return static_cast<FakePubsub *>(self); }
  static chorus_status c_subscribe(void *self, const char *topic, chorus_pubsub_message_fn fn, void *arg,
                                   uint64_t *out, chorus_error *) noexcept {
    auto *p = me(self);
    std::lock_guard lk(p->mu_);
    *out = ++p->next_;
    p->subs_[*out] = Sub{topic, fn, arg};
    return CHORUS_OK;
  }
  static chorus_status c_unsubscribe(void *self, uint64_t sub) noexcept {
    auto *p = me(self);
    std::lock_guard lk(p->mu_);
    return p->subs_.erase(sub) > 0 ? CHORUS_OK : CHORUS_E_NOT_FOUND;
  }
  static chorus_status c_publish(void *self, const char *topic, const char *type, const char *data, size_t len,
                                 uint8_t *, size_t, size_t *, chorus_error *) noexcept {
    auto *p = me(self);
    std::lock_guard lk(p->mu_);
    p->published_.push_back({topic, type, json::parse(std::string_view(data, len))});
    return CHORUS_OK;
  }

  chorus_pubsub_v1 table_{};
  std::mutex mu_;
  uint64_t next_ = 0;
  std::map<uint64_t, Sub> subs_;
  std::vector<Published> published_;
};

// ---- the fixture

class UcxiPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    dir_ = fs::temp_directory_path() / ("ucxi-plugin-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    p2p_.struct_size = sizeof p2p_;
    p2p_.local_peer_id = &fake_local_peer_id;
    p2p_.list_peers_json = &fake_list_peers;
    host_.set_plugin_id("ucxi");
    host_.set_host_info(json{{"agent_id", "agent-a"}, {"role", "architect"}, {"state_dir", dir_.string()}}.dump());
    host_.provide(CHORUS_DHT_SERVICE, 1, 0, dht_.table(), &dht_, "dht");
    host_.provide(CHORUS_P2P_HOST_SERVICE, 1, 0, &p2p_, nullptr, "p2p");
  }
  void TearDown() override {
    if (plugin_) {
      plugin_->stop();
      plugin_->destroy();
      EXPECT_TRUE(host_.violations().empty()) << ::testing::PrintToString(host_.violations());
    }
    fs::remove_all(dir_);
  }

  void start(std::string_view config = "{}", bool with_pubsub = true) {
    if (with_pubsub) host_.provide(CHORUS_PUBSUB_SERVICE, 1, 0, pubsub_.table(), &pubsub_, "gossip");
    plugin_.emplace(chorus::testing::load(chorus_plugin_entry_v1, host_, config));
    ASSERT_EQ(plugin_->status(), CHORUS_OK) << plugin_->message();
  }

  // One request, driven until it is answered.
  chorus::testing::FakeResponse call(std::string_view method, std::string_view target, std::string_view body = {},
                                     const chorus::testing::FakeHost::Headers &headers = {}) {
    const size_t id = host_.http_start(method, target, body, headers);
    for (int i = 0; i < 1000; ++i) {
      const size_t ran = host_.run_pending() + dht_.pump();
      if (host_.response(id).status != 0 && ran == 0) break;
    }
    return host_.response(id);
  }
  static json body(const chorus::testing::FakeResponse &r) { return json::parse(r.body, nullptr, false); }

  chorus::testing::FakeResponse put(std::string_view address, std::string_view content,
                                    std::string content_type = "text/markdown") {
    return call("PUT", "/ucxi/v1/put?address=" + enc(address), content, {{"Content-Type", content_type}});
  }

  // An error answer: its status, code, envelope shape, and X-Request-Id.
  static json expect_error(const chorus::testing::FakeResponse &r, int status, std::string_view code,
                           std::string_view path) {
    EXPECT_EQ(r.status, status) << r.body;
    const json b = body(r);
    EXPECT_TRUE(b.is_object() && b.contains("error")) << r.body;
    if (!b.is_object() || !b.contains("error")) return json::object();
    const json &e = b["error"];
    EXPECT_EQ(e.value("code", ""), code) << r.body;
    EXPECT_EQ(e.value("source", ""), "ucxi-server");
    EXPECT_EQ(e.value("path", ""), path);
    EXPECT_TRUE(e.contains("message") && e["message"].is_string() && !e["message"].get<std::string>().empty());
    EXPECT_TRUE(e.contains("details") && e["details"].is_object());
    EXPECT_TRUE(e.contains("timestamp"));
    EXPECT_TRUE(is_request_id(e.value("request_id", ""))) << r.body;
    EXPECT_EQ(r.header("X-Request-Id"), e.value("request_id", ""));
    return e;
  }
  static json expect_ok(const chorus::testing::FakeResponse &r, int status, std::string_view code) {
    EXPECT_EQ(r.status, status) << r.body;
    const json b = body(r);
    EXPECT_TRUE(b.is_object() && b.contains("response")) << r.body;
    if (!b.is_object() || !b.contains("response")) return json::object();
    const json &resp = b["response"];
    EXPECT_EQ(resp.value("code", ""), code);
    EXPECT_TRUE(resp.contains("message") && resp.contains("details") && resp["details"].is_object());
    EXPECT_TRUE(resp.contains("timestamp"));
    EXPECT_TRUE(is_request_id(resp.value("request_id", ""))) << r.body;
    EXPECT_EQ(r.header("X-Request-Id"), resp.value("request_id", ""));
    EXPECT_EQ(r.content_type, "application/json");
    return resp.value("data", json());
  }

  fs::path dir_;
  chorus::testing::FakeHost host_;
  FakeDht dht_;
  FakePubsub pubsub_;
  chorus_p2p_host_v1 p2p_{};
  std::optional<chorus::testing::PluginHandle> plugin_;
};

// ---- settings

TEST(UcxiSettings, DefaultsComeFromTheSchema) {
  const auto cfg = chorus::testing::prepare_config(kConfigSchema, "ucxi", "{}");
  ASSERT_TRUE(cfg.ok()) << cfg.error;
  const Settings s = parse_settings(cfg.json);
  EXPECT_EQ(s.state_subdir, "ucxi");
  EXPECT_EQ(s.max_body_bytes, 524288u);
  EXPECT_EQ(s.timeout_ms, 10000u);
  EXPECT_EQ(s.cache_entries, 256u);
  EXPECT_EQ(s.announce_topic, "CHORUS/coordination/v1");
  EXPECT_TRUE(s.announce_puts);
  EXPECT_EQ(s.default_query_limit, 100u);
  EXPECT_EQ(index_dir(s, "/var/lib/chorus"), "/var/lib/chorus/ucxi");
}

TEST(UcxiSettings, OutOfRangeValuesAreRefused) {
  EXPECT_FALSE(chorus::testing::prepare_config(kConfigSchema, "ucxi", R"({"max_body_bytes": 786433})").ok());
  EXPECT_FALSE(chorus::testing::prepare_config(kConfigSchema, "ucxi", R"({"default_query_limit": 1001})").ok());
  EXPECT_FALSE(chorus::testing::prepare_config(kConfigSchema, "ucxi", R"({"unknown": 1})").ok());
  const auto cfg = chorus::testing::prepare_config(kConfigSchema, "ucxi", R"({"state_subdir": "../x"})");
  ASSERT_TRUE(cfg.ok());
  EXPECT_THROW(parse_settings(cfg.json), std::invalid_argument);
}

TEST(UcxiText, ContentTypesAndUtf8) {
  EXPECT_TRUE(is_text_content_type("text/plain"));
  EXPECT_TRUE(is_text_content_type("Text/Markdown; charset=utf-8"));
  EXPECT_TRUE(is_text_content_type("application/json"));
  EXPECT_TRUE(is_text_content_type("application/yaml"));
  EXPECT_TRUE(is_text_content_type("application/xml"));
  EXPECT_TRUE(is_text_content_type("application/ld+json"));
  EXPECT_FALSE(is_text_content_type("application/octet-stream"));
  EXPECT_FALSE(is_text_content_type("image/png"));
  EXPECT_FALSE(is_text_content_type(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xC3"));              // truncated
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xFF"));
  EXPECT_FALSE(is_valid_utf8("a\x80"));
}

// ---- the plugin

TEST_F(UcxiPluginTest, RefusesAnInvalidConfig) {
  plugin_.emplace(chorus::testing::load(chorus_plugin_entry_v1, host_, R"({"max_body_bytes": 0})"));
  EXPECT_EQ(plugin_->status(), CHORUS_E_CONFIG);
  plugin_.reset();
}

// A put no remote peer took a copy of is still created (it is durable here), but the answer says
// so ("replicas": 0), with a warning and a counter.
TEST_F(UcxiPluginTest, PutSaysHowManyPeersTookTheVersionList) {
  start();
  json d = expect_ok(put(kAddr, "# plan v1"), 201, "UCXL-201-CREATED");
  EXPECT_FALSE(d.contains("replicas")) << "a dht that does not say gives no count";
  dht_.put_replicas = 0;
  d = expect_ok(put(kAddr, "# plan v2"), 201, "UCXL-201-CREATED");
  EXPECT_EQ(d.value("replicas", -1), 0);
  EXPECT_EQ(host_.metric_value("chorus_ucxi_versions_local_only_total"), 1.0);
  EXPECT_TRUE(host_.has_log("is stored on this agent only", CHORUS_LOG_WARN));
  dht_.put_replicas = 3;
  d = expect_ok(put(kAddr, "# plan v3"), 201, "UCXL-201-CREATED");
  EXPECT_EQ(d.value("replicas", -1), 3);
  EXPECT_EQ(host_.metric_value("chorus_ucxi_versions_local_only_total"), 1.0);
  EXPECT_EQ(host_.metric_value("chorus_ucxi_versions_stored_total"), 3.0);
}

TEST_F(UcxiPluginTest, PutThenGetLatestAndByVersion) {
  start();
  json d = expect_ok(put(kAddr, "# plan v1"), 201, "UCXL-201-CREATED");
  EXPECT_EQ(d.value("version", 0), 1);
  EXPECT_EQ(d.value("address", ""), "ucxl://agent-a:architect@chorus:task-1/*~1/notes/plan.md");
  EXPECT_EQ(d.value("sha256", ""), sha256_hex({'#', ' ', 'p', 'l', 'a', 'n', ' ', 'v', '1'}));
  EXPECT_EQ(d.value("size", 0), 9);
  EXPECT_TRUE(d.contains("created"));
  d = expect_ok(put(kAddr, "# plan v2"), 201, "UCXL-201-CREATED");
  EXPECT_EQ(d.value("version", 0), 2);

  d = expect_ok(call("GET", std::string("/ucxi/v1/get?address=") + kAddrEnc), 200, "UCXL-200-SUCCESS");
  EXPECT_EQ(d.value("content", ""), "# plan v2");
  EXPECT_EQ(d.value("version", 0), 2);
  EXPECT_EQ(d.value("versions", 0), 2);
  EXPECT_EQ(d.value("content_type", ""), "text/markdown");
  EXPECT_EQ(d.value("role", ""), "architect");
  EXPECT_EQ(d.value("address", ""), "ucxl://agent-a:architect@chorus:task-1/*~2/notes/plan.md");
  EXPECT_TRUE(d["created"].is_string());
  for (const char *key : {"address", "version", "versions", "sha256", "size", "content_type", "role", "author", "created",
                          "content"})
    EXPECT_TRUE(d.contains(key)) << key;
  EXPECT_EQ(d.size(), 10u) << d.dump();  // exactly the documented members

  d = expect_ok(call("GET", "/ucxi/v1/get?address=" + enc("ucxl://agent-a:architect@chorus:task-1/*~1/notes/plan.md")),
                200, "UCXL-200-SUCCESS");
  EXPECT_EQ(d.value("content", ""), "# plan v1");
  EXPECT_EQ(d.value("version", 0), 1);
  EXPECT_EQ(host_.metric_value("chorus_ucxi_requests_total", {"get", "UCXL-200-SUCCESS"}), 2.0);
  EXPECT_EQ(host_.metric_value("chorus_ucxi_requests_total", {"put", "UCXL-201-CREATED"}), 2.0);
  EXPECT_EQ(host_.metric_value("chorus_ucxi_versions_stored_total"), 2.0);
  EXPECT_EQ(host_.histogram_samples("chorus_ucxi_request_seconds", {"get"}).size(), 2u);
}

TEST_F(UcxiPluginTest, BinaryContentComesBackAsBase64) {
  start();
  const std::string bytes("\x00\x01\xFF\xFE", 4);
  expect_ok(put(kAddr, bytes, "application/octet-stream"), 201, "UCXL-201-CREATED");
  const json d = expect_ok(call("GET", std::string("/ucxi/v1/get?address=") + kAddrEnc), 200, "UCXL-200-SUCCESS");
  EXPECT_FALSE(d.contains("content"));
  EXPECT_EQ(d.value("content_base64", ""), "AAH//g==");
  // No Content-Type at all: octet-stream.
  expect_ok(call("PUT", std::string("/ucxi/v1/put?address=") + kAddrEnc, "raw"), 201, "UCXL-201-CREATED");
  const json d2 = expect_ok(call("GET", std::string("/ucxi/v1/get?address=") + kAddrEnc), 200, "UCXL-200-SUCCESS");
  EXPECT_EQ(d2.value("content_type", ""), "application/octet-stream");
  EXPECT_EQ(d2.value("content_base64", ""), "cmF3");
}

TEST_F(UcxiPluginTest, NavigateBackAndForwardToTheBounds) {
  start();
  for (const char *v : {"v1", "v2", "v3"}) expect_ok(put(kAddr, v), 201, "UCXL-201-CREATED");
  const std::string base = "ucxl://agent-a:architect@chorus:task-1/";
  auto nav = [&](const std::string &temporal, const std::string &extra = "") {
    return call("GET", "/ucxi/v1/navigate?address=" + enc(base + temporal + "/notes/plan.md") + extra);
  };
  json d = expect_ok(nav("~~1"), 200, "UCXL-200-SUCCESS");
  EXPECT_EQ(d.value("version", 0), 2);
  EXPECT_FALSE(d.contains("content"));
  EXPECT_FALSE(d.contains("content_base64"));
  EXPECT_EQ(expect_ok(nav("~~2"), 200, "UCXL-200-SUCCESS").value("version", 0), 1);
  expect_error(nav("~~3"), 400, "UCXL-400-TEMPORAL_INVALID", "/ucxi/v1/navigate");
  EXPECT_EQ(expect_ok(nav("^^2", "&from=1"), 200, "UCXL-200-SUCCESS").value("version", 0), 3);
  expect_error(nav("^^1"), 400, "UCXL-400-TEMPORAL_INVALID", "/ucxi/v1/navigate");
  expect_error(nav("^^3", "&from=1"), 400, "UCXL-400-TEMPORAL_INVALID", "/ucxi/v1/navigate");
  expect_error(nav("*~4"), 400, "UCXL-400-TEMPORAL_INVALID", "/ucxi/v1/navigate");
  // get follows the same resolution, with the content.
  d = expect_ok(call("GET", "/ucxi/v1/get?address=" + enc(base + "~~1/notes/plan.md")), 200, "UCXL-200-SUCCESS");
  EXPECT_EQ(d.value("content", ""), "v2");
  const json e = expect_error(nav("~~1", "&from=x"), 400, "UCXL-400-BAD_REQUEST", "/ucxi/v1/navigate");
  EXPECT_EQ(e["details"].value("field", ""), "from");
  const json status = expect_ok(call("GET", "/ucxi/v1/status"), 200, "UCXL-200-SUCCESS");
  EXPECT_GE(status["navigator"].value("out_of_range", 0), 4);
}

TEST_F(UcxiPluginTest, MissingVersionsAndAddressesAreNotFound) {
  start();
  expect_error(call("GET", std::string("/ucxi/v1/get?address=") + kAddrEnc), 404, "UCXL-404-NOT_FOUND", "/ucxi/v1/get");
  expect_ok(put(kAddr, "v1"), 201, "UCXL-201-CREATED");
  expect_error(call("GET", "/ucxi/v1/get?address=" + enc("ucxl://agent-a:architect@chorus:task-1/*~9/notes/plan.md")),
               400, "UCXL-400-TEMPORAL_INVALID", "/ucxi/v1/get");
}

TEST_F(UcxiPluginTest, BadAddressesAtTheBoundary) {
  start();
  // Missing address.
  for (const char *target : {"/ucxi/v1/get", "/ucxi/v1/get?address=", "/ucxi/v1/navigate?from=1", "/ucxi/v1/discover",
                             "/ucxi/v1/query"}) {
    const std::string path(std::string_view(target).substr(0, std::string_view(target).find('?')));
    const json e = expect_error(call("GET", target), 400, "UCXL-400-BAD_REQUEST", path);
    EXPECT_EQ(e["details"].value("field", ""), "address");
  }
  // An address that does not parse: the field, the text, CHORUS's message.
  json e = expect_error(call("GET", "/ucxi/v1/get?address=" + enc("ucxl://a!:b@c:d/*^/x")), 400,
                        "UCXL-400-INVALID_ADDRESS", "/ucxi/v1/get");
  EXPECT_EQ(e["details"].value("field", ""), "agent");
  EXPECT_EQ(e["details"].value("provided_address", ""), "ucxl://a!:b@c:d/*^/x");
  EXPECT_FALSE(e["details"].value("parse_error", "").empty());
  EXPECT_EQ(e["message"].get<std::string>().rfind("UCXL address validation error in agent: ", 0), 0u);
  e = expect_error(put("http://a:b@c:d/*^/x", "x"), 400, "UCXL-400-INVALID_ADDRESS", "/ucxi/v1/put");
  EXPECT_EQ(e["details"].value("field", ""), "address");
  e = expect_error(call("GET", "/ucxi/v1/discover?address=" + enc("ucxl://a:b@c:d/*x/p")), 400,
                   "UCXL-400-INVALID_ADDRESS", "/ucxi/v1/discover");
  EXPECT_EQ(e["details"].value("field", ""), "temporal_segment");
  // Wildcards where one address is needed.
  const std::string wild = "ucxl://any:architect@chorus:task-1/*^/notes/plan.md";
  for (const auto &[method, op] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "get"}, {"PUT", "put"}, {"DELETE", "delete"}, {"POST", "announce"}, {"GET", "navigate"}}) {
    e = expect_error(call(method, "/ucxi/v1/" + op + "?address=" + enc(wild)), 400, "UCXL-400-INVALID_ADDRESS",
                     "/ucxi/v1/" + op);
    EXPECT_EQ(e["details"].value("field", ""), "address");
    EXPECT_EQ(e["details"].value("parse_error", ""), "wildcard 'any' not allowed for " + op);
    EXPECT_EQ(e["details"].value("provided_address", ""), wild);
  }
  e = expect_error(call("POST", "/ucxi/v1/post?address=" + enc(wild), "{}", {{"Content-Type", "application/json"}}),
                   400, "UCXL-400-INVALID_ADDRESS", "/ucxi/v1/post");
  EXPECT_EQ(e["details"].value("parse_error", ""), "wildcard 'any' not allowed for post");
  // put and delete need *^.
  for (const auto &[method, op] : std::vector<std::pair<std::string, std::string>>{{"PUT", "put"}, {"DELETE", "delete"}}) {
    e = expect_error(call(method, "/ucxi/v1/" + op + "?address=" + enc("ucxl://a:architect@c:d/*~1/p")), 400,
                     "UCXL-400-INVALID_ADDRESS", "/ucxi/v1/" + op);
    EXPECT_EQ(e["details"].value("field", ""), "temporal_segment");
  }
  // Nothing reached the DHT.
  EXPECT_EQ(dht_.pump(), 0u);
}

TEST_F(UcxiPluginTest, WrongMethodsAreRefusedUnknownOpsAreTheHostsNotFound) {
  start();
  const std::vector<std::pair<std::string, std::string>> wrong = {
      {"POST", "get"},     {"GET", "put"},      {"GET", "post"},  {"GET", "delete"},   {"GET", "announce"},
      {"PUT", "discover"}, {"POST", "navigate"}, {"DELETE", "status"}, {"PUT", "query"}};
  for (const auto &[method, op] : wrong) {
    expect_error(call(method, "/ucxi/v1/" + op + std::string("?address=") + kAddrEnc), 405,
                 "UCXL-405-METHOD_NOT_ALLOWED", "/ucxi/v1/" + op);
    EXPECT_EQ(host_.metric_value("chorus_ucxi_requests_total", {op, "UCXL-405-METHOD_NOT_ALLOWED"}), 1.0) << op;
  }
  EXPECT_EQ(call("GET", "/ucxi/v1/nothing").status, 404);
  EXPECT_EQ(call("GET", "/ucxi/v1/").status, 404);
}

TEST_F(UcxiPluginTest, OversizeAndNonUtf8BodiesAreRefused) {
  start(R"({"max_body_bytes": 16})");
  json e = expect_error(put(kAddr, std::string(17, 'x')), 413, "UCXL-413-PAYLOAD_TOO_LARGE", "/ucxi/v1/put");
  EXPECT_EQ(e["details"].value("limit", 0), 16);
  expect_ok(put(kAddr, std::string(16, 'x')), 201, "UCXL-201-CREATED");
  for (const char *ct : {"text/plain", "application/json", "application/vnd.x+json", "text/markdown; charset=utf-8"}) {
    e = expect_error(put(kAddr, "bad \xC3\x28", ct), 400, "UCXL-400-INVALID_PAYLOAD", "/ucxi/v1/put");
    EXPECT_EQ(e["details"].value("field", ""), "content");
  }
  // The same bytes are fine as binary.
  expect_ok(put(kAddr, "bad \xC3\x28", "application/octet-stream"), 201, "UCXL-201-CREATED");
  expect_error(call("POST", "/ucxi/v1/post", std::string(17, ' '), {{"Content-Type", "application/json"}}), 413,
               "UCXL-413-PAYLOAD_TOO_LARGE", "/ucxi/v1/post");
}

TEST_F(UcxiPluginTest, RolesUnknownAndNotHeld) {
  start();
  // A role the DHT has no recipient for.
  json e = expect_error(put("ucxl://agent-a:nobody@chorus:task-1/*^/x", "x"), 422, "UCXL-422-UNPROCESSABLE",
                        "/ucxi/v1/put");
  EXPECT_EQ(e["details"].value("field", ""), "role");
  // Stored for a role whose key this node lacks: readable by version list, not by content.
  expect_ok(put("ucxl://agent-a:secret@chorus:task-1/*^/x", "classified"), 201, "UCXL-201-CREATED");
  expect_error(call("GET", "/ucxi/v1/get?address=" + enc("ucxl://agent-a:secret@chorus:task-1/*^/x")), 403,
               "UCXL-403-FORBIDDEN", "/ucxi/v1/get");
  // Resolution needs no key.
  expect_ok(call("GET", "/ucxi/v1/navigate?address=" + enc("ucxl://agent-a:secret@chorus:task-1/*^/x")), 200,
            "UCXL-200-SUCCESS");
}

TEST_F(UcxiPluginTest, DhtFailuresMapToGatewayCodes) {
  start();
  dht_.fail_with = CHORUS_E_TIMEOUT;
  json e = expect_error(call("GET", std::string("/ucxi/v1/get?address=") + kAddrEnc), 504, "UCXL-504-GATEWAY_TIMEOUT",
                        "/ucxi/v1/get");
  EXPECT_TRUE(e.contains("cause"));
  dht_.fail_with = CHORUS_E_UNAVAILABLE;
  expect_error(put(kAddr, "x"), 503, "UCXL-503-SERVICE_UNAVAILABLE", "/ucxi/v1/put");
  dht_.fail_with = CHORUS_E_INTERNAL;
  expect_error(put(kAddr, "x"), 500, "UCXL-500-INTERNAL", "/ucxi/v1/put");
}

TEST_F(UcxiPluginTest, DeleteLeavesTheHistory) {
  start();
  expect_ok(put(kAddr, "v1"), 201, "UCXL-201-CREATED");
  const auto r = call("DELETE", std::string("/ucxi/v1/delete?address=") + kAddrEnc);
  EXPECT_EQ(r.status, 204);
  EXPECT_TRUE(r.body.empty());
  EXPECT_TRUE(is_request_id(r.header("X-Request-Id"))) << r.header("X-Request-Id");
  EXPECT_EQ(host_.metric_value("chorus_ucxi_requests_total", {"delete", "UCXL-204-NO_CONTENT"}), 1.0);
  expect_error(call("GET", std::string("/ucxi/v1/get?address=") + kAddrEnc), 404, "UCXL-404-NOT_FOUND", "/ucxi/v1/get");
  const json d = expect_ok(call("GET", "/ucxi/v1/get?address=" + enc("ucxl://agent-a:architect@chorus:task-1/*~1/notes/plan.md")),
                           200, "UCXL-200-SUCCESS");
  EXPECT_EQ(d.value("content", ""), "v1");
  // Navigation sees the tombstone as a version.
  const json nav = expect_ok(call("GET", std::string("/ucxi/v1/navigate?address=") + kAddrEnc), 200, "UCXL-200-SUCCESS");
  EXPECT_EQ(nav.value("version", 0), 2);
  EXPECT_TRUE(nav.value("deleted", false));
  EXPECT_EQ(nav.value("sha256", "x"), "");
}

TEST_F(UcxiPluginTest, AnnounceDiscoverAndQuery) {
  start();
  json e = expect_error(call("GET", std::string("/ucxi/v1/discover?address=") + kAddrEnc), 404,
                        "UCXL-404-RESOLUTION_FAILED", "/ucxi/v1/discover");
  expect_ok(put(kAddr, "v1"), 201, "UCXL-201-CREATED");
  json d = expect_ok(call("POST", std::string("/ucxi/v1/announce?address=") + kAddrEnc), 200, "UCXL-200-SUCCESS");
  EXPECT_EQ(d.value("peer_id", ""), kSelf);
  d = expect_ok(call("GET", std::string("/ucxi/v1/discover?address=") + kAddrEnc), 200, "UCXL-200-SUCCESS");
  ASSERT_TRUE(d["providers"].is_array());
  ASSERT_EQ(d["providers"].size(), 1u);
  EXPECT_EQ(d["providers"][0].value("peer_id", ""), kSelf);
  EXPECT_TRUE(d["providers"][0]["addrs"].is_array());

  expect_ok(put("ucxl://agent-a:architect@chorus:task-2/*^/docs/a.md", "a"), 201, "UCXL-201-CREATED");
  expect_ok(put("ucxl://agent-a:architect@other:task-2/*^/docs/b.md", "b"), 201, "UCXL-201-CREATED");
  d = expect_ok(call("GET", "/ucxi/v1/query?address=" + enc("ucxl://any:any@chorus:any/*^")), 200, "UCXL-200-SUCCESS");
  ASSERT_TRUE(d["matches"].is_array());
  EXPECT_EQ(d["matches"].size(), 2u) << d.dump();
  EXPECT_EQ(d.value("pattern", ""), "ucxl://any:any@chorus:any/*^");
  for (const auto &m : d["matches"]) {
    EXPECT_TRUE(m.contains("address") && m.contains("versions") && m.contains("latest_sha256") && m.contains("updated"));
  }
  d = expect_ok(call("GET", "/ucxi/v1/query?limit=1&address=" + enc("ucxl://any:any@any:any/*^")), 200,
                "UCXL-200-SUCCESS");
  EXPECT_EQ(d["matches"].size(), 1u);
  for (const char *bad : {"0", "1001", "-1", "x"}) {
    e = expect_error(call("GET", std::string("/ucxi/v1/query?limit=") + bad + "&address=" + enc("ucxl://any:any@any:any/*^")),
                     400, "UCXL-400-BAD_REQUEST", "/ucxi/v1/query");
    EXPECT_EQ(e["details"].value("field", ""), "limit");
  }
  // Discover with wildcards answers from the local index.
  d = expect_ok(call("GET", "/ucxi/v1/discover?address=" + enc("ucxl://any:any@chorus:task-1/*^")), 200,
                "UCXL-200-SUCCESS");
  EXPECT_FALSE(d["providers"].empty()) << d.dump();
}

json decision(const std::string &id = "d-1") {
  return json{{"id", id},
              {"title", "Use age for content"},
              {"summary", "Role keys encrypt every version."},
              {"outcome", "approval"},
              {"author", {{"agent", "agent-a"}, {"role", "architect"}}},
              {"project", "chorus"},
              {"task", "task-1"},
              {"citations", json::array({"ucxl://agent-a:architect@chorus:task-1/*~1/notes/plan.md"})},
              {"created", "2026-12-07T04:00:00Z"}};
}

TEST_F(UcxiPluginTest, PostPublishesAndAnnouncesADecision) {
  start();
  const auto json_ct = chorus::testing::FakeHost::Headers{{"Content-Type", "application/json"}};
  json d = expect_ok(call("POST", "/ucxi/v1/post", decision().dump(), json_ct), 201, "UCXL-201-CREATED");
  EXPECT_EQ(d.value("id", ""), "d-1");
  EXPECT_EQ(d.value("version", 0), 1);
  EXPECT_EQ(d.value("address", ""), "ucxl://agent-a:architect@chorus:task-1/*~1/decisions/d-1.json");
  EXPECT_EQ(host_.metric_value("chorus_ucxi_decisions_published_total"), 1.0);
  const auto pubs = pubsub_.published();
  ASSERT_EQ(pubs.size(), 1u);
  EXPECT_EQ(pubs[0].topic, "CHORUS/coordination/v1");
  EXPECT_EQ(pubs[0].type, "decision_published");
  EXPECT_EQ(pubs[0].data.value("address", ""), d.value("address", ""));
  EXPECT_EQ(pubs[0].data.value("id", ""), "d-1");
  EXPECT_EQ(pubs[0].data.value("outcome", ""), "approval");
  EXPECT_EQ(pubs[0].data.value("sha256", ""), d.value("sha256", ""));
  // The record reads back as JSON text.
  const json got = expect_ok(
      call("GET", "/ucxi/v1/get?address=" + enc("ucxl://agent-a:architect@chorus:task-1/*^/decisions/d-1.json")), 200,
      "UCXL-200-SUCCESS");
  EXPECT_EQ(json::parse(got.value("content", "null")).value("title", ""), "Use age for content");

  // The address, when given, must be the decision's.
  expect_ok(call("POST", "/ucxi/v1/post?address=" + enc("ucxl://agent-a:architect@chorus:task-1/*^/decisions/d-2.json"),
                 decision("d-2").dump(), json_ct),
            201, "UCXL-201-CREATED");
  json e = expect_error(call("POST", "/ucxi/v1/post?address=" + enc("ucxl://agent-a:architect@chorus:task-1/*^/other"),
                             decision("d-3").dump(), json_ct),
                        400, "UCXL-400-INVALID_ADDRESS", "/ucxi/v1/post");
  EXPECT_EQ(e["details"].value("field", ""), "address");
  // Schema errors name the member.
  json bad = decision();
  bad["outcome"] = "maybe";
  e = expect_error(call("POST", "/ucxi/v1/post", bad.dump(), json_ct), 400, "UCXL-400-INVALID_PAYLOAD", "/ucxi/v1/post");
  EXPECT_EQ(e["details"].value("field", ""), "outcome");
  bad = decision();
  bad["citations"] = json::array({"ucxl://agent-a:architect@chorus:task-1/*^/notes/plan.md"});  // not a version
  e = expect_error(call("POST", "/ucxi/v1/post", bad.dump(), json_ct), 400, "UCXL-400-INVALID_PAYLOAD", "/ucxi/v1/post");
  EXPECT_EQ(e["details"].value("field", "").rfind("citations", 0), 0u);
  expect_error(call("POST", "/ucxi/v1/post", "{not json", json_ct), 400, "UCXL-400-INVALID_PAYLOAD", "/ucxi/v1/post");
  expect_error(call("POST", "/ucxi/v1/post", decision().dump(), {{"Content-Type", "text/plain"}}), 415,
               "UCXL-415-UNSUPPORTED_MEDIA_TYPE", "/ucxi/v1/post");
  EXPECT_EQ(host_.metric_value("chorus_ucxi_decisions_published_total"), 2.0);
}

// SHHH: text and JSON content is redacted through host_api.redact (channel ucxi) before it is
// stored; binary content is stored as it is. The FakeHost stands in for the sentinel.
TEST_F(UcxiPluginTest, ContentWritesAreRedactedBinaryIsNot) {
  const std::string secret = "ghp_NotARealToken0123456789abcdefABCD";
  host_.add_redact_secret(secret);
  start();
  expect_ok(put(kAddr, "token " + secret), 201, "UCXL-201-CREATED");
  json d = expect_ok(call("GET", std::string("/ucxi/v1/get?address=") + kAddrEnc), 200, "UCXL-200-SUCCESS");
  EXPECT_EQ(d.value("content", ""), "token [REDACTED]");
  expect_ok(put(kAddr, R"({"k":")" + secret + R"("})", "application/json; charset=utf-8"), 201, "UCXL-201-CREATED");
  d = expect_ok(call("GET", std::string("/ucxi/v1/get?address=") + kAddrEnc), 200, "UCXL-200-SUCCESS");
  EXPECT_EQ(d.value("content", ""), R"({"k":"[REDACTED]"})");
  const std::string binary = "\x01" + secret;
  expect_ok(put(kAddr, binary, "application/octet-stream"), 201, "UCXL-201-CREATED");
  json record = decision("d-9");
  record["summary"] = "rotate " + secret;
  const auto json_ct = chorus::testing::FakeHost::Headers{{"Content-Type", "application/json"}};
  expect_ok(call("POST", "/ucxi/v1/post", record.dump(), json_ct), 201, "UCXL-201-CREATED");
  const json got = expect_ok(
      call("GET", "/ucxi/v1/get?address=" + enc("ucxl://agent-a:architect@chorus:task-1/*^/decisions/d-9.json")), 200,
      "UCXL-200-SUCCESS");
  EXPECT_EQ(json::parse(got.value("content", "null")).value("summary", ""), "rotate [REDACTED]");
  const auto calls = host_.redactions();
  ASSERT_EQ(calls.size(), 3u);  // not the binary put
  EXPECT_EQ(calls[0].channel, CHORUS_REDACT_CHANNEL_UCXI);
  EXPECT_EQ(calls[0].format, CHORUS_REDACT_TEXT);
  EXPECT_EQ(calls[1].format, CHORUS_REDACT_JSON);
  EXPECT_EQ(calls[2].format, CHORUS_REDACT_JSON);
}

TEST_F(UcxiPluginTest, ContentIsStoredAsGivenOnAHostWithoutRedact) {
  host_.add_redact_secret("sekrit");
  host_.set_redact_available(false);
  start();
  expect_ok(put(kAddr, "token sekrit"), 201, "UCXL-201-CREATED");
  const json d = expect_ok(call("GET", std::string("/ucxi/v1/get?address=") + kAddrEnc), 200, "UCXL-200-SUCCESS");
  EXPECT_EQ(d.value("content", ""), "token sekrit");
}

TEST_F(UcxiPluginTest, PutsAreAnnouncedAndAnnouncementsHeardAreIndexed) {
  start();
  ASSERT_EQ(pubsub_.subscriptions(), 1u);
  const json d = expect_ok(put(kAddr, "v1"), 201, "UCXL-201-CREATED");
  auto pubs = pubsub_.published();
  ASSERT_EQ(pubs.size(), 1u);
  EXPECT_EQ(pubs[0].type, "ucxl_put");
  EXPECT_EQ(pubs[0].data.value("address", ""), d.value("address", ""));
  EXPECT_EQ(pubs[0].data.value("sha256", ""), d.value("sha256", ""));
  EXPECT_EQ(pubs[0].data.value("version", 0), 1);

  // Another agent's put: recorded with that agent as a provider.
  const std::string remote = "ucxl://agent-b:reviewer@chorus:task-9/*~3/review.md";
  pubsub_.deliver("CHORUS/coordination/v1", "ucxl_put",
                  json{{"address", remote}, {"sha256", std::string(64, 'a')}, {"version", 3}}, kPeerB);
  // Malformed, local and foreign messages are not.
  pubsub_.deliver("CHORUS/coordination/v1", "ucxl_put", json{{"address", "nope"}, {"sha256", "x"}}, kPeerB);
  pubsub_.deliver("CHORUS/coordination/v1", "ucxl_put",
                  json{{"address", "ucxl://agent-c:reviewer@chorus:task-8/*~1/x"}, {"sha256", "b"}, {"version", 1}},
                  kSelf, /*local=*/true);
  pubsub_.deliver("CHORUS/coordination/v1", "task_claim", json{{"address", remote}}, kPeerB);
  EXPECT_EQ(host_.metric_value("chorus_ucxi_announcements_heard_total"), 1.0);
  json q = expect_ok(call("GET", "/ucxi/v1/query?address=" + enc("ucxl://any:any@chorus:task-9/*^")), 200,
                     "UCXL-200-SUCCESS");
  ASSERT_EQ(q["matches"].size(), 1u) << q.dump();
  EXPECT_EQ(q["matches"][0].value("versions", 0), 3);
  q = expect_ok(call("GET", "/ucxi/v1/query?address=" + enc("ucxl://any:any@chorus:task-8/*^")), 200, "UCXL-200-SUCCESS");
  EXPECT_TRUE(q["matches"].empty());
  const json disc = expect_ok(call("GET", "/ucxi/v1/discover?address=" + enc("ucxl://any:any@chorus:task-9/*^")), 200,
                              "UCXL-200-SUCCESS");
  ASSERT_FALSE(disc["providers"].empty()) << disc.dump();
  EXPECT_NE(disc.dump().find(kPeerB), std::string::npos);
}

TEST_F(UcxiPluginTest, AnnouncePutsCanBeTurnedOff) {
  start(R"({"announce_puts": false})");
  expect_ok(put(kAddr, "v1"), 201, "UCXL-201-CREATED");
  EXPECT_TRUE(pubsub_.published().empty());
}

TEST_F(UcxiPluginTest, RunsWithoutPubsub) {
  start("{}", /*with_pubsub=*/false);
  expect_ok(put(kAddr, "v1"), 201, "UCXL-201-CREATED");
  const json s = expect_ok(call("GET", "/ucxi/v1/status"), 200, "UCXL-200-SUCCESS");
  EXPECT_FALSE(s["pubsub"].value("present", true));
}

TEST_F(UcxiPluginTest, StatusReportsEveryPart) {
  start();
  expect_ok(put(kAddr, "v1"), 201, "UCXL-201-CREATED");
  expect_ok(call("GET", std::string("/ucxi/v1/get?address=") + kAddrEnc), 200, "UCXL-200-SUCCESS");
  expect_ok(call("GET", std::string("/ucxi/v1/get?address=") + kAddrEnc), 200, "UCXL-200-SUCCESS");
  const json s = expect_ok(call("GET", "/ucxi/v1/status"), 200, "UCXL-200-SUCCESS");
  EXPECT_EQ(s["server"].value("version", ""), "0.1.0");
  EXPECT_EQ(s["server"].value("base_path", ""), "/ucxi/v1/");
  EXPECT_TRUE(s["server"].contains("uptime_s"));
  for (const char *part : {"resolver", "storage", "cache", "navigator", "p2p", "pubsub"})
    EXPECT_TRUE(s.contains(part) && s[part].is_object()) << part << " in " << s.dump();
  EXPECT_TRUE(s["cache"].contains("entries") && s["cache"].contains("hits") && s["cache"].contains("misses"));
  EXPECT_EQ(s["p2p"].value("peer_id", ""), kSelf);
  EXPECT_EQ(s["p2p"].value("connected_peers", 0), 1);
  EXPECT_TRUE(s["pubsub"].value("present", false));
  EXPECT_EQ(s["storage"].value("series", 0), 1);
  // The metrics follow the store's cache counters.
  const double hits = host_.metric_value("chorus_ucxi_cache_hits_total").value_or(0);
  const double misses = host_.metric_value("chorus_ucxi_cache_misses_total").value_or(0);
  EXPECT_EQ(hits, s["cache"].value("hits", 0.0));
  EXPECT_EQ(misses, s["cache"].value("misses", 0.0));
  EXPECT_EQ(host_.health().state, CHORUS_HEALTH_OK);
  EXPECT_EQ(host_.health().message, "1 series indexed");
}

// ---- the chorus.ucxi v1 table

struct Completion {
  bool called = false;
  chorus_status status = CHORUS_E_INTERNAL;
  std::string message;
  json meta;
  std::string content;
  static void fn(void *arg, chorus_status st, const chorus_error *err, const char *meta, size_t meta_len,
                 const uint8_t *content, size_t content_len) {
    auto *c = static_cast<Completion *>(arg);
    c->called = true;
    c->status = st;
    if (err != nullptr) c->message = err->message;
    if (meta != nullptr) c->meta = json::parse(std::string_view(meta, meta_len));
    if (content != nullptr) c->content.assign(reinterpret_cast<const char *>(content), content_len);
  }
};

TEST_F(UcxiPluginTest, ServiceTable) {
  start();
  ASSERT_EQ(plugin_->services().size(), 1u);
  EXPECT_EQ(plugin_->services()[0].name, CHORUS_UCXI_SERVICE);
  EXPECT_EQ(plugin_->services()[0].major, 1);
  const auto *t = static_cast<const chorus_ucxi_v1 *>(plugin_->services()[0].table.table);
  void *self = plugin_->services()[0].table.self;
  ASSERT_EQ(t->struct_size, sizeof(chorus_ucxi_v1));
  auto drive = [&](Completion &c) {
    for (int i = 0; i < 100 && !c.called; ++i) host_.run_pending(), dht_.pump();
  };

  chorus::ErrorBuffer err;
  Completion put;
  const std::string text = "from the table";
  ASSERT_EQ(t->put(self, kAddr, "text/plain", reinterpret_cast<const uint8_t *>(text.data()), text.size(), 0,
                   &Completion::fn, &put, err.get()),
            CHORUS_OK)
      << err.text();
  drive(put);
  ASSERT_TRUE(put.called);
  EXPECT_EQ(put.status, CHORUS_OK) << put.message;
  EXPECT_EQ(put.meta.value("version", 0), 1);

  Completion get;
  ASSERT_EQ(t->get(self, kAddr, 0, &Completion::fn, &get, err.get()), CHORUS_OK);
  drive(get);
  EXPECT_EQ(get.status, CHORUS_OK) << get.message;
  EXPECT_EQ(get.content, text);
  EXPECT_EQ(get.meta.value("version", 0), 1);

  Completion dec;
  ASSERT_EQ(t->publish_decision(self, decision().dump().c_str(), 0, &Completion::fn, &dec, err.get()), CHORUS_OK);
  drive(dec);
  EXPECT_EQ(dec.status, CHORUS_OK) << dec.message;
  EXPECT_EQ(dec.meta.value("id", ""), "d-1");

  // Refused at once (the completion never runs): bad addresses, wildcards, oversize, not JSON.
  Completion never;
  EXPECT_EQ(t->get(self, "ucxl://nope", 0, &Completion::fn, &never, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(t->get(self, "ucxl://any:architect@chorus:task-1/*^/x", 0, &Completion::fn, &never, err.get()),
            CHORUS_E_INVALID_ARG);
  EXPECT_NE(err.text().find("wildcard"), std::string_view::npos);
  EXPECT_EQ(t->put(self, "ucxl://a:architect@c:d/*~1/p", nullptr, nullptr, 0, 0, &Completion::fn, &never, err.get()),
            CHORUS_E_INVALID_ARG);
  const std::string big(600 * 1024, 'x');
  EXPECT_EQ(t->put(self, kAddr, nullptr, reinterpret_cast<const uint8_t *>(big.data()), big.size(), 0, &Completion::fn,
                   &never, err.get()),
            CHORUS_E_TOO_LARGE);
  EXPECT_EQ(t->publish_decision(self, "{", 0, &Completion::fn, &never, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(t->get(self, nullptr, 0, &Completion::fn, &never, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(t->get(self, kAddr, 0, nullptr, nullptr, err.get()), CHORUS_E_INVALID_ARG);
  drive(never);
  EXPECT_FALSE(never.called);

  // A schema error completes with INVALID_ARG naming the member.
  json bad = decision();
  bad.erase("title");
  Completion refused;
  ASSERT_EQ(t->publish_decision(self, bad.dump().c_str(), 0, &Completion::fn, &refused, err.get()), CHORUS_OK);
  drive(refused);
  EXPECT_EQ(refused.status, CHORUS_E_INVALID_ARG);
  EXPECT_NE(refused.message.find("title"), std::string::npos) << refused.message;

  chorus_buf out{};
  ASSERT_EQ(t->parse_address(self, "ucxl://a:b@c:d/~~2/x", &out, err.get()), CHORUS_OK);
  const json parsed = json::parse(std::string_view(out.data, out.len));
  out.release(&out);
  EXPECT_EQ(parsed.value("agent", ""), "a");
  EXPECT_EQ(parsed["temporal_segment"].value("type", ""), "relative");
  EXPECT_EQ(parsed["temporal_segment"].value("direction", ""), "backward");
  EXPECT_EQ(parsed["temporal_segment"].value("count", 0), 2);
  EXPECT_EQ(t->parse_address(self, "ucxl://a:b@c:d!/*^/x", &out, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_NE(err.text().find("UCXL address validation error in task"), std::string_view::npos) << err.text();
}

TEST_F(UcxiPluginTest, StopUnsubscribesAndTheServiceAnswersUnavailable) {
  start();
  const auto *t = static_cast<const chorus_ucxi_v1 *>(plugin_->services()[0].table.table);
  void *self = plugin_->services()[0].table.self;
  plugin_->stop();
  EXPECT_EQ(pubsub_.subscriptions(), 0u);
  // The table outlives the runtime until destroy: calls are refused, never crash.
  chorus::ErrorBuffer err;
  Completion never;
  EXPECT_EQ(t->get(self, kAddr, 0, &Completion::fn, &never, err.get()), CHORUS_E_UNAVAILABLE);
  EXPECT_FALSE(never.called);
  plugin_->destroy();
  EXPECT_TRUE(host_.violations().empty()) << ::testing::PrintToString(host_.violations());
  plugin_.reset();
}

}  // namespace
}  // namespace chorus::ucxi

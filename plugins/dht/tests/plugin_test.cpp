// The plugin through its C vtable on the SDK's FakeHost, with a fake chorus.p2p.host: config defaults
// and refusals, the HTTP routes and their errors, the chorus.dht v1 table's argument errors, local
// put/get/provide with no peers (durable in the store), and the kad server: a request frame gets its
// reply, several on one stream in order, and a malformed or oversize frame resets the stream.
#include <gtest/gtest.h>
#include <sodium.h>
#include <unistd.h>

#include <chorus/config_schema.hpp>
#include <chorus/services/backbeat_v1.h>
#include <chorus/services/dht_v1.h>
#include <chorus/services/p2p_host_v1.h>
#include <chorus/testing/fake_host.hpp>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <mutex>
#include <thread>

#include "age/age.hpp"
#include "crypto/keyring.hpp"
#include "http_routes.hpp"
#include "kad/message.hpp"
#include "settings.hpp"
#include "wire/varint.hpp"

extern "C" const chorus_plugin_descriptor *chorus_plugin_entry_v1(const chorus_abi_info *) noexcept;

namespace chorus::dht {
namespace {

using namespace std::chrono_literals;

struct Key {
  uint8_t pk[32], sk[64];
  explicit Key(uint8_t seed_byte) {
    uint8_t seed[32];
    std::memset(seed, seed_byte, sizeof seed);
    crypto_sign_seed_keypair(pk, sk, seed);
  }
  PeerId id() const { return PeerId::from_ed25519(pk); }
};

// A fake p2p host listening on one loopback address: records what the plugin does, lets the test
// play a remote peer opening kad streams.
struct FakeP2P {
  std::mutex mu;
  std::condition_variable cv;
  Key key{1};
  std::map<std::string, std::pair<chorus_p2p_accept_fn, void *>> accept;
  std::map<uint64_t, chorus_p2p_stream_handler> handlers;  // inbound streams we opened to the plugin
  std::vector<std::pair<uint64_t, Bytes>> writes;
  std::vector<uint64_t> resets, half_closed;
  chorus_p2p_event_fn event_fn = nullptr;
  void *event_arg = nullptr;
  // Outbound streams the plugin opens: the fake accepts them at once and, when the plugin writes its
  // request, answers with `reply` (nothing when empty), playing a remote peer.
  std::map<uint64_t, chorus_p2p_stream_handler> outbound;
  uint64_t next_stream = 1000;
  Bytes reply;
  int opens = 0;
  std::atomic<bool> connected{false};  // what is_connected answers for every peer
  bool echo = false;  // answer each request with itself (a FIND_NODE with no peers, a PUT_VALUE's ack)
  chorus_p2p_host_v1 table{};

  static FakeP2P *self(void *s) { return static_cast<FakeP2P *>(s); }

  FakeP2P() {
    table.struct_size = sizeof table;
    table.local_peer_id = [](void *s, uint8_t *peer, size_t cap, size_t *len, char *text, size_t tcap, size_t *tlen) {
      const PeerId id = self(s)->key.id();
      const auto &b = id.bytes();
      if (peer != nullptr && cap >= b.size()) std::memcpy(peer, b.data(), b.size());
      if (len != nullptr) *len = b.size();
      const std::string t = id.to_base58();
      if (text != nullptr && tcap > t.size()) std::memcpy(text, t.c_str(), t.size() + 1);
      if (tlen != nullptr) *tlen = t.size();
      return CHORUS_OK;
    };
    table.local_public_key = [](void *, uint8_t *, size_t, size_t *) { return CHORUS_E_UNSUPPORTED; };
    table.sign = [](void *s, const uint8_t *data, size_t len, uint8_t sig[64]) {
      crypto_sign_detached(sig, nullptr, data, len, self(s)->key.sk);
      return CHORUS_OK;
    };
    table.get_info_json = [](void *, chorus_buf *out, chorus_error *) {
      return chorus::give_buf(R"({"peer_id":"x","addrs":["/ip4/127.0.0.1/tcp/4001"],"protocols":[]})", out);
    };
    table.list_peers_json = [](void *, chorus_buf *out, chorus_error *) { return chorus::give_buf("[]", out); };
    table.peer_addrs_json = [](void *, const uint8_t *, size_t, chorus_buf *out) { return chorus::give_buf("[]", out); };
    table.is_connected = [](void *s, const uint8_t *, size_t) { return self(s)->connected.load() ? 1 : 0; };
    table.add_addrs = [](void *, const uint8_t *, size_t, const char *const *, size_t, uint64_t, chorus_error *) {
      return CHORUS_OK;
    };
    table.set_protocol_handler = [](void *s, const char *proto, chorus_p2p_accept_fn fn, void *arg, chorus_error *) {
      std::lock_guard lk(self(s)->mu);
      self(s)->accept[proto] = {fn, arg};
      return CHORUS_OK;
    };
    table.remove_protocol_handler = [](void *s, const char *proto) {
      std::lock_guard lk(self(s)->mu);
      self(s)->accept.erase(proto);
      return CHORUS_OK;
    };
    table.open_stream = [](void *s, const uint8_t *peer, size_t peer_len, const char *const *protocols, size_t,
                           const chorus_p2p_stream_handler *h, uint32_t, chorus_p2p_open_fn fn, void *arg, chorus_error *) {
      auto *f = self(s);
      uint64_t id;
      {
        std::lock_guard lk(f->mu);
        id = ++f->next_stream;
        f->outbound[id] = *h;
        ++f->opens;
        f->cv.notify_all();
      }
      const std::string text = PeerId::from_bytes(BytesView(peer, peer_len), nullptr)->to_base58();
      chorus_p2p_stream_info info{};
      info.struct_size = sizeof info;
      info.direction = CHORUS_P2P_DIR_OUTBOUND;
      info.stream = id;
      info.peer = peer;
      info.peer_len = peer_len;
      info.peer_text = text.c_str();
      info.protocol = protocols[0];
      info.remote_addr = "/ip4/127.0.0.1/tcp/5555";
      fn(arg, CHORUS_OK, &info, nullptr);
      return CHORUS_OK;
    };
    table.write = [](void *s, uint64_t stream, const uint8_t *data, size_t len) {
      auto *f = self(s);
      std::optional<chorus_p2p_stream_handler> remote;
      Bytes answer;
      {
        std::lock_guard lk(f->mu);
        f->writes.emplace_back(stream, Bytes(data, data + len));
        f->cv.notify_all();
        if (auto it = f->outbound.find(stream); it != f->outbound.end() && (!f->reply.empty() || f->echo)) {
          remote = it->second;
          answer = f->echo ? Bytes(data, data + len) : f->reply;
        }
      }
      if (remote) remote->on_data(remote->arg, stream, answer.data(), answer.size());
      return CHORUS_OK;
    };
    table.close_write = [](void *s, uint64_t stream) {
      auto *f = self(s);
      std::lock_guard lk(f->mu);
      f->half_closed.push_back(stream);
      f->cv.notify_all();
      return CHORUS_OK;
    };
    table.reset = [](void *s, uint64_t stream) {
      auto *f = self(s);
      std::optional<chorus_p2p_stream_handler> h;
      {
        std::lock_guard lk(f->mu);
        f->resets.push_back(stream);
        f->cv.notify_all();
        if (auto it = f->outbound.find(stream); it != f->outbound.end()) {
          h = it->second;
          f->outbound.erase(it);
        }
      }
      if (h) h->on_closed(h->arg, stream, CHORUS_E_CANCELLED, "reset");
      return CHORUS_OK;
    };
    table.set_read_paused = [](void *, uint64_t, int) { return CHORUS_OK; };
    table.subscribe = [](void *s, chorus_p2p_event_fn fn, void *arg, uint64_t *out) {
      std::lock_guard lk(self(s)->mu);
      self(s)->event_fn = fn;
      self(s)->event_arg = arg;
      *out = 1;
      return CHORUS_OK;
    };
    table.unsubscribe = [](void *s, uint64_t) {
      std::lock_guard lk(self(s)->mu);
      self(s)->event_fn = nullptr;
      return CHORUS_OK;
    };
  }

  template <class Pred>
  bool wait(Pred pred) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, 10s, [&] { return pred(); });
  }

  // A remote peer opens a kad stream to the plugin: returns the handler the plugin filled.
  chorus_p2p_stream_handler open_inbound(uint64_t stream, const PeerId &remote, const std::string &proto) {
    std::pair<chorus_p2p_accept_fn, void *> acc;
    {
      std::lock_guard lk(mu);
      acc = accept.at(proto);
    }
    const std::string text = remote.to_base58();
    chorus_p2p_stream_info info{};
    info.struct_size = sizeof info;
    info.direction = CHORUS_P2P_DIR_INBOUND;
    info.stream = stream;
    info.peer = remote.bytes().data();
    info.peer_len = remote.bytes().size();
    info.peer_text = text.c_str();
    info.protocol = proto.c_str();
    info.remote_addr = "/ip4/127.0.0.1/tcp/5555";
    chorus_p2p_stream_handler h{};
    h.struct_size = sizeof h;
    EXPECT_EQ(acc.first(acc.second, &info, &h), CHORUS_OK);
    return h;
  }

  std::vector<Bytes> written(uint64_t stream) {
    std::lock_guard lk(mu);
    std::vector<Bytes> out;
    for (const auto &[s, b] : writes)
      if (s == stream) out.push_back(b);
    return out;
  }
  // Ends every outbound stream still open with its one on_closed, as the p2p host does: a fake remote
  // that answered never closes its side, and the stream's context (which holds the node's control
  // block) would otherwise outlive the test. Safe after the plugin stopped: on_closed only frees.
  void close_outbound() {
    std::map<uint64_t, chorus_p2p_stream_handler> open;
    {
      std::lock_guard lk(mu);
      open.swap(outbound);
    }
    for (auto &[id, h] : open)
      if (h.on_closed != nullptr) h.on_closed(h.arg, id, CHORUS_OK, "closed");
  }
  bool was_reset(uint64_t stream) {
    std::lock_guard lk(mu);
    return std::find(resets.begin(), resets.end(), stream) != resets.end();
  }
};

// A completion of chorus.dht v1, waited on by the test.
struct Completion {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  int calls = 0;
  chorus_status status = CHORUS_OK;
  std::string message;
  Bytes data;
  static void fn(void *arg, chorus_status st, const chorus_error *err, const uint8_t *data, size_t len) {
    auto *c = static_cast<Completion *>(arg);
    std::lock_guard lk(c->mu);
    ++c->calls;
    c->done = true;
    c->status = st;
    c->message = err != nullptr ? err->message : "";
    c->data.assign(data, data + len);
    c->cv.notify_all();
  }
  bool wait() {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, 10s, [&] { return done; });
  }
};

Bytes bytes_of(std::string_view s) { return Bytes(s.begin(), s.end()); }

class DhtPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    dir_ = std::filesystem::temp_directory_path() / ("dht-plugin-test-" + std::to_string(::getpid()) + "-" +
                                                    std::to_string(counter_++));
    std::filesystem::create_directories(dir_);
    host_.set_host_info(nlohmann::json{{"agent_id", "t"}, {"state_dir", dir_.string()}}.dump());
    host_.provide(CHORUS_P2P_HOST_SERVICE, 1, 0, &p2p_.table, &p2p_, "p2p");
  }
  void TearDown() override {
    p2p_.close_outbound();
    std::filesystem::remove_all(dir_);
  }

  chorus::testing::PluginHandle start(const std::string &cfg = R"({"probe":{"enabled":false}})") {
    auto p = chorus::testing::load(&chorus_plugin_entry_v1, host_, cfg);
    EXPECT_EQ(p.status(), CHORUS_OK) << p.message();
    chorus::ServiceTable t;
    EXPECT_EQ(p.get_service(CHORUS_DHT_SERVICE, 1, &t), CHORUS_OK);
    dht_ = static_cast<const chorus_dht_v1 *>(t.table);
    self_ = t.self;
    return p;
  }

  // Waits (with a deadline) for an HTTP answer that arrives from the dht thread.
  chorus::testing::FakeResponse http_wait(std::string_view method, std::string_view target, std::string_view body = {}) {
    const size_t id = host_.http_start(method, target, body);
    for (int i = 0; i < 1000; ++i) {
      host_.run_pending();
      auto r = host_.response(id);
      if (r.status != 0) return r;
      std::this_thread::sleep_for(10ms);  // polling an answer produced on another thread
    }
    return host_.response(id);
  }

  // Polls cond (set on the dht thread) with a deadline, moving the host's manual clock on meanwhile:
  // the node's schedules (rechecks) read the host's clock, its timers and request timeouts real time.
  template <class F>
  bool poll_clocked(F cond, int rounds = 1000) {
    for (int i = 0; i < rounds; ++i) {
      if (cond()) return true;
      host_.advance(20ms);
      std::this_thread::sleep_for(10ms);
    }
    return cond();
  }

  static inline int counter_ = 0;
  std::filesystem::path dir_;
  chorus::testing::FakeHost host_;
  FakeP2P p2p_;
  const chorus_dht_v1 *dht_ = nullptr;
  void *self_ = nullptr;
};

TEST(DhtSettings, SchemaDefaultsAreTheDocumentedOnes) {
  const auto schema = nlohmann::json::parse(kConfigSchema);
  ASSERT_FALSE(chorus::config_schema::check_schema(schema)) << *chorus::config_schema::check_schema(schema);
  std::string full;
  ASSERT_FALSE(chorus::config_schema::prepare_plugin_config(schema, "dht", "{}", &full));
  const Settings s = parse_settings(full);
  EXPECT_EQ(s.protocol_prefix, "/ipfs");
  EXPECT_EQ(s.protocol_id(), "/ipfs/kad/1.0.0");
  EXPECT_EQ(s.mode, Mode::kAuto);
  EXPECT_EQ(s.k, 20u);
  EXPECT_EQ(s.alpha, 3u);
  EXPECT_EQ(s.query_timeout_ms, 10000u);
  EXPECT_EQ(s.lookup_deadline_ms, 30000u);
  EXPECT_EQ(s.replication, 3u);
  EXPECT_EQ(s.max_value_bytes, 1u << 20);
  EXPECT_EQ(s.record_ttl_ms, 36ull * 3600 * 1000);
  EXPECT_EQ(s.provider_ttl_ms, 48ull * 3600 * 1000);
  EXPECT_EQ(s.republish_interval_ms, 3600ull * 1000);
  EXPECT_EQ(s.reprovide_interval_ms, 22ull * 3600 * 1000);
  EXPECT_EQ(s.refresh_interval_ms, 600000u);
  EXPECT_EQ(s.recheck_interval_ms, 5000u);
  EXPECT_EQ(s.recheck_max_interval_ms, 60000u);
  EXPECT_EQ(s.cache_ttl_ms, 300000u);
  EXPECT_EQ(s.sweep_interval_ms, 300000u);
  EXPECT_TRUE(s.probe.enabled);
  EXPECT_EQ(s.probe.interval_ms, 30000u);
  EXPECT_EQ(s.probe.timeout_ms, 5000u);
  EXPECT_TRUE(s.roles.empty());
  EXPECT_EQ(s.state_subdir, "dht");

  std::string custom;
  ASSERT_FALSE(chorus::config_schema::prepare_plugin_config(
      schema, "dht",
      R"({"protocol_prefix":"/chorus","mode":"server","roles":{"dev":{"recipient":"age1xyz","authority":"decision"}}})",
      &custom));
  const Settings c = parse_settings(custom);
  EXPECT_EQ(c.protocol_id(), "/chorus/kad/1.0.0");
  EXPECT_EQ(c.mode, Mode::kServer);
  ASSERT_EQ(c.roles.count("dev"), 1u);
  EXPECT_EQ(c.roles.at("dev").recipient, "age1xyz");
  EXPECT_EQ(c.roles.at("dev").authority, "decision");
}

TEST_F(DhtPluginTest, RefusesBadConfigs) {
  for (const char *bad : {R"({"bogus":1})", R"({"mode":"sometimes"})", R"({"k":0})", R"({"replication":21})",
                          R"({"replication":5,"k":4})", R"({"probe":{"interval_ms":1000,"timeout_ms":1000}})",
                          R"({"protocol_prefix":"ipfs"})", R"({"protocol_prefix":"/ipfs/"})",
                          R"({"query_timeout_ms":40000,"lookup_deadline_ms":30000})", R"({"state_subdir":"../x"})",
                          R"({"roles":{"dev":{"recipient":"nope"}}})"}) {
    chorus::testing::FakeHost host;
    auto p = chorus::testing::load(&chorus_plugin_entry_v1, host, bad);
    EXPECT_EQ(p.status(), CHORUS_E_CONFIG) << bad << ": " << p.message();
  }
}

TEST(DhtHttpHelpers, ProviderKeysAndQueries) {
  EXPECT_EQ(provider_key("hello"), bytes_of("hello"));
  // CIDv1 raw, sha2-256 of "hello": the key is the multihash (0x12 0x20 + 32 bytes).
  const Bytes v1 = provider_key("bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq");
  ASSERT_EQ(v1.size(), 34u);
  EXPECT_EQ(v1[0], 0x12);
  EXPECT_EQ(v1[1], 0x20);
  // CIDv0 (base58btc of the bare multihash): the same multihash.
  EXPECT_EQ(provider_key("QmRN6wdp1S2A5EtjW9A3M1vKSBuQQGcgvuhoMUoEz4iiT5"), v1);
  // Text that only looks like a CID stays text.
  EXPECT_EQ(provider_key("bafy-not-a-cid"), bytes_of("bafy-not-a-cid"));
  EXPECT_EQ(query_param("a=1&key=%2Fchorus%2Fx", "key"), "/chorus/x");
  EXPECT_EQ(query_param("key=a+b", "key"), "a b");
  EXPECT_FALSE(query_param("key=%zz", "key"));
  EXPECT_FALSE(query_param("other=1", "key"));
  EXPECT_EQ(http_status(CHORUS_E_NOT_FOUND), 404);
  EXPECT_EQ(http_status(CHORUS_E_TIMEOUT), 504);
}

TEST_F(DhtPluginTest, RoutesAnswerBadRequestsClearly) {
  auto p = start();
  EXPECT_EQ(p2p_.accept.count("/ipfs/kad/1.0.0"), 1u) << "auto mode with a listen address serves";
  auto r = http_wait("GET", "/api/v1/dht/routing");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["mode"], "server");
  EXPECT_EQ(j["peers"], 0);
  EXPECT_TRUE(j["buckets"].is_array());

  r = http_wait("GET", "/api/v1/dht/values");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("key="), std::string::npos) << r.body;
  r = http_wait("PUT", "/api/v1/dht/values?key=%2Fnope%2Fx", "v");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("namespace"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("INVALID_ARG"), std::string::npos) << r.body;
  r = http_wait("PUT", "/api/v1/dht/values?key=%2Fchorus%2Fbig", std::string((1 << 20) + 1, 'x'));
  EXPECT_EQ(r.status, 413) << r.body;
  r = http_wait("GET", "/api/v1/dht/values?key=%2Fchorus%2Fabsent");
  EXPECT_EQ(r.status, 404) << r.body;
  r = http_wait("GET", "/api/v1/dht/peers/not-a-peer");
  EXPECT_EQ(r.status, 400) << r.body;
  r = http_wait("GET", "/api/v1/dht/providers");
  EXPECT_EQ(r.status, 400) << r.body;
  r = http_wait("GET", "/api/v1/dht/providers?key=nobody-provides-this");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["providers"], nlohmann::json::array());
}

TEST_F(DhtPluginTest, LocalPutGetProvideWithoutPeers) {
  auto p = start();
  auto r = http_wait("PUT", "/api/v1/dht/values?key=%2Fchorus%2Fgreeting", "hello");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["key"], "/chorus/greeting");
  r = http_wait("GET", "/api/v1/dht/values?key=%2Fchorus%2Fgreeting");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "hello");
  EXPECT_EQ(r.content_type, "application/octet-stream");
  // A newer put replaces the value.
  ASSERT_EQ(http_wait("PUT", "/api/v1/dht/values?key=%2Fchorus%2Fgreeting", "hello again").status, 200);
  EXPECT_EQ(http_wait("GET", "/api/v1/dht/values?key=%2Fchorus%2Fgreeting").body, "hello again");

  r = http_wait("POST", "/api/v1/dht/providers?key=thing");
  ASSERT_EQ(r.status, 200) << r.body;
  r = http_wait("GET", "/api/v1/dht/providers?key=thing");
  ASSERT_EQ(r.status, 200) << r.body;
  auto providers = nlohmann::json::parse(r.body)["providers"];
  ASSERT_EQ(providers.size(), 1u) << r.body;
  EXPECT_EQ(providers[0]["peer_id"], p2p_.key.id().to_base58());
  EXPECT_EQ(providers[0]["addrs"], nlohmann::json::array({"/ip4/127.0.0.1/tcp/4001"}));

  // The service table completes exactly once, on success and on error.
  Completion c;
  chorus::ErrorBuffer err;
  const Bytes key = bytes_of("/chorus/greeting");
  ASSERT_EQ(dht_->get_value(self_, key.data(), key.size(), 0, &Completion::fn, &c, err.get()), CHORUS_OK) << err.text();
  ASSERT_TRUE(c.wait());
  EXPECT_EQ(c.status, CHORUS_OK);
  EXPECT_EQ(c.data, bytes_of("hello again"));
  Completion missing;
  const Bytes absent = bytes_of("/chorus/absent");
  ASSERT_EQ(dht_->get_value(self_, absent.data(), absent.size(), 0, &Completion::fn, &missing, err.get()), CHORUS_OK);
  ASSERT_TRUE(missing.wait());
  EXPECT_EQ(missing.status, CHORUS_E_NOT_FOUND);
  EXPECT_FALSE(missing.message.empty());
  ASSERT_EQ(p.stop(), CHORUS_OK);
  EXPECT_EQ(c.calls, 1);
  EXPECT_EQ(missing.calls, 1);
}

// A chorus.backbeat stand-in that records the operations it is told about.
struct FakeBackbeat {
  std::mutex mu;
  std::vector<std::string> events;  // "start <id> <type> <beats>", "complete <id>", "fail <id>"
  chorus_backbeat_v1 table{};
  FakeBackbeat() {
    table.struct_size = sizeof table;
    table.start_operation = [](void *self, const char *id, size_t id_len, const char *type, size_t type_len,
                               uint32_t beats, const char *, size_t, chorus_error *) -> chorus_status {
      auto *b = static_cast<FakeBackbeat *>(self);
      std::lock_guard lk(b->mu);
      b->events.push_back("start " + std::string(id, id_len) + " " + std::string(type, type_len) + " " +
                          std::to_string(beats));
      return CHORUS_OK;
    };
    table.update_phase = [](void *, const char *, size_t, int32_t, uint32_t, chorus_error *) -> chorus_status {
      return CHORUS_OK;
    };
    table.complete_operation = [](void *self, const char *id, size_t id_len, uint32_t, chorus_error *) -> chorus_status {
      auto *b = static_cast<FakeBackbeat *>(self);
      std::lock_guard lk(b->mu);
      b->events.push_back("complete " + std::string(id, id_len));
      return CHORUS_OK;
    };
    table.fail_operation = [](void *self, const char *id, size_t id_len, const char *, size_t,
                              chorus_error *) -> chorus_status {
      auto *b = static_cast<FakeBackbeat *>(self);
      std::lock_guard lk(b->mu);
      b->events.push_back("fail " + std::string(id, id_len));
      return CHORUS_OK;
    };
  }
  std::vector<std::string> seen() {
    std::lock_guard lk(mu);
    return events;
  }
};

// With BACKBEAT present, a put is a dht_store operation with the guideline's budget of 4 beats,
// completed when the put completes; a read is not an operation.
TEST_F(DhtPluginTest, PutsAreBackbeatDhtStoreOperations) {
  FakeBackbeat bb;
  host_.provide(CHORUS_BACKBEAT_SERVICE, 1, 0, &bb.table, &bb, "backbeat");
  auto p = start();
  ASSERT_EQ(http_wait("PUT", "/api/v1/dht/values?key=%2Fchorus%2Ftracked", "v").status, 200);
  ASSERT_EQ(http_wait("GET", "/api/v1/dht/values?key=%2Fchorus%2Ftracked").status, 200);
  const auto events = bb.seen();
  ASSERT_EQ(events.size(), 2u) << ::testing::PrintToString(events);
  EXPECT_EQ(events[0].rfind("start dht-put_value-", 0), 0u) << events[0];
  EXPECT_NE(events[0].find(" dht_store 4"), std::string::npos) << events[0];
  const std::string id = events[0].substr(6, events[0].find(' ', 6) - 6);
  EXPECT_EQ(events[1], "complete " + id);
  ASSERT_EQ(p.stop(), CHORUS_OK);
}

TEST_F(DhtPluginTest, RecordsSurviveARestart) {
  {
    auto p = start();
    ASSERT_EQ(http_wait("PUT", "/api/v1/dht/values?key=%2Fchorus%2Fdurable", "kept").status, 200);
    ASSERT_EQ(p.stop(), CHORUS_OK);
  }
  chorus::testing::FakeHost again;
  again.set_host_info(nlohmann::json{{"agent_id", "t"}, {"state_dir", dir_.string()}}.dump());
  again.provide(CHORUS_P2P_HOST_SERVICE, 1, 0, &p2p_.table, &p2p_, "p2p");
  auto p = chorus::testing::load(&chorus_plugin_entry_v1, again, R"({"probe":{"enabled":false}})");
  ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
  const size_t id = again.http_start("GET", "/api/v1/dht/values?key=%2Fchorus%2Fdurable");
  chorus::testing::FakeResponse r;
  for (int i = 0; i < 1000 && r.status == 0; ++i) {
    again.run_pending();
    r = again.response(id);
    if (r.status == 0) std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "kept");
}

TEST_F(DhtPluginTest, ServiceTableArgumentErrors) {
  auto p = start();
  for (size_t off = offsetof(chorus_dht_v1, put_value); off < sizeof(chorus_dht_v1); off += sizeof(void *))
    EXPECT_NE(*reinterpret_cast<void *const *>(reinterpret_cast<const char *>(dht_) + off), nullptr) << "slot at " << off;
  chorus::ErrorBuffer err;
  Completion c;
  const Bytes bad = bytes_of("/unknown/x"), good = bytes_of("/chorus/x");
  EXPECT_EQ(dht_->put_value(self_, bad.data(), bad.size(), good.data(), 1, 0, &Completion::fn, &c, err.get()),
            CHORUS_E_INVALID_ARG);
  EXPECT_NE(std::string(err.text()).find("namespace"), std::string::npos) << err.text();
  EXPECT_EQ(dht_->put_value(self_, nullptr, 0, good.data(), 1, 0, &Completion::fn, &c, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(dht_->put_value(self_, good.data(), good.size(), good.data(), 1, 0, nullptr, nullptr, err.get()),
            CHORUS_E_INVALID_ARG);
  const Bytes big((1 << 20) + 1, 'x');
  EXPECT_EQ(dht_->put_value(self_, good.data(), good.size(), big.data(), big.size(), 0, &Completion::fn, &c, err.get()),
            CHORUS_E_TOO_LARGE);
  const Bytes long_key(CHORUS_DHT_KEY_MAX + 1, 'k');
  EXPECT_EQ(dht_->get_value(self_, long_key.data(), long_key.size(), 0, &Completion::fn, &c, err.get()),
            CHORUS_E_INVALID_ARG);
  EXPECT_EQ(dht_->provide(self_, good.data(), 0, 0, &Completion::fn, &c, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(dht_->find_peer(self_, good.data(), good.size(), 0, &Completion::fn, &c, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(dht_->routing_json(self_, nullptr, err.get()), CHORUS_E_INVALID_ARG);
  chorus_buf buf{};
  ASSERT_EQ(dht_->routing_json(self_, &buf, err.get()), CHORUS_OK);
  EXPECT_NE(std::string(buf.data, buf.len).find("\"mode\""), std::string::npos);
  buf.release(&buf);
  EXPECT_EQ(c.calls, 0) << "no completion after an argument error";
  ASSERT_EQ(p.stop(), CHORUS_OK);
  EXPECT_EQ(dht_->get_value(self_, good.data(), good.size(), 0, &Completion::fn, &c, err.get()), CHORUS_E_UNAVAILABLE);
}

TEST_F(DhtPluginTest, ServerAnswersRequestsInOrderAndResetsBadFrames) {
  auto p = start();
  const Key remote_key(7);
  const PeerId remote = remote_key.id();
  const std::string proto = "/ipfs/kad/1.0.0";
  auto h = p2p_.open_inbound(101, remote, proto);
  // Two requests in one write: PING, then GET_VALUE for a key nobody stored.
  Message ping;
  ping.type = MessageType::kPing;
  Message get;
  get.type = MessageType::kGetValue;
  get.key = bytes_of("/chorus/none");
  Bytes both = encode_frame(ping);
  const Bytes second = encode_frame(get);
  both.insert(both.end(), second.begin(), second.end());
  h.on_data(h.arg, 101, both.data(), both.size());
  ASSERT_TRUE(p2p_.wait([&] {
    size_t n = 0;
    for (const auto &[s, b] : p2p_.writes) n += s == 101;
    return n >= 2;
  }));
  const auto out = p2p_.written(101);
  Limits limits;
  std::string why;
  uint64_t len = 0;
  size_t used = 0;
  ASSERT_EQ(p2p::read_uvarint(BytesView(out[0]), len, used), p2p::VarintStatus::ok);
  auto r1 = decode_message(BytesView(out[0]).subspan(used), limits, &why);
  ASSERT_TRUE(r1) << why;
  EXPECT_EQ(r1->type, MessageType::kPing);
  ASSERT_EQ(p2p::read_uvarint(BytesView(out[1]), len, used), p2p::VarintStatus::ok);
  auto r2 = decode_message(BytesView(out[1]).subspan(used), limits, &why);
  ASSERT_TRUE(r2) << why;
  EXPECT_EQ(r2->type, MessageType::kGetValue);
  EXPECT_FALSE(r2->record);

  // A PUT_VALUE of a valid /pk/ record is stored and echoed.
  // (A /pk/ record: the PublicKey protobuf of the peer the key names.)
  Bytes pk(36);  // PublicKey{Type: Ed25519, Data: pk}
  const uint8_t header[4] = {0x08, 0x01, 0x12, 0x20};
  std::memcpy(pk.data(), header, 4);
  std::memcpy(pk.data() + 4, remote_key.pk, 32);
  Bytes pk_key = bytes_of("/pk/");
  pk_key.insert(pk_key.end(), remote.bytes().begin(), remote.bytes().end());
  Message put;
  put.type = MessageType::kPutValue;
  put.key = pk_key;
  put.record = Record{pk_key, pk, ""};
  const Bytes put_frame = encode_frame(put);
  h.on_data(h.arg, 101, put_frame.data(), put_frame.size());
  ASSERT_TRUE(p2p_.wait([&] {
    size_t n = 0;
    for (const auto &[s, b] : p2p_.writes) n += s == 101;
    return n >= 3;
  }));
  ASSERT_EQ(p2p::read_uvarint(BytesView(p2p_.written(101)[2]), len, used), p2p::VarintStatus::ok);
  auto echo = decode_message(BytesView(p2p_.written(101)[2]).subspan(used), limits, &why);
  ASSERT_TRUE(echo) << why;
  EXPECT_EQ(echo->type, MessageType::kPutValue);
  ASSERT_TRUE(echo->record);
  EXPECT_EQ(echo->record->value, pk);

  // Garbage resets the stream (and only that stream).
  auto h2 = p2p_.open_inbound(102, remote, proto);
  const Bytes garbage = {0x05, 0xff, 0xff, 0xff, 0xff, 0xff};
  h2.on_data(h2.arg, 102, garbage.data(), garbage.size());
  EXPECT_TRUE(p2p_.wait([&] { return std::find(p2p_.resets.begin(), p2p_.resets.end(), 102u) != p2p_.resets.end(); }));
  // A length prefix beyond the frame limit resets at once, before the bytes arrive.
  auto h3 = p2p_.open_inbound(103, remote, proto);
  const Bytes huge = {0x80, 0x80, 0x80, 0x20};  // uvarint(64 MiB)
  h3.on_data(h3.arg, 103, huge.data(), huge.size());
  EXPECT_TRUE(p2p_.wait([&] { return std::find(p2p_.resets.begin(), p2p_.resets.end(), 103u) != p2p_.resets.end(); }));
  EXPECT_FALSE(p2p_.was_reset(101));
  for (auto *hh : {&h, &h2, &h3}) hh->on_closed(hh->arg, hh == &h ? 101 : hh == &h2 ? 102 : 103, CHORUS_OK, "done");
  ASSERT_EQ(p.stop(), CHORUS_OK);
}

TEST_F(DhtPluginTest, RoleEncryptedStoreAndRetrieve) {
  // This node holds the "dev" key; "ops" is a role held elsewhere (only its recipient is configured).
  Keyring::generate_role(dir_ / "dht", "dev", Authority::kCoordination);
  const auto ops = age::X25519Identity::generate();
  auto p = start(R"({"probe":{"enabled":false},"roles":{"ops":{"recipient":")" + ops.recipient().to_string() +
                 R"(","authority":"decision"}}})");
  const std::string secret = "the plan, not for everyone";
  auto run = [&](auto &&call) {
    auto c = std::make_unique<Completion>();
    chorus::ErrorBuffer err;
    const chorus_status st = call(c.get(), err.get());
    EXPECT_EQ(st, CHORUS_OK) << err.text();
    if (st == CHORUS_OK) {
      EXPECT_TRUE(c->wait());
    }
    return c;
  };
  auto stored = run([&](Completion *c, chorus_error *err) {
    return dht_->store(self_, "plan", "dev", reinterpret_cast<const uint8_t *>(secret.data()), secret.size(), 0,
                       &Completion::fn, c, err);
  });
  ASSERT_EQ(stored->status, CHORUS_OK) << stored->message;
  uint8_t h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, reinterpret_cast<const uint8_t *>(secret.data()), secret.size());
  std::string hex;
  for (uint8_t b : h) hex += "0123456789abcdef"[b >> 4], hex += "0123456789abcdef"[b & 15];
  EXPECT_EQ(std::string(stored->data.begin(), stored->data.end()), hex);
  auto back = run([&](Completion *c, chorus_error *err) { return dht_->retrieve(self_, "plan", 0, &Completion::fn, c, err); });
  ASSERT_EQ(back->status, CHORUS_OK) << back->message;
  EXPECT_EQ(std::string(back->data.begin(), back->data.end()), secret);
  // What is stored under the content key is an age file, not the plaintext.
  auto raw = run([&](Completion *c, chorus_error *err) {
    const Bytes k = bytes_of("/chorus/content/plan");
    return dht_->get_value(self_, k.data(), k.size(), 0, &Completion::fn, c, err);
  });
  ASSERT_EQ(raw->status, CHORUS_OK);
  EXPECT_EQ(std::string(raw->data.begin(), raw->data.begin() + 21), "age-encryption.org/v1");

  // Content for a role whose key is not here: stored, but not readable here.
  auto for_ops = run([&](Completion *c, chorus_error *err) {
    return dht_->store(self_, "ops-only", "ops", reinterpret_cast<const uint8_t *>("x"), 1, 0, &Completion::fn, c, err);
  });
  ASSERT_EQ(for_ops->status, CHORUS_OK) << for_ops->message;
  auto denied = run([&](Completion *c, chorus_error *err) { return dht_->retrieve(self_, "ops-only", 0, &Completion::fn, c, err); });
  EXPECT_EQ(denied->status, CHORUS_E_DHT_NOT_AUTHORISED);
  EXPECT_NE(denied->message.find("ops"), std::string::npos) << denied->message;
  EXPECT_TRUE(denied->data.empty());

  // Metadata that does not match the content: an integrity error, never the bytes.
  const std::string bad_meta = R"({"role":"dev","size":3,"sha256":")" + std::string(64, '0') + R"(","created":1,"author":"x"})";
  auto put = run([&](Completion *c, chorus_error *err) {
    const Bytes k = bytes_of("/chorus/content-meta/plan");
    return dht_->put_value(self_, k.data(), k.size(), reinterpret_cast<const uint8_t *>(bad_meta.data()), bad_meta.size(), 0,
                           &Completion::fn, c, err);
  });
  ASSERT_EQ(put->status, CHORUS_OK);
  auto tampered = run([&](Completion *c, chorus_error *err) { return dht_->retrieve(self_, "plan", 0, &Completion::fn, c, err); });
  EXPECT_EQ(tampered->status, CHORUS_E_DHT_INTEGRITY) << tampered->message;
  EXPECT_TRUE(tampered->data.empty());

  chorus::ErrorBuffer err;
  Completion never;
  EXPECT_EQ(dht_->store(self_, "k", "nobody", reinterpret_cast<const uint8_t *>("x"), 1, 0, &Completion::fn, &never, err.get()),
            CHORUS_E_INVALID_ARG);
  EXPECT_NE(std::string(err.text()).find("nobody"), std::string::npos) << err.text();
  EXPECT_EQ(dht_->retrieve(self_, "", 0, &Completion::fn, &never, err.get()), CHORUS_E_INVALID_ARG);
  ASSERT_EQ(p.stop(), CHORUS_OK);
  EXPECT_EQ(never.calls, 0);

  // The audit log: one line per store and retrieve, 0600, never the content.
  const auto log_path = dir_ / "dht" / "audit.jsonl";
  ASSERT_TRUE(std::filesystem::exists(log_path));
  EXPECT_EQ(std::filesystem::status(log_path).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  std::ifstream in(log_path);
  std::string line, all;
  size_t stores = 0, retrieves = 0;
  while (std::getline(in, line)) {
    all += line + "\n";
    auto j = nlohmann::json::parse(line);
    stores += j["op"] == "store";
    retrieves += j["op"] == "retrieve";
  }
  EXPECT_EQ(stores, 2u) << all;
  EXPECT_EQ(retrieves, 3u) << all;
  EXPECT_EQ(all.find(secret), std::string::npos) << all;
  EXPECT_NE(all.find("not_authorised"), std::string::npos) << all;
  EXPECT_NE(all.find("integrity"), std::string::npos) << all;
}

// The p2p host reports that `remote` identified and speaks kad (at a made-up address).
void identify_kad_peer(FakeP2P &p2p, const PeerId &remote) {
  const std::string text = remote.to_base58();
  const std::string ident = R"({"protocols":["/ipfs/kad/1.0.0"],"listen_addrs":["/ip4/127.0.0.1/tcp/5555"]})";
  chorus_p2p_event ev{};
  ev.struct_size = sizeof ev;
  ev.type = CHORUS_P2P_EVENT_IDENTIFIED;
  ev.peer = remote.bytes().data();
  ev.peer_len = remote.bytes().size();
  ev.peer_text = text.c_str();
  ev.addr = "";
  ev.identify_json = ident.c_str();
  p2p.event_fn(p2p.event_arg, &ev);
}

TEST_F(DhtPluginTest, PeersThatAnswerGarbageOrNothingDoNotStallOperations) {
  auto p = start(R"({"probe":{"enabled":false},"query_timeout_ms":200,"lookup_deadline_ms":2000})");
  // A remote server identifies; it answers every request with bytes that are no frame at all.
  {
    std::lock_guard lk(p2p_.mu);
    p2p_.reply = {0x03, 0xff, 0xff, 0xff};
  }
  const Key remote_key(9);
  const PeerId remote = remote_key.id();
  ASSERT_NE(p2p_.event_fn, nullptr);
  identify_kad_peer(p2p_, remote);
  // The bootstrap lookup asks it, gets garbage, and drops it from the routing table.
  ASSERT_TRUE(p2p_.wait([&] { return p2p_.opens >= 1 && !p2p_.resets.empty(); }));
  auto routing = [&] { return nlohmann::json::parse(http_wait("GET", "/api/v1/dht/routing").body); };
  for (int i = 0; i < 500 && routing()["peers"] != 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(routing()["peers"], 0);

  // Identified again, now silent: a get runs into the per-peer timeout and ends within its deadline.
  {
    std::lock_guard lk(p2p_.mu);
    p2p_.reply.clear();
  }
  identify_kad_peer(p2p_, remote);
  for (int i = 0; i < 500 && routing()["peers"] != 1; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(routing()["peers"], 1);
  const auto started = std::chrono::steady_clock::now();
  auto r = http_wait("GET", "/api/v1/dht/values?key=%2Fchorus%2Fnowhere");
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_LT(took, 1500ms) << "a silent peer costs one query_timeout_ms, not the whole deadline";
  ASSERT_EQ(p.stop(), CHORUS_OK);
}

// A kad peer identifies; the bootstrap lookup gets no answer (a partition) and drops it from the table.
// Returns its id. The fake answers nothing until the test sets p2p_.reply.
PeerId identify_silent_peer(FakeP2P &p2p, uint8_t seed, const std::function<int()> &routing_peers) {
  const PeerId remote = Key(seed).id();
  EXPECT_NE(p2p.event_fn, nullptr);
  identify_kad_peer(p2p, remote);
  EXPECT_TRUE(p2p.wait([&] { return p2p.opens >= 1 && !p2p.resets.empty(); }));
  for (int i = 0; i < 500 && routing_peers() != 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(routing_peers(), 0);
  return remote;
}

Bytes find_node_reply() {
  Message m;
  m.type = MessageType::kFindNode;
  return encode_frame(m);
}

// The partition heals without a new connection (no identify): the dropped peer is asked again and
// re-enters the table once it answers (before: it stayed out until it identified again).
TEST_F(DhtPluginTest, PeerDroppedAfterTimeoutsReturnsOnceItAnswers) {
  auto p = start(R"({"probe":{"enabled":false},"query_timeout_ms":200,"lookup_deadline_ms":2000,)"
                 R"("recheck_interval_ms":100,"recheck_max_interval_ms":400})");
  auto routing = [&] { return nlohmann::json::parse(http_wait("GET", "/api/v1/dht/routing").body)["peers"].get<int>(); };
  identify_silent_peer(p2p_, 9, routing);
  // Still partitioned: the rechecks fail too (and back off).
  auto no_answer = [&] { return host_.metric_value("chorus_dht_rechecks_total", {"no_answer"}).value_or(0); };
  poll_clocked([&] { return no_answer() >= 1; });
  EXPECT_GE(no_answer(), 1);
  EXPECT_EQ(routing(), 0);
  EXPECT_EQ(host_.metric_value("chorus_dht_routing_evictions_total", {"no_answer"}).value_or(0), 1);
  // Healed: it answers the next recheck.
  {
    std::lock_guard lk(p2p_.mu);
    p2p_.reply = find_node_reply();
  }
  poll_clocked([&] { return routing() == 1; });
  EXPECT_EQ(routing(), 1);
  EXPECT_EQ(host_.metric_value("chorus_dht_rechecks_total", {"readded"}).value_or(0), 1);
  ASSERT_EQ(p.stop(), CHORUS_OK);
}

// A dropped peer that calls us is asked at once (not after its backoff), and at most once per
// recheck_interval_ms however many requests it sends.
TEST_F(DhtPluginTest, RequestsFromADroppedPeerAreRateLimitedChecks) {
  auto p = start(R"({"probe":{"enabled":false},"query_timeout_ms":200,"lookup_deadline_ms":2000,)"
                 R"("recheck_interval_ms":3600000,"recheck_max_interval_ms":3600000})");
  auto routing = [&] { return nlohmann::json::parse(http_wait("GET", "/api/v1/dht/routing").body)["peers"].get<int>(); };
  auto metric = [&](const char *result) { return host_.metric_value("chorus_dht_rechecks_total", {result}).value_or(0); };
  const PeerId remote = identify_silent_peer(p2p_, 10, routing);
  const int opens_before = [&] {
    std::lock_guard lk(p2p_.mu);
    return p2p_.opens;
  }();
  Message ping;
  ping.type = MessageType::kPing;
  const Bytes frame = encode_frame(ping);
  auto request = [&](uint64_t stream) {
    auto h = p2p_.open_inbound(stream, remote, "/ipfs/kad/1.0.0");
    h.on_data(h.arg, stream, frame.data(), frame.size());
    EXPECT_TRUE(p2p_.wait([&] {
      for (const auto &[s, b] : p2p_.writes)
        if (s == stream) return true;
      return false;
    }));
    h.on_closed(h.arg, stream, CHORUS_OK, "done");  // the caller hangs up after the answer
  };
  // Its first request starts a check at once (the backoff after the lookup's failure is an hour); it
  // is still unreachable, so the check fails.
  request(301);
  ASSERT_TRUE(p2p_.wait([&] { return p2p_.opens == opens_before + 1; }));
  poll_clocked([&] { return metric("no_answer") >= 1; });
  ASSERT_EQ(metric("no_answer"), 1);
  // Reachable now, but it was checked within recheck_interval_ms: more requests start no check.
  {
    std::lock_guard lk(p2p_.mu);
    p2p_.reply = find_node_reply();
  }
  request(302);
  request(303);
  EXPECT_EQ(routing(), 0);
  EXPECT_EQ(routing(), 0);
  {
    std::lock_guard lk(p2p_.mu);
    EXPECT_EQ(p2p_.opens, opens_before + 1) << "one check per recheck_interval_ms";
  }
  EXPECT_EQ(metric("readded"), 0);
  ASSERT_EQ(p.stop(), CHORUS_OK);
}

// A connected kad peer that failed every recheck is scheduled again while the table is short of the
// connected kad peers (no identify, no request from it).
TEST_F(DhtPluginTest, ConnectedKadPeerIsRecheckedAfterItsBackoffRanOut) {
  auto p = start(R"({"probe":{"enabled":false},"query_timeout_ms":100,"lookup_deadline_ms":2000,)"
                 R"("recheck_interval_ms":100,"recheck_max_interval_ms":200})");
  p2p_.connected = true;
  auto routing = [&] { return nlohmann::json::parse(http_wait("GET", "/api/v1/dht/routing").body)["peers"].get<int>(); };
  identify_silent_peer(p2p_, 11, routing);
  auto gave_up = [&] { return host_.metric_value("chorus_dht_rechecks_total", {"gave_up"}).value_or(0); };
  poll_clocked([&] { return gave_up() >= 1; });
  ASSERT_GE(gave_up(), 1);
  {
    std::lock_guard lk(p2p_.mu);
    p2p_.reply = find_node_reply();
  }
  poll_clocked([&] { return routing() == 1; });
  EXPECT_EQ(routing(), 1);
  ASSERT_EQ(p.stop(), CHORUS_OK);
}

// A put while the only peer is out of reach is stored here alone ("replicas": 0); once the peer is
// back in the table the node puts it again without waiting for the republish interval.
TEST_F(DhtPluginTest, PutsThatReachedNobodyArePutAgainWhenAPeerReturns) {
  auto p = start(R"({"probe":{"enabled":false},"query_timeout_ms":200,"lookup_deadline_ms":2000,)"
                 R"("recheck_interval_ms":100,"recheck_max_interval_ms":400})");
  auto routing = [&] { return nlohmann::json::parse(http_wait("GET", "/api/v1/dht/routing").body)["peers"].get<int>(); };
  identify_silent_peer(p2p_, 12, routing);
  auto r = http_wait("PUT", "/api/v1/dht/values?key=%2Fchorus%2Fheal", "during the partition");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["replicas"], 0) << r.body;
  EXPECT_EQ(host_.metric_value("chorus_dht_catchup_puts_total", {"queued"}).value_or(0), 1);
  {
    std::lock_guard lk(p2p_.mu);
    p2p_.echo = true;  // healed: it answers FIND_NODE and takes PUT_VALUE
  }
  auto replicated = [&] { return host_.metric_value("chorus_dht_catchup_puts_total", {"replicated"}).value_or(0); };
  poll_clocked([&] { return replicated() >= 1; });
  EXPECT_EQ(replicated(), 1);
  EXPECT_EQ(routing(), 1);
  // It went out as a PUT_VALUE for the key.
  bool put_seen = false;
  {
    std::lock_guard lk(p2p_.mu);
    for (const auto &[stream, frame] : p2p_.writes) {  // only the plugin's requests carry PUT_VALUE
      uint64_t len = 0;
      size_t used = 0;
      if (p2p::read_uvarint(BytesView(frame), len, used) != p2p::VarintStatus::ok) continue;
      Limits limits;
      auto m = decode_message(BytesView(frame).subspan(used), limits, nullptr);
      put_seen |= m && m->type == MessageType::kPutValue && m->key == bytes_of("/chorus/heal");
    }
  }
  EXPECT_TRUE(put_seen);
  // A later put reaches the peer at once and is not queued.
  r = http_wait("PUT", "/api/v1/dht/values?key=%2Fchorus%2Fafter", "after the heal");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["replicas"], 1) << r.body;
  EXPECT_EQ(host_.metric_value("chorus_dht_catchup_puts_total", {"queued"}).value_or(0), 1);
  ASSERT_EQ(p.stop(), CHORUS_OK);
}

TEST_F(DhtPluginTest, ClientModeDoesNotServe) {
  auto p = start(R"({"mode":"client","probe":{"enabled":false}})");
  EXPECT_EQ(p2p_.accept.count("/ipfs/kad/1.0.0"), 0u);
  auto r = http_wait("GET", "/api/v1/dht/routing");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(nlohmann::json::parse(r.body)["mode"], "client");
}

}  // namespace
}  // namespace chorus::dht

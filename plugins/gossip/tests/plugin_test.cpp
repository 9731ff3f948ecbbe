// The plugin through its C vtable on the SDK's FakeHost, with a fake chorus.p2p.host: config
// validation, the chorus.pubsub v1 table's argument errors, the envelope a publish produces,
// validators and the exactly-once unsubscribe rule, and the streams: our outbound stream carries
// our subscriptions, a signed message from a peer is delivered, an oversize frame resets the stream.
#include <gtest/gtest.h>
#include <sodium.h>

#include <chorus/config_schema.hpp>
#include <chorus/services/p2p_host_v1.h>
#include <chorus/services/pubsub_v1.h>
#include <chorus/testing/fake_host.hpp>

#include <condition_variable>
#include <future>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

#include "envelope.hpp"
#include "http_routes.hpp"
#include "rpc.hpp"
#include "settings.hpp"
#include "signature.hpp"
#include "wire/identity.hpp"
#include "wire/peer_record.hpp"
#include "wire/varint.hpp"

extern "C" const chorus_plugin_descriptor *chorus_plugin_entry_v1(const chorus_abi_info *) noexcept;

namespace chorus::gossip {
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
  Bytes public_key_protobuf() const {  // PublicKey{Type: Ed25519, Data: pk}
    Bytes b = {0x08, 0x01, 0x12, 0x20};
    b.insert(b.end(), pk, pk + 32);
    return b;
  }
};

// A fake p2p host: records what the plugin does, lets the test play the remote side.
struct FakeP2P {
  std::mutex mu;
  std::condition_variable cv;
  Key key{1};
  chorus_p2p_event_fn event_fn = nullptr;
  void *event_arg = nullptr;
  std::map<std::string, std::pair<chorus_p2p_accept_fn, void *>> accept;
  struct Open {
    Bytes peer;
    std::vector<std::string> protocols;
    chorus_p2p_stream_handler handler;
    chorus_p2p_open_fn fn;
    void *arg;
  };
  std::vector<Open> opens;
  std::vector<std::pair<uint64_t, Bytes>> writes;
  std::vector<uint64_t> resets;
  std::set<uint64_t> busy;  // streams whose send queue is full (write returns CHORUS_E_BUSY)
  int busy_refusals = 0;
  std::set<Bytes> strangers;  // peers is_connected denies (every other peer counts as connected)
  std::map<Bytes, std::vector<std::string>> added_addrs;  // add_addrs calls, by peer
  std::vector<std::string> connects;                     // connect targets
  std::vector<std::pair<uint64_t, int>> pauses;          // set_read_paused calls: (stream, paused)
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
    table.local_public_key = [](void *s, uint8_t *out, size_t cap, size_t *len) {
      const Bytes k = self(s)->key.public_key_protobuf();
      if (cap < k.size()) return CHORUS_E_INVALID_ARG;
      std::memcpy(out, k.data(), k.size());
      *len = k.size();
      return CHORUS_OK;
    };
    table.sign = [](void *s, const uint8_t *data, size_t len, uint8_t sig[64]) {
      crypto_sign_detached(sig, nullptr, data, len, self(s)->key.sk);
      return CHORUS_OK;
    };
    table.list_peers_json = [](void *, chorus_buf *out, chorus_error *) {
      static const char kEmpty[] = "[]";
      *out = chorus_buf{kEmpty, 2, nullptr, nullptr};
      return CHORUS_OK;
    };
    table.is_connected = [](void *s, const uint8_t *peer, size_t len) {
      std::lock_guard lk(self(s)->mu);
      return self(s)->strangers.count(Bytes(peer, peer + len)) != 0 ? 0 : 1;
    };
    table.connect = [](void *s, const char *target, size_t len, uint32_t, chorus_p2p_connect_fn, void *, chorus_error *) {
      std::lock_guard lk(self(s)->mu);
      self(s)->connects.emplace_back(target, len);
      self(s)->cv.notify_all();
      return CHORUS_E_UNAVAILABLE;
    };
    table.add_addrs = [](void *s, const uint8_t *peer, size_t len, const char *const *addrs, size_t count, uint64_t,
                         chorus_error *) {
      std::lock_guard lk(self(s)->mu);
      auto &list = self(s)->added_addrs[Bytes(peer, peer + len)];
      for (size_t i = 0; i < count; ++i) list.emplace_back(addrs[i]);
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
    table.open_stream = [](void *s, const uint8_t *peer, size_t peer_len, const char *const *protocols, size_t count,
                           const chorus_p2p_stream_handler *h, uint32_t, chorus_p2p_open_fn fn, void *arg, chorus_error *) {
      auto *f = self(s);
      std::lock_guard lk(f->mu);
      f->opens.push_back({Bytes(peer, peer + peer_len), std::vector<std::string>(protocols, protocols + count), *h, fn, arg});
      f->cv.notify_all();
      return CHORUS_OK;
    };
    table.write = [](void *s, uint64_t stream, const uint8_t *data, size_t len) {
      auto *f = self(s);
      std::lock_guard lk(f->mu);
      if (f->busy.count(stream) != 0) {
        ++f->busy_refusals;
        f->cv.notify_all();
        return CHORUS_E_BUSY;
      }
      f->writes.emplace_back(stream, Bytes(data, data + len));
      f->cv.notify_all();
      return CHORUS_OK;
    };
    table.close_write = [](void *, uint64_t) { return CHORUS_OK; };
    table.reset = [](void *s, uint64_t stream) {
      auto *f = self(s);
      std::lock_guard lk(f->mu);
      f->resets.push_back(stream);
      f->cv.notify_all();
      return CHORUS_OK;
    };
    table.set_read_paused = [](void *s, uint64_t stream, int paused) {
      std::lock_guard lk(self(s)->mu);
      self(s)->pauses.emplace_back(stream, paused);
      self(s)->cv.notify_all();
      return CHORUS_OK;
    };
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
};

// What a handler saw, copied out of the callback.
struct Seen {
  std::string topic, type, from_text, received_from, data;
  Bytes from, seqno, id;
  bool local = false;
};

struct Inbox {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Seen> got;
  static void fn(void *arg, const chorus_pubsub_message *m) {
    auto *in = static_cast<Inbox *>(arg);
    Seen s;
    s.topic = m->topic;
    s.type = m->type;
    s.from_text = m->from_text;
    s.received_from = m->received_from;
    s.data.assign(reinterpret_cast<const char *>(m->data), m->data_len);
    if (m->from != nullptr) s.from.assign(m->from, m->from + m->from_len);
    if (m->seqno != nullptr) s.seqno.assign(m->seqno, m->seqno + m->seqno_len);
    s.id.assign(m->message_id, m->message_id + m->message_id_len);
    s.local = m->local != 0;
    std::lock_guard lk(in->mu);
    in->got.push_back(std::move(s));
    in->cv.notify_all();
  }
  bool wait(size_t n) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, 10s, [&] { return got.size() >= n; });
  }
  size_t size() {
    std::lock_guard lk(mu);
    return got.size();
  }
};

class GossipPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    host_.provide(CHORUS_P2P_HOST_SERVICE, 1, 0, &p2p_.table, &p2p_, "p2p");
  }

  chorus::testing::PluginHandle start(const std::string &cfg = R"({"probe":{"enabled":false}})") {
    auto p = chorus::testing::load(&chorus_plugin_entry_v1, host_, cfg);
    EXPECT_EQ(p.status(), CHORUS_OK) << p.message();
    chorus::ServiceTable t;
    EXPECT_EQ(p.get_service(CHORUS_PUBSUB_SERVICE, 1, &t), CHORUS_OK);
    ps_ = static_cast<const chorus_pubsub_v1 *>(t.table);
    self_ = t.self;
    return p;
  }

  chorus::testing::FakeHost host_;
  FakeP2P p2p_;
  const chorus_pubsub_v1 *ps_ = nullptr;
  void *self_ = nullptr;
};

TEST(GossipSettings, SchemaDefaultsAreTheDocumentedOnes) {
  const auto schema = nlohmann::json::parse(kConfigSchema);
  ASSERT_FALSE(chorus::config_schema::check_schema(schema)) << *chorus::config_schema::check_schema(schema);
  std::string full;
  ASSERT_FALSE(chorus::config_schema::prepare_plugin_config(schema, "gossip", "{}", &full));
  const Settings s = parse_settings(full);
  EXPECT_EQ(s.signature_policy, SignaturePolicy::kStrictSign);
  EXPECT_EQ(s.router.message_id_fn, MessageIdFn::kFromSeqno);
  EXPECT_EQ(s.max_message_bytes, 1u << 20);
  EXPECT_EQ(s.peer_queue_bytes, 4u << 20);
  EXPECT_EQ(s.topics, (std::vector<std::string>{CHORUS_PUBSUB_TOPIC_COORDINATION, CHORUS_PUBSUB_TOPIC_HMMM,
                                                CHORUS_PUBSUB_TOPIC_CONTEXT_FEEDBACK}));
  EXPECT_EQ(s.max_topics, 1000u);
  EXPECT_EQ(s.hop_limit, 5u);
  const RouterParams defaults;
  EXPECT_EQ(s.router.d, 6);
  EXPECT_EQ(s.router.d_lo, 4);
  EXPECT_EQ(s.router.d_hi, 12);
  EXPECT_EQ(s.router.d_lazy, 6);
  EXPECT_EQ(s.router.heartbeat_ms, 1000u);
  EXPECT_EQ(s.router.fanout_ttl_ms, 60000u);
  EXPECT_EQ(s.router.mcache_len, 5);
  EXPECT_EQ(s.router.mcache_gossip, 3);
  EXPECT_EQ(s.router.seen_ttl_ms, 120000u);
  EXPECT_EQ(s.router.prune_backoff_ms, 60000u);
  EXPECT_TRUE(s.router.flood_publish);
  EXPECT_EQ(s.router.validate_queue, 256u);
  EXPECT_EQ(s.router.validate_throttle, 1024u);
  EXPECT_EQ(s.router.max_ihave_length, defaults.max_ihave_length);
  const PeerScoreThresholds t;
  EXPECT_EQ(s.thresholds.gossip, t.gossip);
  EXPECT_EQ(s.thresholds.publish, t.publish);
  EXPECT_EQ(s.thresholds.graylist, t.graylist);
  const TopicScoreParams tp;
  EXPECT_EQ(s.score.default_topic.invalid_message_deliveries_weight, tp.invalid_message_deliveries_weight);
  EXPECT_EQ(s.score.default_topic.time_in_mesh_weight, tp.time_in_mesh_weight);
  EXPECT_TRUE(s.probe.enabled);
  EXPECT_EQ(s.probe.interval_ms, 10000u);
  EXPECT_EQ(s.probe.timeout_ms, 3000u);
  EXPECT_EQ(s.max_rpc_bytes(), (1u << 20) + (64u << 10));

  std::string off;
  ASSERT_FALSE(chorus::config_schema::prepare_plugin_config(
      schema, "gossip", R"({"scoring":{"enabled":false},"message_id":"key_seqno","signature_policy":"strict_no_sign"})", &off));
  const Settings n = parse_settings(off);
  EXPECT_EQ(n.score.default_topic.topic_weight, 0);
  EXPECT_EQ(n.score.behaviour_penalty_weight, 0);
  EXPECT_EQ(n.thresholds.graylist, -80);  // still parsed
  EXPECT_EQ(n.router.message_id_fn, MessageIdFn::kKeySeqno);
  EXPECT_EQ(n.signature_policy, SignaturePolicy::kStrictNoSign);
}

TEST_F(GossipPluginTest, RefusesBadConfigs) {
  for (const char *bad : {R"({"bogus":1})", R"({"signature_policy":"sometimes"})", R"({"router":{"d":3,"d_lo":4}})",
                          R"({"router":{"d_hi":5}})", R"({"scoring":{"thresholds":{"publish":-90}}})",
                          R"({"probe":{"interval_ms":1000,"timeout_ms":1000}})", R"({"max_message_bytes":1})",
                          R"({"topics":[""]})", R"({"router":{"mcache_gossip":9}})"}) {
    chorus::testing::FakeHost host;
    auto p = chorus::testing::load(&chorus_plugin_entry_v1, host, bad);
    EXPECT_EQ(p.status(), CHORUS_E_CONFIG) << bad << ": " << p.message();
    EXPECT_NE(p.message().find("gossip"), std::string::npos) << p.message();
  }
}

TEST_F(GossipPluginTest, ServiceTableArgumentErrors) {
  auto p = start();
  for (size_t off = offsetof(chorus_pubsub_v1, subscribe); off < sizeof(chorus_pubsub_v1); off += sizeof(void *))
    EXPECT_NE(*reinterpret_cast<void *const *>(reinterpret_cast<const char *>(ps_) + off), nullptr) << "slot at " << off;
  chorus::ErrorBuffer err;
  Inbox inbox;
  uint64_t sub = 0;
  EXPECT_EQ(ps_->subscribe(self_, nullptr, &Inbox::fn, &inbox, &sub, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(ps_->subscribe(self_, "", &Inbox::fn, &inbox, &sub, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(err.code, CHORUS_E_INVALID_ARG);
  EXPECT_NE(std::string(err.text()).find("empty"), std::string::npos) << err.text();
  const std::string long_topic(CHORUS_PUBSUB_TOPIC_MAX + 1, 't');
  EXPECT_EQ(ps_->subscribe(self_, long_topic.c_str(), &Inbox::fn, &inbox, &sub, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(ps_->subscribe(self_, "t", nullptr, &inbox, &sub, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(ps_->join(self_, nullptr, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(ps_->leave(self_, "", err.get()), CHORUS_E_INVALID_ARG);
  uint8_t id[64];
  size_t id_len = 0;
  EXPECT_EQ(ps_->publish(self_, "t", nullptr, nullptr, 0, id, sizeof id, &id_len, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(ps_->publish(self_, "t", "", nullptr, 0, id, sizeof id, &id_len, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(ps_->publish(self_, "t", "task_claim", "{nope", 5, id, sizeof id, &id_len, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(ps_->publish(self_, "t", "task_claim", nullptr, 0, id, 32, &id_len, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(ps_->publish(self_, "t", "task_claim", nullptr, 3, id, sizeof id, &id_len, err.get()), CHORUS_E_INVALID_ARG);
  const Bytes big((1 << 20) + 1, 'x');
  EXPECT_EQ(ps_->publish_raw(self_, "t", big.data(), big.size(), id, sizeof id, &id_len, err.get()), CHORUS_E_TOO_LARGE);
  EXPECT_EQ(err.code, CHORUS_E_TOO_LARGE);
  EXPECT_EQ(ps_->publish_raw(self_, "t", nullptr, 4, id, sizeof id, &id_len, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(ps_->unsubscribe(self_, 12345), CHORUS_E_NOT_FOUND);
  EXPECT_EQ(ps_->remove_validator(self_, 12345), CHORUS_E_NOT_FOUND);
  uint64_t vid = 0;
  EXPECT_EQ(ps_->add_validator(self_, "t", nullptr, nullptr, &vid, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(ps_->topics_json(self_, nullptr, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(ps_->peers_json(self_, nullptr, err.get()), CHORUS_E_INVALID_ARG);
  // A valid subscription ends exactly once.
  ASSERT_EQ(ps_->subscribe(self_, "t", &Inbox::fn, &inbox, &sub, err.get()), CHORUS_OK) << err.text();
  EXPECT_EQ(ps_->unsubscribe(self_, sub), CHORUS_OK);
  EXPECT_EQ(ps_->unsubscribe(self_, sub), CHORUS_E_NOT_FOUND);
  // After stop: unavailable, never a crash.
  ASSERT_EQ(p.stop(), CHORUS_OK);
  EXPECT_EQ(ps_->join(self_, "t", err.get()), CHORUS_E_UNAVAILABLE);
  EXPECT_EQ(ps_->publish_raw(self_, "t", big.data(), 3, nullptr, 0, nullptr, err.get()), CHORUS_E_UNAVAILABLE);
}

// SHHH: every local publish goes through host_api.redact (channel pubsub) before it is signed; the
// FakeHost stands in for the sentinel with a literal secret.
TEST_F(GossipPluginTest, PublishRedactsThroughTheHostBeforeSigning) {
  const std::string secret = "sk-proj-NotARealKey0123456789abcdef";
  host_.add_redact_secret(secret);
  auto p = start();
  chorus::ErrorBuffer err;
  Inbox inbox;
  uint64_t sub = 0;
  ASSERT_EQ(ps_->subscribe(self_, "room", &Inbox::fn, &inbox, &sub, err.get()), CHORUS_OK);
  const std::string data = R"({"note":"use )" + secret + R"( please","n":1})";
  ASSERT_EQ(ps_->publish(self_, "room", "task_help_request", data.data(), data.size(), nullptr, 0, nullptr, err.get()),
            CHORUS_OK)
      << err.text();
  const std::string raw = "raw " + secret;
  ASSERT_EQ(ps_->publish_raw(self_, "room", reinterpret_cast<const uint8_t *>(raw.data()), raw.size(), nullptr, 0,
                             nullptr, err.get()),
            CHORUS_OK);
  ASSERT_TRUE(inbox.wait(2));
  auto env = parse_envelope(inbox.got[0].data, nullptr);
  ASSERT_TRUE(env) << inbox.got[0].data;
  EXPECT_EQ(env->data, nlohmann::json::parse(R"({"note":"use [REDACTED] please","n":1})"));
  EXPECT_EQ(inbox.got[1].data, "raw [REDACTED]");
  const auto calls = host_.redactions();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].channel, CHORUS_REDACT_CHANNEL_PUBSUB);
  EXPECT_EQ(calls[0].format, CHORUS_REDACT_JSON);
  EXPECT_EQ(calls[1].channel, CHORUS_REDACT_CHANNEL_PUBSUB);
  EXPECT_EQ(calls[1].format, CHORUS_REDACT_TEXT);
  EXPECT_EQ(host_.outstanding_bufs(), 0u);
}

// A binary raw payload (not UTF-8) is never rewritten, even when it holds secret-shaped bytes.
TEST_F(GossipPluginTest, BinaryRawPublicationsAreNotRedacted) {
  host_.add_redact_secret("sekrit");
  auto p = start();
  chorus::ErrorBuffer err;
  Inbox inbox;
  uint64_t sub = 0;
  ASSERT_EQ(ps_->subscribe(self_, "room", &Inbox::fn, &inbox, &sub, err.get()), CHORUS_OK);
  const std::string raw("\xff\x00sekrit\xc0", 9);
  ASSERT_EQ(ps_->publish_raw(self_, "room", reinterpret_cast<const uint8_t *>(raw.data()), raw.size(), nullptr, 0,
                             nullptr, err.get()),
            CHORUS_OK);
  ASSERT_TRUE(inbox.wait(1));
  EXPECT_EQ(inbox.got[0].data, raw);
  EXPECT_TRUE(host_.redactions().empty());
}

// A host without the slot (ABI 1.0/1.1): the plugin still publishes, unredacted.
TEST_F(GossipPluginTest, PublishDegradesOnAHostWithoutRedact) {
  host_.add_redact_secret("sekrit");
  host_.set_redact_available(false);
  auto p = start();
  chorus::ErrorBuffer err;
  Inbox inbox;
  uint64_t sub = 0;
  ASSERT_EQ(ps_->subscribe(self_, "room", &Inbox::fn, &inbox, &sub, err.get()), CHORUS_OK);
  const std::string raw = "raw sekrit";
  ASSERT_EQ(ps_->publish_raw(self_, "room", reinterpret_cast<const uint8_t *>(raw.data()), raw.size(), nullptr, 0,
                             nullptr, err.get()),
            CHORUS_OK);
  ASSERT_TRUE(inbox.wait(1));
  EXPECT_EQ(inbox.got[0].data, raw);
  EXPECT_TRUE(host_.redactions().empty());
}

TEST_F(GossipPluginTest, PublishBuildsTheEnvelopeAndDeliversLocally) {
  auto p = start();
  chorus::ErrorBuffer err;
  Inbox inbox;
  uint64_t sub = 0;
  ASSERT_EQ(ps_->subscribe(self_, CHORUS_PUBSUB_TOPIC_COORDINATION, &Inbox::fn, &inbox, &sub, err.get()), CHORUS_OK);
  uint8_t id[64];
  size_t id_len = 0;
  const std::string data = R"({"task":"t-1","priority":2})";
  ASSERT_EQ(ps_->publish(self_, CHORUS_PUBSUB_TOPIC_COORDINATION, "task_claim", data.data(), data.size(), id, sizeof id,
                         &id_len, err.get()),
            CHORUS_OK)
      << err.text();
  ASSERT_TRUE(inbox.wait(1));
  const Seen m = inbox.got.at(0);
  EXPECT_TRUE(m.local);
  EXPECT_EQ(m.topic, CHORUS_PUBSUB_TOPIC_COORDINATION);
  EXPECT_EQ(m.type, "task_claim");
  const PeerId me = p2p_.key.id();
  EXPECT_EQ(m.from_text, me.to_base58());
  EXPECT_EQ(m.received_from, me.to_base58());
  EXPECT_EQ(m.from, me.bytes());
  ASSERT_EQ(m.seqno.size(), 8u);
  Bytes expected_id = me.bytes();  // from || seqno
  expected_id.insert(expected_id.end(), m.seqno.begin(), m.seqno.end());
  EXPECT_EQ(m.id, expected_id);
  EXPECT_EQ(Bytes(id, id + id_len), expected_id);
  auto env = parse_envelope(m.data, nullptr);
  ASSERT_TRUE(env) << m.data;
  EXPECT_EQ(env->type, "task_claim");
  EXPECT_EQ(env->from, "fake-agent");  // host_info's agent_id
  EXPECT_EQ(env->data, nlohmann::json::parse(data));
  EXPECT_EQ(env->hop_count, 0u);
  const auto ts = parse_rfc3339_ms(env->timestamp);
  ASSERT_TRUE(ts) << env->timestamp;
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_LE(std::abs(now - *ts), 60000);
  // Raw: delivered with type "" and the bytes as they are; seqnos increase.
  const uint8_t raw[] = {0, 1, 2, 0xff};
  ASSERT_EQ(ps_->publish_raw(self_, CHORUS_PUBSUB_TOPIC_COORDINATION, raw, sizeof raw, nullptr, 0, nullptr, err.get()), CHORUS_OK);
  ASSERT_TRUE(inbox.wait(2));
  EXPECT_EQ(inbox.got[1].type, "");
  EXPECT_EQ(inbox.got[1].data, std::string(reinterpret_cast<const char *>(raw), sizeof raw));
  EXPECT_GT(seqno_value(inbox.got[1].seqno), seqno_value(inbox.got[0].seqno));
  EXPECT_EQ(host_.metric_value("chorus_gossip_messages_published_total", {CHORUS_PUBSUB_TOPIC_COORDINATION}).value_or(0), 2);
  // Topics: the static ones, joined.
  chorus_buf buf{};
  ASSERT_EQ(ps_->topics_json(self_, &buf, err.get()), CHORUS_OK);
  auto topics = nlohmann::json::parse(std::string_view(buf.data, buf.len));
  buf.release(&buf);
  EXPECT_EQ(topics.size(), 3u) << topics;
  for (const auto &t : topics) EXPECT_TRUE(t["subscribed"].get<bool>()) << t;
}

struct Rejecter {
  std::atomic<int> verdict{CHORUS_PUBSUB_REJECT};
  std::atomic<int> calls{0};
  static int fn(void *arg, const chorus_pubsub_message *) {
    auto *r = static_cast<Rejecter *>(arg);
    ++r->calls;
    return r->verdict.load();
  }
};

// A handler that ends its own subscription from inside the call.
struct SelfUnsubscriber {
  const chorus_pubsub_v1 *ps;
  void *self;
  uint64_t sub = 0;
  std::atomic<int> calls{0};
  std::atomic<int> unsubscribe_status{1};
  static void fn(void *arg, const chorus_pubsub_message *) {
    auto *s = static_cast<SelfUnsubscriber *>(arg);
    ++s->calls;
    s->unsubscribe_status = s->ps->unsubscribe(s->self, s->sub);
  }
};

TEST_F(GossipPluginTest, ValidatorsAndUnsubscribeFromInsideAHandler) {
  auto p = start();
  chorus::ErrorBuffer err;
  Rejecter rejecter;
  uint64_t vid = 0;
  ASSERT_EQ(ps_->add_validator(self_, "room", &Rejecter::fn, &rejecter, &vid, err.get()), CHORUS_OK);
  Inbox inbox;
  uint64_t sub = 0;
  ASSERT_EQ(ps_->subscribe(self_, "room", &Inbox::fn, &inbox, &sub, err.get()), CHORUS_OK);
  const uint8_t one[] = {'1'};
  EXPECT_EQ(ps_->publish_raw(self_, "room", one, 1, nullptr, 0, nullptr, err.get()), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(rejecter.calls.load(), 1);
  ASSERT_EQ(ps_->remove_validator(self_, vid), CHORUS_OK);
  ASSERT_EQ(ps_->publish_raw(self_, "room", one, 1, nullptr, 0, nullptr, err.get()), CHORUS_OK) << err.text();
  ASSERT_TRUE(inbox.wait(1));
  EXPECT_EQ(inbox.size(), 1u);  // the rejected one never reached the handler
  EXPECT_EQ(rejecter.calls.load(), 1);

  SelfUnsubscriber su{ps_, self_};
  ASSERT_EQ(ps_->subscribe(self_, "room", &SelfUnsubscriber::fn, &su, &su.sub, err.get()), CHORUS_OK);
  ASSERT_EQ(ps_->publish_raw(self_, "room", one, 1, nullptr, 0, nullptr, err.get()), CHORUS_OK);
  ASSERT_EQ(ps_->publish_raw(self_, "room", one, 1, nullptr, 0, nullptr, err.get()), CHORUS_OK);
  ASSERT_TRUE(inbox.wait(3));  // both later messages reached the other handler, in order, after su's
  EXPECT_EQ(su.calls.load(), 1);
  EXPECT_EQ(su.unsubscribe_status.load(), CHORUS_OK);
  EXPECT_EQ(ps_->unsubscribe(self_, su.sub), CHORUS_E_NOT_FOUND);

  // A validator may join (it runs inside the router: the join follows right after) but not publish.
  struct Joiner {
    const chorus_pubsub_v1 *ps;
    void *self;
    std::atomic<int> join_status{1}, publish_status{1};
    static int fn(void *arg, const chorus_pubsub_message *) {
      auto *j = static_cast<Joiner *>(arg);
      j->join_status = j->ps->join(j->self, "joined-by-validator", nullptr);
      const uint8_t b[] = {'x'};
      j->publish_status = j->ps->publish_raw(j->self, "elsewhere", b, 1, nullptr, 0, nullptr, nullptr);
      return CHORUS_PUBSUB_ACCEPT;
    }
  } joiner{ps_, self_};
  ASSERT_EQ(ps_->add_validator(self_, "room", &Joiner::fn, &joiner, &vid, err.get()), CHORUS_OK);
  ASSERT_EQ(ps_->publish_raw(self_, "room", one, 1, nullptr, 0, nullptr, err.get()), CHORUS_OK);
  EXPECT_EQ(joiner.join_status.load(), CHORUS_OK);
  EXPECT_EQ(joiner.publish_status.load(), CHORUS_E_BUSY);
  chorus_buf buf{};
  ASSERT_EQ(ps_->topics_json(self_, &buf, err.get()), CHORUS_OK);  // runs after the posted join
  const std::string topics(buf.data, buf.len);
  buf.release(&buf);
  EXPECT_NE(topics.find("joined-by-validator"), std::string::npos) << topics;
}

TEST(GossipHttpHelpers, Base64QueryAndEvents) {
  const std::string bytes("\x00\x01\xfe\xffhello", 9);
  const std::string enc = base64_encode(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size());
  EXPECT_EQ(enc, "AAH+/2hlbGxv");
  std::string dec;
  ASSERT_TRUE(base64_decode(enc, &dec));
  EXPECT_EQ(dec, bytes);
  ASSERT_TRUE(base64_decode("aGk=", &dec));
  EXPECT_EQ(dec, "hi");
  EXPECT_FALSE(base64_decode("***", &dec));
  EXPECT_FALSE(base64_decode("aG=k", &dec));
  EXPECT_EQ(query_param("a=1&topic=CHORUS%2Fcoordination%2Fv1&b", "topic"), "CHORUS/coordination/v1");
  EXPECT_EQ(query_param("topic=a+b", "topic"), "a b");
  EXPECT_FALSE(query_param("a=1", "topic"));
  EXPECT_FALSE(query_param("topic=%zz", "topic"));

  const std::string env = R"({"type":"task_claim","from":"a","timestamp":"t","data":{"x":"line1\nline2"}})";
  const Bytes from = {1, 2}, seqno = {0, 0, 0, 0, 0, 0, 1, 2}, id = {0xab, 0xcd};
  chorus_pubsub_message m{};
  m.struct_size = sizeof m;
  m.topic = "t";
  m.data = reinterpret_cast<const uint8_t *>(env.data());
  m.data_len = env.size();
  m.from_text = "12D3KooWx";
  m.seqno = seqno.data();
  m.seqno_len = seqno.size();
  m.message_id = id.data();
  m.message_id_len = id.size();
  m.type = "task_claim";
  std::string ev = sse_event(m);
  ASSERT_EQ(ev.rfind("data: ", 0), 0u);
  ASSERT_EQ(ev.substr(ev.size() - 2), "\n\n");
  EXPECT_EQ(ev.find('\n'), ev.size() - 2) << "one line per event";
  auto j = nlohmann::json::parse(ev.substr(6));
  EXPECT_EQ(j["topic"], "t");
  EXPECT_EQ(j["from"], "12D3KooWx");
  EXPECT_EQ(j["seqno"], "258");
  EXPECT_EQ(j["message_id"], "abcd");
  EXPECT_EQ(j["data"]["data"]["x"], "line1\nline2");
  EXPECT_FALSE(j.contains("raw_base64"));
  m.type = "";
  m.seqno = nullptr;
  m.seqno_len = 0;
  m.from_text = "";
  j = nlohmann::json::parse(sse_event(m).substr(6));
  EXPECT_EQ(j["seqno"], "");
  EXPECT_EQ(j["from"], "");
  EXPECT_FALSE(j.contains("data"));
  EXPECT_EQ(j["raw_base64"], base64_encode(m.data, m.data_len));
}

TEST_F(GossipPluginTest, HttpRoutes) {
  auto p = start(R"({"probe":{"enabled":false},"max_message_bytes":1024})");
  auto stream = host_.http_start("GET", "/api/v1/pubsub/stream?topic=room%2F1");
  auto r = host_.response(stream);
  ASSERT_TRUE(r.streaming);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/event-stream");
  ASSERT_FALSE(r.chunks.empty());
  EXPECT_EQ(r.chunks[0], ": subscribed room/1\n\n");

  // A handler subscribed after the stream runs after it for the same message: once it has the
  // message, the stream's event was written.
  Inbox inbox;
  uint64_t sub = 0;
  chorus::ErrorBuffer err;
  ASSERT_EQ(ps_->subscribe(self_, "room/1", &Inbox::fn, &inbox, &sub, err.get()), CHORUS_OK);
  auto pub = host_.http("POST", "/api/v1/pubsub/publish", R"({"topic":"room/1","type":"task_help_request","data":{"q":1}})");
  ASSERT_EQ(pub.status, 200) << pub.body;
  const auto ans = nlohmann::json::parse(pub.body);
  EXPECT_EQ(ans["topic"], "room/1");
  const std::string mid = ans["message_id"];
  ASSERT_TRUE(inbox.wait(1));
  r = host_.response(stream);
  ASSERT_EQ(r.chunks.size(), 2u);
  const std::string event = r.chunks[1];
  const auto ev = nlohmann::json::parse(event.substr(6));
  EXPECT_EQ(ev["message_id"], mid);
  EXPECT_EQ(ev["data"]["type"], "task_help_request");
  EXPECT_EQ(ev["data"]["data"], nlohmann::json({{"q", 1}}));

  auto joined = host_.http("POST", "/api/v1/pubsub/leave", R"({"topic":"room/1"})");
  EXPECT_EQ(joined.status, 200);
  EXPECT_EQ(nlohmann::json::parse(joined.body)["subscribed"], true) << "held by the open stream";

  const std::string big = std::string(R"({"topic":"room/1","raw_base64":")") + std::string(2000, 'A') + "\"}";
  EXPECT_EQ(host_.http("POST", "/api/v1/pubsub/publish", big).status, 413);
  auto bad = host_.http("POST", "/api/v1/pubsub/publish", "{oops");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(nlohmann::json::parse(bad.body)["error"]["code"], "CHORUS_E_INVALID_ARG");
  EXPECT_EQ(host_.http("POST", "/api/v1/pubsub/publish", R"({"topic":"room/1","type":"x","hop_count":6})").status, 400);
  EXPECT_EQ(host_.http("GET", "/api/v1/pubsub/stream").status, 400);
  auto topics = host_.http("GET", "/api/v1/pubsub/topics");
  ASSERT_EQ(topics.status, 200);
  bool found = false;
  for (const auto &t : nlohmann::json::parse(topics.body))
    if (t["topic"] == "room/1") found = t["subscribed"].get<bool>();
  EXPECT_TRUE(found);
  EXPECT_EQ(host_.http("GET", "/api/v1/pubsub/peers").body, "[]");
  host_.disconnect(stream);
  ASSERT_EQ(p.stop(), CHORUS_OK);
  EXPECT_TRUE(host_.response(stream).finished) << "the stream ends with the plugin";
}

// One length-prefixed frame.
Bytes frame(const Rpc &rpc) {
  Bytes out;
  append_frame(out, rpc);
  return out;
}

TEST_F(GossipPluginTest, StreamsCarrySubscriptionsAndMessages) {
  auto p = start();
  chorus::ErrorBuffer err;
  Inbox inbox;
  uint64_t sub = 0;
  ASSERT_EQ(ps_->subscribe(self_, CHORUS_PUBSUB_TOPIC_COORDINATION, &Inbox::fn, &inbox, &sub, err.get()), CHORUS_OK);
  const Key remote(7);
  const PeerId rid = remote.id();
  const std::string rtext = rid.to_base58();
  // The peer connects and identifies with meshsub: we open our write-only stream.
  {
    std::lock_guard lk(p2p_.mu);
    ASSERT_NE(p2p_.event_fn, nullptr);
  }
  const std::string ident = R"({"protocols":["/ipfs/id/1.0.0","/meshsub/1.1.0"]})";
  chorus_p2p_event ev{};
  ev.struct_size = sizeof ev;
  ev.peer = rid.bytes().data();
  ev.peer_len = rid.bytes().size();
  ev.peer_text = rtext.c_str();
  ev.addr = "/ip4/127.0.0.1/tcp/4001";
  ev.type = CHORUS_P2P_EVENT_CONNECTED;
  ev.direction = CHORUS_P2P_DIR_OUTBOUND;
  p2p_.event_fn(p2p_.event_arg, &ev);
  ev.type = CHORUS_P2P_EVENT_IDENTIFIED;
  ev.addr = "";
  ev.identify_json = ident.c_str();
  p2p_.event_fn(p2p_.event_arg, &ev);
  ASSERT_TRUE(p2p_.wait([&] { return !p2p_.opens.empty(); }));
  const FakeP2P::Open open = p2p_.opens[0];
  EXPECT_EQ(open.peer, rid.bytes());
  EXPECT_EQ(open.protocols, (std::vector<std::string>{"/meshsub/1.1.0", "/meshsub/1.0.0", "/floodsub/1.0.0"}));
  chorus_p2p_stream_info info{};
  info.struct_size = sizeof info;
  info.direction = CHORUS_P2P_DIR_OUTBOUND;
  info.stream = 100;
  info.peer = rid.bytes().data();
  info.peer_len = rid.bytes().size();
  info.peer_text = rtext.c_str();
  info.protocol = "/meshsub/1.1.0";
  info.remote_addr = "/ip4/127.0.0.1/tcp/4001";
  open.fn(open.arg, CHORUS_OK, &info, nullptr);
  // The first frame on it: our subscriptions.
  ASSERT_TRUE(p2p_.wait([&] { return !p2p_.writes.empty(); }));
  Bytes first;
  {
    std::lock_guard lk(p2p_.mu);
    EXPECT_EQ(p2p_.writes[0].first, 100u);
    first = p2p_.writes[0].second;
  }
  uint64_t len = 0;
  size_t used = 0;
  ASSERT_EQ(p2p::read_uvarint(first, len, used), p2p::VarintStatus::ok);
  ASSERT_EQ(used + len, first.size());
  std::string why;
  auto rpc = decode_rpc(BytesView(first).subspan(used), RpcLimits{}, &why);
  ASSERT_TRUE(rpc) << why;
  std::set<std::string> subscribed;
  for (const auto &s : rpc->subscriptions)
    if (s.subscribe) subscribed.insert(s.topic);
  for (const char *t : {CHORUS_PUBSUB_TOPIC_COORDINATION, CHORUS_PUBSUB_TOPIC_HMMM, CHORUS_PUBSUB_TOPIC_CONTEXT_FEEDBACK})
    EXPECT_EQ(subscribed.count(t), 1u) << t;

  // The peer's inbound stream: a signed message on a topic we joined is delivered.
  chorus_p2p_accept_fn accept;
  void *accept_arg;
  {
    std::lock_guard lk(p2p_.mu);
    ASSERT_EQ(p2p_.accept.count("/meshsub/1.1.0"), 1u);
    std::tie(accept, accept_arg) = p2p_.accept["/meshsub/1.1.0"];
  }
  info.direction = CHORUS_P2P_DIR_INBOUND;
  info.stream = 200;
  chorus_p2p_stream_handler in{};
  in.struct_size = sizeof in;
  ASSERT_EQ(accept(accept_arg, &info, &in), CHORUS_OK);
  Message m;
  m.from = rid.bytes();
  m.data = Bytes{'h', 'i'};
  m.seqno = seqno_bytes(77);
  m.topic = CHORUS_PUBSUB_TOPIC_COORDINATION;
  ASSERT_TRUE(sign_message(m, [&](BytesView d, uint8_t sig[64]) {
    return crypto_sign_detached(sig, nullptr, d.data(), d.size(), remote.sk) == 0;
  }));
  Rpc msg_rpc;
  msg_rpc.subscriptions.push_back({true, CHORUS_PUBSUB_TOPIC_COORDINATION});
  msg_rpc.publish.push_back(m);
  const Bytes f = frame(msg_rpc);
  // Split across two reads: frames are reassembled.
  in.on_data(in.arg, 200, f.data(), 3);
  in.on_data(in.arg, 200, f.data() + 3, f.size() - 3);
  ASSERT_TRUE(inbox.wait(1));
  {
    std::lock_guard lk(inbox.mu);
    const Seen &s = inbox.got[0];
    EXPECT_FALSE(s.local);
    EXPECT_EQ(s.data, "hi");
    EXPECT_EQ(s.from_text, rtext);
    EXPECT_EQ(s.received_from, rtext);
    EXPECT_EQ(s.type, "");
  }
  // An oversize frame resets the inbound stream and is counted.
  uint8_t huge[p2p::kMaxUvarintLen];
  const size_t huge_len = p2p::put_uvarint((1u << 20) + (64u << 10) + 1, huge);
  in.on_data(in.arg, 200, huge, huge_len);
  ASSERT_TRUE(p2p_.wait([&] { return std::count(p2p_.resets.begin(), p2p_.resets.end(), 200u) == 1; }));
  EXPECT_EQ(host_.metric_value("chorus_gossip_rpcs_rejected_total", {"too_large"}).value_or(0), 1);
  in.on_closed(in.arg, 200, CHORUS_E_CANCELLED, "reset");
  ASSERT_EQ(p.stop(), CHORUS_OK);
  open.handler.on_closed(open.handler.arg, 100, CHORUS_E_CANCELLED, "stopping");  // frees its state
}

// Connects a remote peer through the fake: CONNECTED + IDENTIFIED, our outbound stream `out`
// opened, its inbound stream `in` accepted. Returns the open record and the inbound handler.
struct Remote {
  FakeP2P::Open open;
  chorus_p2p_stream_handler in{};
};

Remote connect_remote(FakeP2P &p2p, const Key &key, uint64_t out, uint64_t in_stream) {
  Remote r;
  const PeerId rid = key.id();
  const std::string rtext = rid.to_base58();
  const std::string ident = R"({"protocols":["/meshsub/1.1.0"]})";
  chorus_p2p_event ev{};
  ev.struct_size = sizeof ev;
  ev.peer = rid.bytes().data();
  ev.peer_len = rid.bytes().size();
  ev.peer_text = rtext.c_str();
  ev.addr = "/ip4/127.0.0.1/tcp/4001";
  ev.type = CHORUS_P2P_EVENT_CONNECTED;
  p2p.event_fn(p2p.event_arg, &ev);
  ev.type = CHORUS_P2P_EVENT_IDENTIFIED;
  ev.identify_json = ident.c_str();
  const size_t before = p2p.opens.size();
  p2p.event_fn(p2p.event_arg, &ev);
  EXPECT_TRUE(p2p.wait([&] { return p2p.opens.size() > before; }));
  {
    std::lock_guard lk(p2p.mu);
    r.open = p2p.opens.back();
  }
  chorus_p2p_stream_info info{};
  info.struct_size = sizeof info;
  info.stream = out;
  info.peer = rid.bytes().data();
  info.peer_len = rid.bytes().size();
  info.peer_text = rtext.c_str();
  info.protocol = "/meshsub/1.1.0";
  info.remote_addr = "/ip4/127.0.0.1/tcp/4001";
  r.open.fn(r.open.arg, CHORUS_OK, &info, nullptr);
  chorus_p2p_accept_fn accept;
  void *accept_arg;
  {
    std::lock_guard lk(p2p.mu);
    std::tie(accept, accept_arg) = p2p.accept["/meshsub/1.1.0"];
  }
  info.direction = CHORUS_P2P_DIR_INBOUND;
  info.stream = in_stream;
  r.in.struct_size = sizeof r.in;
  EXPECT_EQ(accept(accept_arg, &info, &r.in), CHORUS_OK);
  return r;
}

TEST_F(GossipPluginTest, APeerThatNeverReadsLosesItsOwnMessagesOnly) {
  auto p = start(R"({"probe":{"enabled":false},"peer_queue_bytes":65536})");
  chorus::ErrorBuffer err;
  Remote slow = connect_remote(p2p_, Key(7), 100, 200);
  Remote fast = connect_remote(p2p_, Key(8), 101, 201);
  // Both subscribe to the room; the slow one's send queue is full from now on.
  Rpc subscribe;
  subscribe.subscriptions.push_back({true, "room"});
  const Bytes f = frame(subscribe);
  {
    std::lock_guard lk(p2p_.mu);
    p2p_.busy.insert(100);
  }
  slow.in.on_data(slow.in.arg, 200, f.data(), f.size());
  fast.in.on_data(fast.in.arg, 201, f.data(), f.size());
  ASSERT_EQ(ps_->join(self_, "room", err.get()), CHORUS_OK);
  // topics_json runs on the gossip thread after both frames: both peers are known subscribers.
  auto room_peers = [&] {
    chorus_buf buf{};
    EXPECT_EQ(ps_->topics_json(self_, &buf, err.get()), CHORUS_OK);
    auto topics = nlohmann::json::parse(std::string_view(buf.data, buf.len));
    buf.release(&buf);
    for (const auto &t : topics)
      if (t["topic"] == "room") return t["peers"].get<int>();
    return 0;
  };
  ASSERT_EQ(room_peers(), 2);
  // 40 messages of 4 KiB: 160 KiB for each peer, more than the slow peer's 64 KiB queue.
  const Bytes data(4096, 'm');
  for (int i = 0; i < 40; ++i)
    ASSERT_EQ(ps_->publish_raw(self_, "room", data.data(), data.size(), nullptr, 0, nullptr, err.get()), CHORUS_OK)
        << err.text();
  ASSERT_EQ(room_peers(), 2);  // a round trip through the gossip thread: every send happened
  size_t to_fast = 0;
  {
    std::lock_guard lk(p2p_.mu);
    for (const auto &[stream, bytes] : p2p_.writes)
      if (stream == 101 && bytes.size() > 4096) ++to_fast;
    EXPECT_GE(p2p_.busy_refusals, 1);
  }
  EXPECT_EQ(to_fast, 40u) << "the fast peer got every message";
  EXPECT_EQ(host_.metric_value("chorus_gossip_publish_waits_total", {"timeout"}).value_or(0), 0)
      << "a slow peer never makes the publisher wait while another keeps up";
  const double dropped = host_.metric_value("chorus_gossip_rpcs_dropped_total", {"queue_full"}).value_or(0);
  EXPECT_GE(dropped, 40 - 65536 / 4096);
  // The slow peer reads again: what its queue held goes out, in order.
  {
    std::lock_guard lk(p2p_.mu);
    p2p_.busy.clear();
  }
  slow.open.handler.on_writable(slow.open.handler.arg, 100);
  ASSERT_EQ(room_peers(), 2);
  {
    std::lock_guard lk(p2p_.mu);
    size_t to_slow = 0;
    for (const auto &[stream, bytes] : p2p_.writes)
      if (stream == 100 && bytes.size() > 4096) ++to_slow;
    EXPECT_GE(to_slow, 1u);
    EXPECT_LE(to_slow, 65536u / 4096);
  }
  slow.in.on_closed(slow.in.arg, 200, CHORUS_E_CANCELLED, "end");
  fast.in.on_closed(fast.in.arg, 201, CHORUS_E_CANCELLED, "end");
  ASSERT_EQ(p.stop(), CHORUS_OK);
  slow.open.handler.on_closed(slow.open.handler.arg, 100, CHORUS_E_CANCELLED, "stopping");
  fast.open.handler.on_closed(fast.open.handler.arg, 101, CHORUS_E_CANCELLED, "stopping");
}

// A heal delivers a peer's whole backlog at once. The stream stops being read (on the calling,
// network, thread) as soon as more than the incoming cap waits for the gossip thread, and reads again
// once the gossip thread caught up; nothing is lost.
TEST_F(GossipPluginTest, AFloodedInboundStreamPausesReadingUntilTheGossipThreadCatchesUp) {
  auto p = start();
  chorus::ErrorBuffer err;
  Inbox inbox;
  uint64_t sub = 0;
  ASSERT_EQ(ps_->subscribe(self_, "room", &Inbox::fn, &inbox, &sub, err.get()), CHORUS_OK);
  const Key key(7);
  Remote peer = connect_remote(p2p_, key, 100, 200);
  // 160 signed messages of 4 KiB, one frame each: 640 KiB in one read.
  constexpr int kCount = 160;
  Bytes flood;
  for (int i = 0; i < kCount; ++i) {
    Message m;
    m.from = key.id().bytes();
    m.data = Bytes(4096, static_cast<uint8_t>('a' + i % 26));
    m.seqno = seqno_bytes(1000 + i);
    m.topic = "room";
    ASSERT_TRUE(sign_message(m, [&](BytesView d, uint8_t sig[64]) {
      return crypto_sign_detached(sig, nullptr, d.data(), d.size(), key.sk) == 0;
    }));
    Rpc rpc;
    if (i == 0) rpc.subscriptions.push_back({true, "room"});
    rpc.publish.push_back(std::move(m));
    const Bytes f = frame(rpc);
    flood.insert(flood.end(), f.begin(), f.end());
  }
  ASSERT_GT(flood.size(), 512u << 10);
  peer.in.on_data(peer.in.arg, 200, flood.data(), flood.size());
  {
    std::lock_guard lk(p2p_.mu);
    ASSERT_FALSE(p2p_.pauses.empty()) << "the stream is paused before on_data returns";
    EXPECT_EQ(p2p_.pauses.front(), std::make_pair(uint64_t{200}, 1));
  }
  ASSERT_TRUE(inbox.wait(kCount));
  ASSERT_TRUE(p2p_.wait([&] { return p2p_.pauses.back() == std::make_pair(uint64_t{200}, 0); }))
      << "reading resumes once the backlog is handled";
  {
    std::lock_guard lk(inbox.mu);
    EXPECT_EQ(inbox.got.size(), size_t{kCount});
  }
  peer.in.on_closed(peer.in.arg, 200, CHORUS_E_CANCELLED, "end");
  ASSERT_EQ(p.stop(), CHORUS_OK);
  peer.open.handler.on_closed(peer.open.handler.arg, 100, CHORUS_E_CANCELLED, "stopping");
}

// Back-pressure: while every peer's send queue is congested a local publisher waits (instead of
// signing messages the queues would drop), and resumes as soon as a queue drains.
TEST_F(GossipPluginTest, PublishersWaitWhileEveryPeerIsCongested) {
  auto p = start(R"({"probe":{"enabled":false},"peer_queue_bytes":65536,"publish_wait_ms":60000})");
  chorus::ErrorBuffer err;
  Remote slow = connect_remote(p2p_, Key(7), 100, 200);
  Rpc subscribe;
  subscribe.subscriptions.push_back({true, "room"});
  const Bytes f = frame(subscribe);
  {
    std::lock_guard lk(p2p_.mu);
    p2p_.busy.insert(100);
  }
  slow.in.on_data(slow.in.arg, 200, f.data(), f.size());
  ASSERT_EQ(ps_->join(self_, "room", err.get()), CHORUS_OK);
  auto sync = [&] {  // a round trip through the gossip thread: every earlier publish has been routed
    chorus_buf buf{};
    EXPECT_EQ(ps_->topics_json(self_, &buf, err.get()), CHORUS_OK);
    buf.release(&buf);
  };
  sync();
  // 4 KiB messages (about 4.2 KiB framed) until the queue holds half of peer_queue_bytes: the
  // first goes to p2p, which refuses it (BUSY) and it stays queued, as does every later one; the
  // eighth takes the queue past 32 KiB.
  const Bytes data(4096, 'm');
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(ps_->publish_raw(self_, "room", data.data(), data.size(), nullptr, 0, nullptr, err.get()), CHORUS_OK);
    sync();
  }
  // The next publish waits: nothing it signs could leave now.
  auto waiting = std::async(std::launch::async, [&] {
    chorus::ErrorBuffer e;
    return ps_->publish_raw(self_, "room", data.data(), data.size(), nullptr, 0, nullptr, e.get());
  });
  EXPECT_EQ(waiting.wait_for(300ms), std::future_status::timeout) << "the publisher did not wait";
  // The peer reads again: its queue drains below a quarter and the publisher goes on.
  {
    std::lock_guard lk(p2p_.mu);
    p2p_.busy.clear();
  }
  slow.open.handler.on_writable(slow.open.handler.arg, 100);
  ASSERT_EQ(waiting.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(waiting.get(), CHORUS_OK);
  EXPECT_EQ(host_.metric_value("chorus_gossip_publish_waits_total", {"resumed"}).value_or(0), 1);
  EXPECT_EQ(host_.metric_value("chorus_gossip_publish_waits_total", {"timeout"}).value_or(0), 0);
  EXPECT_EQ(host_.metric_value("chorus_gossip_rpcs_dropped_total", {"queue_full"}).value_or(0), 0);
  slow.in.on_closed(slow.in.arg, 200, CHORUS_E_CANCELLED, "end");
  ASSERT_EQ(p.stop(), CHORUS_OK);
  slow.open.handler.on_closed(slow.open.handler.arg, 100, CHORUS_E_CANCELLED, "stopping");
}

// Peer exchange: a PRUNE from a peer at or above accept_px names peers to try; a signed peer record
// with it adds that peer's own addresses to the address book, a forged one adds nothing.
TEST_F(GossipPluginTest, PeerExchangeLearnsAddressesFromSignedPeerRecords) {
  auto p = start(R"({"probe":{"enabled":false},"scoring":{"thresholds":{"accept_px":0}}})");
  chorus::ErrorBuffer err;
  Remote pruner = connect_remote(p2p_, Key(7), 100, 200);
  uint8_t seed_a[32] = {41}, seed_b[32] = {42};
  const p2p::Identity offered = p2p::Identity::from_seed(seed_a), forger = p2p::Identity::from_seed(seed_b);
  const Bytes offered_id = offered.peer_id().bytes(), forger_id = forger.peer_id().bytes();
  {
    std::lock_guard lk(p2p_.mu);
    p2p_.strangers = {offered_id, forger_id};
  }
  std::string why;
  const auto ma = p2p::Multiaddr::parse("/ip4/10.1.2.3/tcp/4001", &why);
  ASSERT_TRUE(ma) << why;
  Rpc prune;
  prune.subscriptions.push_back({true, CHORUS_PUBSUB_TOPIC_COORDINATION});
  prune.control.emplace();
  ControlPrune pr;
  pr.topic = CHORUS_PUBSUB_TOPIC_COORDINATION;
  pr.peers.push_back({offered_id, p2p::seal_peer_record(offered, 1, {*ma})});
  // The forger offers a record of its own signed for the offered peer's id: refused.
  pr.peers.push_back({forger_id, p2p::seal_peer_record(offered, 2, {*ma})});
  prune.control->prune.push_back(pr);
  const Bytes f = frame(prune);
  pruner.in.on_data(pruner.in.arg, 200, f.data(), f.size());
  ASSERT_TRUE(p2p_.wait([&] { return p2p_.connects.size() >= 2; }));
  {
    std::lock_guard lk(p2p_.mu);
    ASSERT_EQ(p2p_.added_addrs.count(offered_id), 1u);
    EXPECT_EQ(p2p_.added_addrs[offered_id], (std::vector<std::string>{"/ip4/10.1.2.3/tcp/4001"}));
    EXPECT_EQ(p2p_.added_addrs.count(forger_id), 0u);
  }
  EXPECT_EQ(host_.metric_value("chorus_gossip_rpcs_rejected_total", {"bad_peer_record"}).value_or(0), 1);
  pruner.in.on_closed(pruner.in.arg, 200, CHORUS_E_CANCELLED, "end");
  ASSERT_EQ(p.stop(), CHORUS_OK);
  pruner.open.handler.on_closed(pruner.open.handler.arg, 100, CHORUS_E_CANCELLED, "stopping");
}

}  // namespace
}  // namespace chorus::gossip

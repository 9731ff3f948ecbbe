// The mDNS engine and the peer table: what we send, what we answer, and what we believe.
#include <gtest/gtest.h>

#include <sodium.h>

#include <chorus/testing/fake_host.hpp>

#include "engine.hpp"
#include "settings.hpp"

namespace chorus::mdns {
namespace {

p2p::PeerId id_from_seed(uint8_t b) {
  uint8_t seed[32], pk[32], sk[64];
  std::fill(std::begin(seed), std::end(seed), b);
  crypto_sign_seed_keypair(pk, sk, seed);
  return p2p::PeerId::from_ed25519(pk);
}

// A response as js-libp2p sends it: PTR and TXT records all in the answers, one TXT per address.
std::vector<uint8_t> js_style_response(const std::string &service, const std::string &name,
                                       const std::vector<std::string> &txt, uint32_t ttl = 120) {
  DnsWriter w(0, kFlagResponse | kFlagAuthoritative);
  w.ptr(DnsWriter::kAnswer, service, ttl, name + "." + service);
  for (const auto &t : txt) w.txt(DnsWriter::kAnswer, name + "." + service, ttl, {t}, false);
  return std::move(w).finish();
}

TEST(Engine, AnswersQueriesForItsServiceOnly) {
  Engine e("CHORUS-peer-discovery", "ourname0123456789012345678901234", 120);
  e.set_addrs({"/ip4/10.0.0.1/tcp/9000/p2p/12D3KooWPqT2nMDSiXUSx5D7fasaxhxKigVhcqfkKqrLghCq9jxz"});
  Engine other("CHORUS-peer-discovery", "othername012345678901234567890123", 120);
  auto r = e.handle(other.build_query({}), 5353, 5353, nullptr);
  EXPECT_TRUE(r.answer_multicast);
  Engine p2p("p2p", "othername012345678901234567890123", 120);
  r = e.handle(p2p.build_query({}), 5353, 5353, nullptr);
  EXPECT_FALSE(r.answer_multicast);
  // Legacy unicast query (source port != 5353): answer the sender directly, echoing the id. (Our own
  // queries carry id 0, so a resolver's query with a non-zero id is built by hand.)
  DnsWriter legacy(0x4a7b, 0);
  ASSERT_TRUE(legacy.question(e.service(), kTypePtr, kClassIn));
  r = e.handle(std::move(legacy).finish(), 40000, 5353, nullptr);
  EXPECT_TRUE(r.answer_unicast);
  EXPECT_FALSE(r.answer_multicast);
  EXPECT_EQ(r.query_id, 0x4a7b);
  DnsMessage answer;
  ASSERT_TRUE(parse_message(e.build_response(120, r.query_id), answer, nullptr));
  EXPECT_EQ(answer.id, 0x4a7b);
  EXPECT_TRUE(answer.is_response());
}

TEST(Engine, KnownAnswerSuppression) {
  Engine e("t", "ourname0123456789012345678901234", 120);
  e.set_addrs({"/ip4/10.0.0.1/tcp/9000/p2p/12D3KooWPqT2nMDSiXUSx5D7fasaxhxKigVhcqfkKqrLghCq9jxz"});
  Engine q("t", "querier012345678901234567890123456", 120);
  EXPECT_FALSE(e.handle(q.build_query({{e.instance(), 100}}), 5353, 5353, nullptr).answer_multicast);
  // Less than half the TTL left: the asker wants a refresh.
  EXPECT_TRUE(e.handle(q.build_query({{e.instance(), 59}}), 5353, 5353, nullptr).answer_multicast);
  // Someone else's known answer does not silence us.
  EXPECT_TRUE(e.handle(q.build_query({{"x._t._udp.local", 120}}), 5353, 5353, nullptr).answer_multicast);
}

TEST(Engine, ReadsTxtFromAnswersAndAdditionals) {
  Engine a("p2p", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 120);
  const std::string ma = "/ip4/10.0.0.2/tcp/4001/p2p/12D3KooWPqT2nMDSiXUSx5D7fasaxhxKigVhcqfkKqrLghCq9jxz";
  a.set_addrs({ma});
  Engine b("p2p", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 120);
  // Ours: TXT in the additionals.
  auto r = b.handle(a.build_response(120), 5353, 5353, nullptr);
  ASSERT_EQ(r.announcements.size(), 1u);
  EXPECT_EQ(r.announcements[0].instance, a.instance());
  EXPECT_EQ(r.announcements[0].txt, std::vector<std::string>{"dnsaddr=" + ma});
  // js: TXT in the answers.
  r = b.handle(js_style_response("_p2p._udp.local", "jsname", {"dnsaddr=" + ma, "dnsaddr=/ip4/127.0.0.1/tcp/4001/p2p/x"}),
               5353, 5353, nullptr);
  ASSERT_EQ(r.announcements.size(), 1u);
  EXPECT_EQ(r.announcements[0].txt.size(), 2u);
  // Our own announcement looped back is recognised.
  EXPECT_TRUE(a.handle(a.build_response(120), 5353, 5353, nullptr).ours);
  EXPECT_TRUE(a.handle(a.build_response(120), 5353, 5353, nullptr).announcements.empty());
}

TEST(Engine, GoodbyeHasTtlZero) {
  Engine a("p2p", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 120);
  a.set_addrs({"/ip4/10.0.0.2/tcp/4001/p2p/12D3KooWPqT2nMDSiXUSx5D7fasaxhxKigVhcqfkKqrLghCq9jxz"});
  Engine b("p2p", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 120);
  auto r = b.handle(a.build_response(0), 5353, 5353, nullptr);
  ASSERT_EQ(r.announcements.size(), 1u);
  EXPECT_EQ(r.announcements[0].ttl, 0u);
}

TEST(Engine, PeerNamesAreRandomLowercaseAlnum32To63) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 200; ++i) {
    const auto n = Engine::random_peer_name(rng);
    EXPECT_GE(n.size(), 32u);
    EXPECT_LE(n.size(), 63u);
    for (char c : n) EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'));
  }
}

TEST(Engine, LongAddressesAreLeftOut) {
  Engine a("p2p", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 120);
  EXPECT_EQ(a.set_addrs({"/dns4/" + std::string(250, 'x') + "/tcp/1/p2p/12D3KooWPqT2nMDSiXUSx5D7fasaxhxKigVhcqfkKqrLghCq9jxz"}), 0u);
  EXPECT_FALSE(a.has_addrs());
}

class PeerTableTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_GE(sodium_init(), 0); }
  Announcement ann(const p2p::PeerId &id, std::vector<std::string> addrs, uint32_t ttl = 120,
                   const std::string &inst = "x._p2p._udp.local") {
    Announcement a;
    a.instance = inst;
    a.ttl = ttl;
    for (auto &s : addrs) a.txt.push_back("dnsaddr=" + s + "/p2p/" + id.to_base58());
    return a;
  }
};

TEST_F(PeerTableTest, FoundRefreshedChangedLostExpired) {
  const auto self = id_from_seed(1), peer = id_from_seed(2);
  PeerTable t(self, 10);
  const PeerEntry *e = nullptr;
  PeerEntry removed;
  EXPECT_EQ(t.apply(ann(peer, {"/ip4/127.0.0.1/tcp/1", "/ip4/10.0.0.2/tcp/1", "/ip4/10.0.0.9/tcp/1"}), "10.0.0.9", 1000,
                    &e, &removed, nullptr),
            ApplyOutcome::found);
  ASSERT_NE(e, nullptr);
  // The packet's source first, loopback last.
  EXPECT_EQ(e->addrs, (std::vector<std::string>{"/ip4/10.0.0.9/tcp/1", "/ip4/10.0.0.2/tcp/1", "/ip4/127.0.0.1/tcp/1"}));
  EXPECT_EQ(t.apply(ann(peer, {"/ip4/10.0.0.9/tcp/1", "/ip4/10.0.0.2/tcp/1", "/ip4/127.0.0.1/tcp/1"}), "", 2000, &e,
                    &removed, nullptr),
            ApplyOutcome::refreshed);
  EXPECT_EQ(t.apply(ann(peer, {"/ip4/10.0.0.3/tcp/1"}), "", 3000, &e, &removed, nullptr), ApplyOutcome::changed);
  EXPECT_EQ(t.apply(ann(peer, {"/ip4/10.0.0.3/tcp/1"}, 0), "", 4000, &e, &removed, nullptr), ApplyOutcome::lost);
  EXPECT_EQ(removed.id, peer);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.apply(ann(peer, {"/ip4/10.0.0.3/tcp/1"}, 0), "", 4000, &e, &removed, nullptr), ApplyOutcome::ignored);
  EXPECT_EQ(t.apply(ann(peer, {"/ip4/10.0.0.3/tcp/1"}, 2), "", 5000, &e, &removed, nullptr), ApplyOutcome::found);
  EXPECT_TRUE(t.expire(6999).empty());
  EXPECT_EQ(t.expire(7000).size(), 1u);
}

TEST_F(PeerTableTest, SelfInvalidAndFull) {
  const auto self = id_from_seed(1);
  PeerTable t(self, 2);
  std::string why;
  EXPECT_EQ(t.apply(ann(self, {"/ip4/10.0.0.1/tcp/1"}), "", 0, nullptr, nullptr, &why), ApplyOutcome::self);
  Announcement junk;
  junk.ttl = 120;
  junk.txt = {"dnsaddr=/not/a/multiaddr", "dnsaddr=/ip4/1.2.3.4/tcp/5", "hello", "dnsaddr="};
  EXPECT_EQ(t.apply(junk, "", 0, nullptr, nullptr, &why), ApplyOutcome::invalid);
  EXPECT_FALSE(why.empty());
  // Only non-TCP addresses: nothing to dial.
  EXPECT_EQ(t.apply(ann(id_from_seed(5), {"/ip4/10.0.0.1/udp/1/quic-v1"}), "", 0, nullptr, nullptr, &why),
            ApplyOutcome::invalid);
  EXPECT_EQ(t.apply(ann(id_from_seed(2), {"/ip4/10.0.0.2/tcp/1"}), "", 0, nullptr, nullptr, nullptr), ApplyOutcome::found);
  EXPECT_EQ(t.apply(ann(id_from_seed(3), {"/ip4/10.0.0.3/tcp/1"}), "", 0, nullptr, nullptr, nullptr), ApplyOutcome::found);
  EXPECT_EQ(t.apply(ann(id_from_seed(4), {"/ip4/10.0.0.4/tcp/1"}), "", 0, nullptr, nullptr, nullptr),
            ApplyOutcome::table_full);
  EXPECT_EQ(t.size(), 2u);
}

TEST_F(PeerTableTest, MixedPeerIdsInOneInstanceKeepTheFirst) {
  const auto a = id_from_seed(2), b = id_from_seed(3);
  PeerTable t(id_from_seed(1), 10);
  Announcement x;
  x.ttl = 120;
  x.txt = {"dnsaddr=/ip4/10.0.0.2/tcp/1/p2p/" + a.to_base58(), "dnsaddr=/ip4/10.0.0.3/tcp/1/p2p/" + b.to_base58()};
  const PeerEntry *e = nullptr;
  EXPECT_EQ(t.apply(x, "", 0, &e, nullptr, nullptr), ApplyOutcome::found);
  EXPECT_EQ(e->id, a);
  EXPECT_EQ(e->addrs, std::vector<std::string>{"/ip4/10.0.0.2/tcp/1"});
}

TEST(RateLimiter, RefillsOverTime) {
  RateLimiter r(10, 2);
  EXPECT_TRUE(r.take(0));
  EXPECT_TRUE(r.take(0));
  EXPECT_FALSE(r.take(0));
  EXPECT_TRUE(r.take(100));
  EXPECT_FALSE(r.take(100));
}

// The settings the plugin reads for `cfg`: the host applies kConfigSchema first (the fake host's copy of
// that step here), so parse_settings sees a complete, valid config.
Settings settings_of(std::string_view cfg) {
  const auto prepared = chorus::testing::prepare_config(kConfigSchema, "mdns", cfg);
  if (!prepared.ok()) throw std::invalid_argument(prepared.error);
  return parse_settings(prepared.json);
}

std::string error_of(std::string_view cfg) {
  try {
    settings_of(cfg);
  } catch (const std::invalid_argument &e) {
    return e.what();
  }
  return "";
}

TEST(Settings, DefaultsComeFromTheSchema) {
  const auto s = settings_of("{}");
  EXPECT_EQ(s.service_tag, "CHORUS-peer-discovery");
  EXPECT_EQ(s.connect_timeout_ms, 10000u);
  EXPECT_EQ(s.queue_size, 10u);
  EXPECT_EQ(s.ttl_s, 120u);
  EXPECT_EQ(s.port, 5353u);
  EXPECT_TRUE(s.ipv4 && s.ipv6 && s.auto_connect);
  EXPECT_TRUE(s.interfaces.empty());
}

TEST(Settings, ErrorsNameTheKey) {
  EXPECT_EQ(error_of(R"({"service_tag":"a.b"})"),
            "plugins.mdns.config.service_tag: 'a.b' does not have the expected form (^[A-Za-z0-9_-]{1,62}$)");
  EXPECT_EQ(error_of(R"({"query_interval_ms":5})"), "plugins.mdns.config.query_interval_ms: 5 is less than the minimum 100");
  EXPECT_EQ(error_of(R"({"bogus":1})"), "plugins.mdns.config: unknown key 'bogus'");
  EXPECT_EQ(error_of(R"({"ipv4":"yes"})"), "plugins.mdns.config.ipv4: expected a boolean, got string");
  EXPECT_EQ(error_of(R"({"interfaces":[1]})"), "plugins.mdns.config.interfaces[0]: expected a string, got number");
  EXPECT_EQ(error_of(R"([1])"), "plugins.mdns.config: not an object");
  // What the schema cannot say stays in parse_settings.
  EXPECT_EQ(error_of(R"({"ipv4":false,"ipv6":false})"), "mdns.config.ipv4: ipv4 and ipv6 cannot both be false");
  EXPECT_THROW(parse_settings("{}"), std::invalid_argument);  // a config the host did not complete
}

}  // namespace
}  // namespace chorus::mdns

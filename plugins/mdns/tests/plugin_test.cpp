// The plugin through its C vtable on the SDK's FakeHost, with a fake chorus.p2p.host: CHORUS's
// dialing rules (skip self and connected peers, one dial per peer at a time, bounded queue with
// drops counted, failures retried on the next announcement), the chorus.discovery events and
// the metrics. Announcements arrive as real UDP datagrams on a private port on 127.0.0.1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <sodium.h>

#include <chorus/services/discovery_v1.h>
#include <chorus/services/p2p_host_v1.h>
#include <chorus/testing/fake_host.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>

#include "engine.hpp"

extern "C" const chorus_plugin_descriptor *chorus_plugin_entry_v1(const chorus_abi_info *) noexcept;

namespace chorus::mdns {
namespace {

using namespace std::chrono_literals;

p2p::PeerId id_from_seed(uint8_t b) {
  uint8_t seed[32], pk[32], sk[64];
  std::fill(std::begin(seed), std::end(seed), b);
  crypto_sign_seed_keypair(pk, sk, seed);
  return p2p::PeerId::from_ed25519(pk);
}

uint16_t free_udp_port() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// A fake p2p host: records add_addrs and connect; connects complete when the test says so.
struct FakeP2P {
  std::mutex mu;
  std::condition_variable cv;
  p2p::PeerId self = id_from_seed(1);
  std::set<p2p::Bytes> connected;
  struct Dial {
    std::string target;
    chorus_p2p_connect_fn fn;
    void *arg;
  };
  std::vector<Dial> dials;  // in order
  std::vector<std::vector<std::string>> added;
  chorus_p2p_host_v1 table{};

  FakeP2P() {
    table.struct_size = sizeof table;
    table.local_peer_id = [](void *s, uint8_t *peer, size_t cap, size_t *len, char *text, size_t tcap, size_t *tlen) {
      auto *f = static_cast<FakeP2P *>(s);
      const auto &b = f->self.bytes();
      if (peer != nullptr && cap >= b.size()) std::memcpy(peer, b.data(), b.size());
      if (len != nullptr) *len = b.size();
      const std::string t = f->self.to_base58();
      if (text != nullptr && tcap > t.size()) std::memcpy(text, t.c_str(), t.size() + 1);
      if (tlen != nullptr) *tlen = t.size();
      return CHORUS_OK;
    };
    table.get_info_json = [](void *s, chorus_buf *out, chorus_error *) {
      auto *f = static_cast<FakeP2P *>(s);
      auto *str = new std::string(R"({"peer_id":")" + f->self.to_base58() + R"(","addrs":["/ip4/127.0.0.1/tcp/4001"]})");
      *out = chorus_buf{str->data(), str->size(), str, [](chorus_buf *b) { delete static_cast<std::string *>(b->owner); }};
      return CHORUS_OK;
    };
    table.is_connected = [](void *s, const uint8_t *peer, size_t len) {
      auto *f = static_cast<FakeP2P *>(s);
      std::lock_guard lk(f->mu);
      return f->connected.count(p2p::Bytes(peer, peer + len)) != 0 ? 1 : 0;
    };
    table.add_addrs = [](void *s, const uint8_t *, size_t, const char *const *addrs, size_t n, uint64_t, chorus_error *) {
      auto *f = static_cast<FakeP2P *>(s);
      std::lock_guard lk(f->mu);
      f->added.emplace_back(addrs, addrs + n);
      return CHORUS_OK;
    };
    table.connect = [](void *s, const char *target, size_t len, uint32_t timeout_ms, chorus_p2p_connect_fn fn, void *arg,
                       chorus_error *) {
      auto *f = static_cast<FakeP2P *>(s);
      EXPECT_EQ(timeout_ms, 10000u);  // CHORUS's 10 s (docs/contract.md, CHORUS defaults the plugins adopt)
      std::lock_guard lk(f->mu);
      f->dials.push_back({std::string(target, len), fn, arg});
      f->cv.notify_all();
      return CHORUS_OK;
    };
    table.subscribe = [](void *, chorus_p2p_event_fn, void *, uint64_t *out) {
      *out = 1;
      return CHORUS_OK;
    };
    table.unsubscribe = [](void *, uint64_t) { return CHORUS_OK; };
  }

  size_t wait_dials(size_t n) {
    std::unique_lock lk(mu);
    cv.wait_for(lk, 10s, [&] { return dials.size() >= n; });
    return dials.size();
  }
  // Completes dial i (as the p2p thread would).
  void finish(size_t i, bool ok, const p2p::PeerId &peer) {
    Dial d;
    {
      std::lock_guard lk(mu);
      d = dials.at(i);
      if (ok) connected.insert(peer.bytes());
    }
    chorus_error e{};
    e.struct_size = sizeof e;
    std::snprintf(e.message, sizeof e.message, "%s", ok ? "" : "connection refused");
    d.fn(d.arg, ok ? CHORUS_OK : CHORUS_E_IO, ok ? d.target.c_str() : nullptr, &e);
  }
};

struct Events {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<uint32_t, std::string>> got;  // type, peer text
  std::vector<std::string> addrs_of_last;
  static void fn(void *arg, const chorus_discovery_event *ev) {
    auto *e = static_cast<Events *>(arg);
    std::lock_guard lk(e->mu);
    e->got.emplace_back(ev->type, ev->peer_text);
    e->addrs_of_last.assign(ev->addrs, ev->addrs + ev->addr_count);
    e->cv.notify_all();
  }
  // Waits until `type` for `peer` was seen at least n times.
  bool wait_for(uint32_t type, const std::string &peer, long n = 1) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, 10s, [&] { return std::count(got.begin(), got.end(), std::make_pair(type, peer)) >= n; });
  }
};

class PluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    port_ = free_udp_port();
    host_.provide(CHORUS_P2P_HOST_SERVICE, 1, 0, &p2p_.table, &p2p_, "p2p");
    sock_ = ::socket(AF_INET, SOCK_DGRAM, 0);
  }
  void TearDown() override { ::close(sock_); }

  chorus::testing::PluginHandle start(const std::string &extra = "") {
    const std::string cfg = R"({"port":)" + std::to_string(port_) +
                            R"(,"ipv6":false,"interfaces":["lo"],"query_interval_ms":3600000,"service_tag":"t")" +
                            extra + "}";
    auto p = chorus::testing::load(&chorus_plugin_entry_v1, host_, cfg);
    EXPECT_EQ(p.status(), CHORUS_OK) << p.message();
    chorus::ServiceTable t;
    EXPECT_EQ(p.get_service(CHORUS_DISCOVERY_SERVICE, 1, &t), CHORUS_OK);
    disc_ = static_cast<const chorus_discovery_v1 *>(t.table);
    disc_self_ = t.self;
    EXPECT_EQ(disc_->subscribe(disc_self_, &Events::fn, &events_, &sub_), CHORUS_OK);
    return p;
  }

  // An announcement of `peer` (instance name derived from it) sent to the plugin's port.
  void announce(const p2p::PeerId &peer, uint32_t ttl = 120, const std::string &ip = "10.1.2.3") {
    Engine e("t", "n" + peer.to_base58().substr(8, 40), 120);
    e.set_addrs({"/ip4/" + ip + "/tcp/4001/p2p/" + peer.to_base58(), "/ip4/127.0.0.1/tcp/4001/p2p/" + peer.to_base58()});
    const auto pkt = e.build_response(ttl);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port_);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::sendto(sock_, pkt.data(), pkt.size(), 0, reinterpret_cast<sockaddr *>(&to), sizeof to),
              static_cast<ssize_t>(pkt.size()));
  }

  double metric(const char *name, std::vector<std::string> labels = {}) {
    return host_.metric_value(name, labels).value_or(0);
  }

  chorus::testing::FakeHost host_;
  FakeP2P p2p_;
  Events events_;
  uint16_t port_ = 0;
  int sock_ = -1;
  const chorus_discovery_v1 *disc_ = nullptr;
  void *disc_self_ = nullptr;
  uint64_t sub_ = 0;
};

TEST_F(PluginTest, DiscoversDialsOnceAndReportsGoodbye) {
  auto p = start();
  const auto peer = id_from_seed(2);
  announce(peer);
  ASSERT_TRUE(events_.wait_for(CHORUS_DISCOVERY_PEER_FOUND, peer.to_base58()));
  // The datagram came from 127.0.0.1, so that address ranks first (the packet's source).
  EXPECT_EQ(events_.addrs_of_last, (std::vector<std::string>{"/ip4/127.0.0.1/tcp/4001", "/ip4/10.1.2.3/tcp/4001"}));
  ASSERT_EQ(p2p_.wait_dials(1), 1u);
  EXPECT_EQ(p2p_.dials[0].target, peer.to_base58());
  EXPECT_EQ(p2p_.added.at(0).size(), 2u);
  // Announced again while the dial is in flight: no second dial.
  announce(peer);
  announce(id_from_seed(1));  // our own peer id: ignored
  const auto marker = id_from_seed(9);
  announce(marker);  // datagrams are read in order: once this one is seen, the others were handled
  ASSERT_TRUE(events_.wait_for(CHORUS_DISCOVERY_PEER_FOUND, marker.to_base58()));
  ASSERT_EQ(p2p_.wait_dials(2), 2u);
  EXPECT_EQ(p2p_.dials[1].target, marker.to_base58());
  p2p_.finish(0, true, peer);
  p2p_.finish(1, true, marker);
  // Connected now: the next announcement does not dial.
  announce(peer);
  announce(peer, 0);  // goodbye
  ASSERT_TRUE(events_.wait_for(CHORUS_DISCOVERY_PEER_LOST, peer.to_base58()));
  EXPECT_EQ(p2p_.dials.size(), 2u);
  EXPECT_EQ(metric("chorus_mdns_peers_discovered_total"), 2);
  EXPECT_EQ(metric("chorus_mdns_connections_total", {"ok"}), 2);
  EXPECT_GT(metric("chorus_mdns_last_discovery_timestamp_seconds"), 1.7e9);
  for (const auto &[type, who] : events_.got) EXPECT_NE(who, id_from_seed(1).to_base58());
  // The list: the marker peer only.
  chorus_buf buf{};
  ASSERT_EQ(disc_->list_peers_json(disc_self_, &buf, nullptr), CHORUS_OK);
  const std::string list(buf.data, buf.len);
  buf.release(&buf);
  EXPECT_NE(list.find(marker.to_base58()), std::string::npos);
  EXPECT_EQ(list.find(peer.to_base58()), std::string::npos);
  EXPECT_EQ(disc_->unsubscribe(disc_self_, sub_), CHORUS_OK);
  EXPECT_EQ(p.stop(), CHORUS_OK) << p.message();
  EXPECT_TRUE(host_.violations().empty()) << host_.violations().front();
}

TEST_F(PluginTest, FailedDialIsLoggedCountedAndRetriedOnTheNextAnnouncement) {
  auto p = start();
  const auto peer = id_from_seed(3);
  announce(peer);
  ASSERT_EQ(p2p_.wait_dials(1), 1u);
  p2p_.finish(0, false, peer);
  announce(peer);
  ASSERT_EQ(p2p_.wait_dials(2), 2u);  // retried
  EXPECT_EQ(metric("chorus_mdns_connections_total", {"failed"}), 1);
  EXPECT_TRUE(host_.has_log("failed to connect to peer " + peer.to_base58() + ": connection refused"));
  p2p_.finish(1, true, peer);
  EXPECT_EQ(disc_->unsubscribe(disc_self_, sub_), CHORUS_OK);
  EXPECT_EQ(p.stop(), CHORUS_OK);
}

TEST_F(PluginTest, QueueIsBoundedAndDropsAreCounted) {
  auto p = start(R"(,"queue_size":2,"max_concurrent_connects":1)");
  std::vector<p2p::PeerId> peers;
  for (uint8_t i = 10; i < 15; ++i) peers.push_back(id_from_seed(i));
  for (const auto &peer : peers) announce(peer);
  ASSERT_TRUE(events_.wait_for(CHORUS_DISCOVERY_PEER_FOUND, peers.back().to_base58()));
  // One dial in flight, two queued, two dropped.
  EXPECT_EQ(p2p_.wait_dials(1), 1u);
  EXPECT_EQ(metric("chorus_mdns_discoveries_dropped_total", {"queue_full"}), 2);
  // Finishing the dial lets the queue move on, one at a time.
  p2p_.finish(0, true, peers[0]);
  ASSERT_EQ(p2p_.wait_dials(2), 2u);
  EXPECT_EQ(p2p_.dials[1].target, peers[1].to_base58());
  p2p_.finish(1, true, peers[1]);
  ASSERT_EQ(p2p_.wait_dials(3), 3u);
  p2p_.finish(2, true, peers[2]);
  EXPECT_EQ(disc_->unsubscribe(disc_self_, sub_), CHORUS_OK);
  EXPECT_EQ(p.stop(), CHORUS_OK);
}

TEST_F(PluginTest, LateSubscribersGetKnownPeersAndMayUnsubscribeInsideTheCallback) {
  auto p = start(R"(,"auto_connect":false)");
  const auto peer = id_from_seed(4);
  announce(peer);
  ASSERT_TRUE(events_.wait_for(CHORUS_DISCOVERY_PEER_FOUND, peer.to_base58()));
  struct Once {
    const chorus_discovery_v1 *d;
    void *self;
    std::atomic<uint64_t> sub{0};
    std::atomic<int> calls{0};
  } once{disc_, disc_self_};
  uint64_t sub = 0;
  ASSERT_EQ(disc_->subscribe(disc_self_, [](void *arg, const chorus_discovery_event *) {
    auto *o = static_cast<Once *>(arg);
    if (++o->calls == 2) o->d->unsubscribe(o->self, o->sub);
  }, &once, &sub), CHORUS_OK);
  EXPECT_EQ(once.calls, 1);  // the known peer, reported during subscribe
  once.sub = sub;
  // Events reach subscribers in order on one thread: once a later marker event has reached
  // events_, every subscriber has seen the earlier ones.
  auto settle = [&](uint8_t seed) {
    const auto marker = id_from_seed(seed);
    announce(marker);
    ASSERT_TRUE(events_.wait_for(CHORUS_DISCOVERY_PEER_FOUND, marker.to_base58()));
  };
  announce(peer, 0);
  ASSERT_TRUE(events_.wait_for(CHORUS_DISCOVERY_PEER_LOST, peer.to_base58()));
  settle(30);
  EXPECT_EQ(once.calls, 2);  // the LOST, which unsubscribed it: not the marker
  announce(peer);
  ASSERT_TRUE(events_.wait_for(CHORUS_DISCOVERY_PEER_FOUND, peer.to_base58(), 2));
  settle(31);
  EXPECT_EQ(once.calls, 2);
  EXPECT_TRUE(p2p_.dials.empty());  // auto_connect false
  EXPECT_EQ(disc_->unsubscribe(disc_self_, sub_), CHORUS_OK);
  EXPECT_EQ(p.stop(), CHORUS_OK);
}

TEST_F(PluginTest, BadConfigFailsCreateNamingTheKey) {
  auto p = chorus::testing::load(&chorus_plugin_entry_v1, host_, R"({"queue_size":0})");
  EXPECT_EQ(p.status(), CHORUS_E_CONFIG);
  EXPECT_EQ(p.message(), "plugins.mdns.config.queue_size: 0 is less than the minimum 1");
}

}  // namespace
}  // namespace chorus::mdns

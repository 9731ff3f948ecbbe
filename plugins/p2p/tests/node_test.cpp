// Two nodes in one process on loopback, driven through the same entry points the C table uses.
#include <gtest/gtest.h>
#include <sodium.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <string>

#include <chorus/testing/fake_host.hpp>
#include <nlohmann/json.hpp>

#include "node.hpp"
#include "settings.hpp"

namespace chorus::p2p {
namespace {

using namespace std::chrono_literals;

class QuietLog final : public NodeLog {
 public:
  bool enabled(int level) const override { return level >= CHORUS_LOG_WARN; }
  void write(int, const std::string &msg) override { std::fprintf(stderr, "node: %s\n", msg.c_str()); }
};

Identity identity_from(uint8_t fill) {
  uint8_t seed[32];
  std::memset(seed, fill, sizeof seed);
  return Identity::from_seed(seed);
}

// The plugin's defaults (from its config schema, as the host fills them in) on a loopback port.
Settings loopback_settings() {
  const auto cfg = chorus::testing::prepare_config(
      kConfigSchema, "p2p",
      R"({"listen":["/ip4/127.0.0.1/tcp/0"],"agent_version":"node-test/1","limits":{"dial_backoff_base_ms":0}})");
  EXPECT_TRUE(cfg.ok()) << cfg.error;
  return parse_settings(cfg.json, "/nonexistent", [](const char *) { return std::optional<std::string>(); });
}

std::string listen_addr(Node &n) {
  std::string info;
  EXPECT_EQ(n.get_info_json(info, nullptr), CHORUS_OK);
  auto j = nlohmann::json::parse(info);
  return j["addrs"][0].get<std::string>() + "/p2p/" + j["peer_id"].get<std::string>();
}

// Blocking helpers over the callback API: each waits on the callback's event, never on time alone.
struct ConnectResult {
  chorus_status status = CHORUS_E_INTERNAL;
  std::string peer, error;
};

ConnectResult connect_sync(Node &n, const std::string &target, uint32_t timeout_ms = 0) {
  std::promise<ConnectResult> p;
  auto fut = p.get_future();
  chorus_error err{};
  err.struct_size = sizeof err;
  const auto st = n.connect(
      target, timeout_ms,
      [](void *arg, chorus_status s, const char *peer, const chorus_error *e) {
        ConnectResult r;
        r.status = s;
        if (peer != nullptr) r.peer = peer;
        if (e != nullptr) r.error = e->message;
        static_cast<std::promise<ConnectResult> *>(arg)->set_value(r);
      },
      &p, &err);
  if (st != CHORUS_OK) return {st, "", err.message};
  EXPECT_EQ(fut.wait_for(20s), std::future_status::ready);
  return fut.get();
}

Bytes peer_bytes(const Node &n) { return n.identity().peer_id().bytes(); }

// An echo protocol served by a node: every byte comes back, then FIN after the remote's FIN. When
// the send queue is full (BUSY: nothing taken) it keeps the bytes and pauses reading until writable.
struct EchoServer {
  struct State {
    Node *node;
    Bytes pending;
    bool eof = false;
  };
  static chorus_status accept(void *arg, const chorus_p2p_stream_info *, chorus_p2p_stream_handler *h) {
    h->arg = new State{static_cast<Node *>(arg), {}, false};
    h->on_data = [](void *a, uint64_t s, const uint8_t *d, size_t n) {
      auto *st = static_cast<State *>(a);
      if (!st->pending.empty() || st->node->write(s, d, n) == CHORUS_E_BUSY) {
        st->pending.insert(st->pending.end(), d, d + n);
        st->node->set_read_paused(s, 1);
      }
    };
    h->on_writable = [](void *a, uint64_t s) {
      auto *st = static_cast<State *>(a);
      if (st->node->write(s, st->pending.data(), st->pending.size()) != CHORUS_OK) return;
      st->pending.clear();
      if (st->eof) st->node->close_write(s);
      st->node->set_read_paused(s, 0);
    };
    h->on_eof = [](void *a, uint64_t s) {
      auto *st = static_cast<State *>(a);
      st->eof = true;
      if (st->pending.empty()) st->node->close_write(s);
    };
    h->on_closed = [](void *a, uint64_t, chorus_status, const char *) { delete static_cast<State *>(a); };
    return CHORUS_OK;
  }
};

// A client stream that sends `total` pseudo-random bytes and checks they come back.
struct EchoClient {
  Node *node = nullptr;
  uint64_t stream = 0;
  Bytes sent, got;
  size_t off = 0;
  std::promise<std::pair<chorus_status, std::string>> done;
  bool finished = false;
  std::promise<void> *progress = nullptr;  // set once `progress_at` bytes came back
  size_t progress_at = 0;

  void pump() {
    while (off < sent.size()) {
      const size_t n = std::min<size_t>(64 * 1024, sent.size() - off);
      if (node->write(stream, sent.data() + off, n) != CHORUS_OK) return;  // BUSY: on_writable resumes
      off += n;
    }
    node->close_write(stream);
  }
  chorus_p2p_stream_handler handler() {
    chorus_p2p_stream_handler h{};
    h.struct_size = sizeof h;
    h.arg = this;
    h.on_data = [](void *a, uint64_t, const uint8_t *d, size_t n) {
      auto *c = static_cast<EchoClient *>(a);
      const bool before = c->got.size() < c->progress_at;
      c->got.insert(c->got.end(), d, d + n);
      if (c->progress != nullptr && before && c->got.size() >= c->progress_at) c->progress->set_value();
    };
    h.on_writable = [](void *a, uint64_t) { static_cast<EchoClient *>(a)->pump(); };
    h.on_closed = [](void *a, uint64_t, chorus_status st, const char *reason) {
      auto *c = static_cast<EchoClient *>(a);
      if (!c->finished) {
        c->finished = true;
        c->done.set_value({st, reason});
      }
    };
    return h;
  }
  // Opens a /chorus/echo/1.0.0 stream to `server` and starts sending once it is open; a refused
  // open ends this client with the refusal.
  chorus_status open_to(const Bytes &server, uint32_t timeout_ms) {
    const char *protos[] = {"/chorus/echo/1.0.0"};
    auto h = handler();
    return node->open_stream(server.data(), server.size(), protos, 1, &h, timeout_ms,
                             [](void *arg, chorus_status st, const chorus_p2p_stream_info *info, const chorus_error *e) {
                               auto *c = static_cast<EchoClient *>(arg);
                               if (st != CHORUS_OK) {
                                 c->finished = true;
                                 c->done.set_value({st, e != nullptr ? e->message : "?"});
                                 return;
                               }
                               c->stream = info->stream;
                               EXPECT_STREQ(info->protocol, "/chorus/echo/1.0.0");
                               c->pump();
                             },
                             this, nullptr);
  }
};

class NodePair : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    a_ = std::make_unique<Node>(loopback_settings(), identity_from(0x11), log_);
    b_ = std::make_unique<Node>(loopback_settings(), identity_from(0x22), log_);
    ASSERT_EQ(a_->start(), "");
    ASSERT_EQ(b_->start(), "");
  }
  void TearDown() override {
    a_->stop();
    b_->stop();
  }
  // b serves the echo protocol and a is connected to it.
  void connect_a_to_echoing_b() {
    ASSERT_EQ(b_->set_protocol_handler("/chorus/echo/1.0.0", &EchoServer::accept, b_.get(), nullptr), CHORUS_OK);
    ASSERT_EQ(connect_sync(*a_, listen_addr(*b_)).status, CHORUS_OK);
  }
  QuietLog log_;
  std::unique_ptr<Node> a_, b_;
};

TEST_F(NodePair, ConnectsIdentifiesAndPings) {
  struct Events {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::pair<uint32_t, std::string>> seen;
  } ev;
  uint64_t sub = 0;
  ASSERT_EQ(b_->subscribe(
                [](void *arg, const chorus_p2p_event *e) {
                  auto *ev = static_cast<Events *>(arg);
                  std::lock_guard lk(ev->mu);
                  ev->seen.emplace_back(e->type, e->identify_json != nullptr ? e->identify_json : e->peer_text);
                  ev->cv.notify_all();
                },
                &ev, &sub),
            CHORUS_OK);

  const auto r = connect_sync(*a_, listen_addr(*b_));
  ASSERT_EQ(r.status, CHORUS_OK) << r.error;
  EXPECT_EQ(r.peer, "12D3KooWLdJAwPtyQ5RFnr9wGXsQzpf3P2SeqFbYkqbfVehLu4Ns");  // seed 22 (docs/protocols.md, Keys and peer ids)
  {
    std::unique_lock lk(ev.mu);
    ASSERT_TRUE(ev.cv.wait_for(lk, 10s, [&] {
      for (auto &[t, s] : ev.seen)
        if (t == CHORUS_P2P_EVENT_IDENTIFIED) return true;
      return false;
    }));
    EXPECT_EQ(ev.seen.front().first, static_cast<uint32_t>(CHORUS_P2P_EVENT_CONNECTED));
    EXPECT_EQ(ev.seen.front().second, "12D3KooWPqT2nMDSiXUSx5D7fasaxhxKigVhcqfkKqrLghCq9jxz");  // seed 11
    for (auto &[t, s] : ev.seen)
      if (t == CHORUS_P2P_EVENT_IDENTIFIED) {
        EXPECT_NE(s.find("node-test/1"), std::string::npos) << s;
      }
  }
  const auto pb = peer_bytes(*b_);
  EXPECT_EQ(a_->is_connected(pb.data(), pb.size()), 1);

  std::promise<std::pair<chorus_status, uint64_t>> pong;
  ASSERT_EQ(a_->ping(pb.data(), pb.size(), 5000,
                     [](void *arg, chorus_status st, uint64_t rtt, const chorus_error *) {
                       static_cast<std::promise<std::pair<chorus_status, uint64_t>> *>(arg)->set_value({st, rtt});
                     },
                     &pong, nullptr),
            CHORUS_OK);
  auto f = pong.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  const auto [st, rtt] = f.get();
  EXPECT_EQ(st, CHORUS_OK);
  EXPECT_GT(rtt, 0u);

  std::string info;
  ASSERT_EQ(b_->get_info_json(info, nullptr), CHORUS_OK);
  const auto ij = nlohmann::json::parse(info);
  EXPECT_EQ(ij["peer_id"], "12D3KooWLdJAwPtyQ5RFnr9wGXsQzpf3P2SeqFbYkqbfVehLu4Ns");
  EXPECT_EQ(ij["peer_id_cid"].get<std::string>().rfind("bafzaa", 0), 0u) << ij.dump();

  std::string peers;
  ASSERT_EQ(a_->list_peers_json(peers, nullptr), CHORUS_OK);
  auto j = nlohmann::json::parse(peers);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["direction"], "outbound");
  EXPECT_EQ(b_->unsubscribe(sub), CHORUS_OK);
  EXPECT_EQ(b_->unsubscribe(sub), CHORUS_E_NOT_FOUND);
}

TEST_F(NodePair, WrongPeerIdFailsTheHandshake) {
  const std::string addr = listen_addr(*b_);
  const std::string wrong = addr.substr(0, addr.find("/p2p/")) + "/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq";
  const auto r = connect_sync(*a_, wrong);
  EXPECT_NE(r.status, CHORUS_OK);
  EXPECT_NE(r.error.find("peer id mismatch"), std::string::npos) << r.error;
  const auto pb = peer_bytes(*b_);
  EXPECT_EQ(a_->is_connected(pb.data(), pb.size()), 0);
  EXPECT_GE(a_->stats().hs_fail_peer_id.load(), 1u);
}

TEST_F(NodePair, UnknownProtocolIsRefused) {
  ASSERT_EQ(connect_sync(*a_, listen_addr(*b_)).status, CHORUS_OK);
  const auto pb = peer_bytes(*b_);
  const char *protos[] = {"/no/such/1.0.0"};
  EchoClient c;
  c.node = a_.get();
  auto h = c.handler();
  std::promise<std::pair<chorus_status, std::string>> opened;
  ASSERT_EQ(a_->open_stream(pb.data(), pb.size(), protos, 1, &h, 5000,
                            [](void *arg, chorus_status st, const chorus_p2p_stream_info *, const chorus_error *e) {
                              static_cast<std::promise<std::pair<chorus_status, std::string>> *>(arg)->set_value(
                                  {st, e != nullptr ? e->message : ""});
                            },
                            &opened, nullptr),
            CHORUS_OK);
  auto f = opened.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  const auto [st, why] = f.get();
  EXPECT_EQ(st, CHORUS_E_PROTOCOL);
  EXPECT_NE(why.find("no protocol accepted"), std::string::npos) << why;
}

void run_echo(Node &client, Node &server, size_t streams, size_t bytes_each) {
  const auto pb = peer_bytes(server);
  std::vector<std::unique_ptr<EchoClient>> clients;
  for (size_t i = 0; i < streams; ++i) {
    auto c = std::make_unique<EchoClient>();
    c->node = &client;
    c->sent.resize(bytes_each);
    randombytes_buf(c->sent.data(), c->sent.size());
    clients.push_back(std::move(c));
  }
  for (auto &c : clients) ASSERT_EQ(c->open_to(pb, 10000), CHORUS_OK);
  for (auto &c : clients) {
    auto f = c->done.get_future();
    ASSERT_EQ(f.wait_for(60s), std::future_status::ready);
    const auto [st, why] = f.get();
    ASSERT_EQ(st, CHORUS_OK) << why;
    ASSERT_EQ(c->got.size(), c->sent.size());
    ASSERT_TRUE(c->got == c->sent);
  }
}

TEST_F(NodePair, EchoManyStreamsAndALargeTransfer) {
  ASSERT_EQ(b_->set_protocol_handler("/chorus/echo/1.0.0", &EchoServer::accept, b_.get(), nullptr), CHORUS_OK);
  EXPECT_EQ(b_->set_protocol_handler("/chorus/echo/1.0.0", &EchoServer::accept, b_.get(), nullptr), CHORUS_E_EXISTS);
  ASSERT_EQ(connect_sync(*a_, listen_addr(*b_)).status, CHORUS_OK);
  run_echo(*a_, *b_, 1000, 1024);
  run_echo(*a_, *b_, 1, 8 << 20);  // several windows and send-buffer high-water marks
  run_echo(*a_, *b_, 16, 1 << 20);  // many full windows in flight on one connection at once
}

// The info handed to open_stream's callback stays readable even when the callback resets the stream.
TEST_F(NodePair, ResetInsideTheOpenCallbackKeepsInfoValid) {
  ASSERT_NO_FATAL_FAILURE(connect_a_to_echoing_b());
  const auto pb = peer_bytes(*b_);
  std::string proto = "/chorus/echo/1.0.0";
  const char *protos[] = {proto.c_str()};
  chorus_p2p_stream_handler h{};
  h.struct_size = sizeof h;
  h.on_data = [](void *, uint64_t, const uint8_t *, size_t) {};
  struct Box {
    Node *node;
    std::promise<std::string> got;
  } box{a_.get(), {}};
  ASSERT_EQ(a_->open_stream(pb.data(), pb.size(), protos, 1, &h, 5000,
                            [](void *arg, chorus_status st, const chorus_p2p_stream_info *info, const chorus_error *) {
                              auto *b = static_cast<Box *>(arg);
                              if (st != CHORUS_OK) {
                                b->got.set_value("failed");
                                return;
                              }
                              EXPECT_EQ(b->node->reset(info->stream), CHORUS_OK);
                              b->got.set_value(std::string(info->protocol) + " " + info->peer_text);
                            },
                            &box, nullptr),
            CHORUS_OK);
  proto.assign(proto.size(), 'x');  // the caller's array is not used after the call
  auto f = box.got.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get(), "/chorus/echo/1.0.0 12D3KooWLdJAwPtyQ5RFnr9wGXsQzpf3P2SeqFbYkqbfVehLu4Ns");
}

TEST_F(NodePair, StopEndsOpenStreams) {
  ASSERT_NO_FATAL_FAILURE(connect_a_to_echoing_b());
  const auto pb = peer_bytes(*b_);
  const char *protos[] = {"/chorus/echo/1.0.0"};
  EchoClient c;
  c.node = a_.get();
  auto h = c.handler();
  std::promise<uint64_t> opened;
  ASSERT_EQ(a_->open_stream(pb.data(), pb.size(), protos, 1, &h, 5000,
                            [](void *arg, chorus_status, const chorus_p2p_stream_info *info, const chorus_error *) {
                              static_cast<std::promise<uint64_t> *>(arg)->set_value(info != nullptr ? info->stream : 0);
                            },
                            &opened, nullptr),
            CHORUS_OK);
  auto f = opened.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  const uint64_t id = f.get();
  ASSERT_NE(id, 0u);
  a_->stop();
  auto d = c.done.get_future();
  ASSERT_EQ(d.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(d.get().first, CHORUS_E_UNAVAILABLE);
  EXPECT_EQ(a_->write(id, reinterpret_cast<const uint8_t *>("x"), 1), CHORUS_E_NOT_FOUND);
}

// Stopping both nodes in the middle of a large echo, with megabytes queued in both directions: the
// stream ends exactly once, and nothing is used after it is freed (ASan build).
TEST_F(NodePair, StopDuringALargeTransferEndsItCleanly) {
  ASSERT_NO_FATAL_FAILURE(connect_a_to_echoing_b());
  EchoClient c;
  c.node = a_.get();
  c.sent.resize(64 << 20);
  std::promise<void> progress;
  c.progress = &progress;
  c.progress_at = 4 << 20;
  ASSERT_EQ(c.open_to(peer_bytes(*b_), 5000), CHORUS_OK);
  ASSERT_EQ(progress.get_future().wait_for(30s), std::future_status::ready);
  b_->stop();  // the echoing side, busy encrypting what it sends back
  a_->stop();
  auto d = c.done.get_future();
  ASSERT_EQ(d.wait_for(10s), std::future_status::ready);
  const auto [st, why] = d.get();
  EXPECT_NE(st, CHORUS_OK) << why;
  EXPECT_LT(c.got.size(), c.sent.size());
}

TEST(NodeLimits, InboundConnectionLimitRefuses) {
  ASSERT_GE(sodium_init(), 0);
  QuietLog log;
  auto server_settings = loopback_settings();
  server_settings.limits.max_connections = 1;
  server_settings.limits.high_watermark = 1;
  server_settings.limits.low_watermark = 1;
  Node server(server_settings, identity_from(0x33), log);
  Node c1(loopback_settings(), identity_from(0x44), log);
  Node c2(loopback_settings(), identity_from(0x55), log);
  ASSERT_EQ(server.start(), "");
  ASSERT_EQ(c1.start(), "");
  ASSERT_EQ(c2.start(), "");
  ASSERT_EQ(connect_sync(c1, listen_addr(server)).status, CHORUS_OK);
  const auto r = connect_sync(c2, listen_addr(server), 3000);
  EXPECT_NE(r.status, CHORUS_OK);
  EXPECT_GE(server.stats().inbound_rejected.load(), 1u);
  c2.stop();
  c1.stop();
  server.stop();
}

}  // namespace
}  // namespace chorus::p2p

namespace chorus::p2p {
namespace {

TEST(NodeIpv6, ConnectsOverIpv6Loopback) {
  ASSERT_GE(sodium_init(), 0);
  QuietLog log;
  auto s6 = loopback_settings();
  s6.listen = {"/ip6/::1/tcp/0"};
  Node a(s6, identity_from(0x66), log), b(s6, identity_from(0x77), log);
  const std::string err = b.start();
  if (!err.empty()) GTEST_SKIP() << "no IPv6 loopback here: " << err;
  ASSERT_EQ(a.start(), "");
  const std::string addr = listen_addr(b);
  ASSERT_EQ(addr.rfind("/ip6/::1/tcp/", 0), 0u) << addr;
  const auto r = connect_sync(a, addr);
  EXPECT_EQ(r.status, CHORUS_OK) << r.error;
  std::string peers;
  ASSERT_EQ(b.list_peers_json(peers, nullptr), CHORUS_OK);
  EXPECT_NE(peers.find("/ip6/::1/tcp/"), std::string::npos) << peers;
  a.stop();
  b.stop();
}

}  // namespace
}  // namespace chorus::p2p

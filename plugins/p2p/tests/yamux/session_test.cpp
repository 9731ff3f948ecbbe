// Two sessions wired back to back, plus raw frames fed to one session to exercise protocol errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <set>

#include "yamux/session.hpp"

namespace chorus::p2p::yamux {
namespace {

constexpr uint32_t KiB = 1024;
constexpr uint32_t MiB = 1024 * 1024;

// Records every Handler call; consumes data as it arrives unless told not to.
struct Recorder : Handler {
  Session *session = nullptr;
  bool auto_consume = true;
  std::vector<uint32_t> opened, fins, resets, closed, writable, go_aways;
  std::map<uint32_t, Bytes> data;
  std::function<void(uint32_t)> opened_hook, writable_hook, fin_hook;
  std::function<void(uint32_t, BytesView)> data_hook;

  void on_stream_opened(uint32_t id) override {
    opened.push_back(id);
    if (opened_hook) opened_hook(id);
  }
  void on_data(uint32_t id, BytesView d) override {
    if (data_hook) {
      data_hook(id, d);
    } else {
      append(data[id], d);
    }
    if (auto_consume) session->consume(id, d.size());
  }
  void on_remote_fin(uint32_t id) override {
    fins.push_back(id);
    if (fin_hook) fin_hook(id);
  }
  void on_stream_reset(uint32_t id) override { resets.push_back(id); }
  void on_stream_closed(uint32_t id) override { closed.push_back(id); }
  void on_writable(uint32_t id) override {
    writable.push_back(id);
    if (writable_hook) writable_hook(id);
  }
  void on_go_away(uint32_t code) override { go_aways.push_back(code); }
};

Config client_config() {
  Config c;
  c.client = true;
  return c;
}
Config server_config() { return Config{}; }

struct Pair {
  Recorder ch, sh;
  Session client, server;
  size_t chunk = SIZE_MAX;  // bytes per feed() call

  explicit Pair(Config cc = client_config(), Config sc = server_config()) : client(cc, ch), server(sc, sh) {
    ch.session = &client;
    sh.session = &server;
  }

  static Session::Status feed_chunked(Session &s, const Bytes &bytes, size_t chunk) {
    for (size_t at = 0; at < bytes.size(); at += chunk) {
      size_t n = std::min(chunk, bytes.size() - at);
      if (s.feed(BytesView(bytes.data() + at, n)) != Session::Status::ok) return Session::Status::failed;
    }
    return Session::Status::ok;
  }

  // Moves bytes both ways until neither side has anything to send. False if a session failed.
  bool pump() {
    Bytes buf;
    for (int rounds = 0; rounds < 1000000; ++rounds) {
      bool moved = false;
      if (client.has_output()) {
        buf.clear();
        client.take_output(buf);
        if (feed_chunked(server, buf, chunk) != Session::Status::ok) return false;
        moved = true;
      }
      if (server.has_output()) {
        buf.clear();
        server.take_output(buf);
        if (feed_chunked(client, buf, chunk) != Session::Status::ok) return false;
        moved = true;
      }
      if (!moved) return true;
    }
    return false;
  }
};

Bytes frame(FrameType type, uint16_t flags, uint32_t id, uint32_t length, BytesView payload = {}) {
  Bytes b;
  append_header(b, Header{type, flags, id, length});
  append(b, payload);
  return b;
}

// Splits a session's output into frames (header + payload size).
std::vector<Header> frames_of(const Bytes &out) {
  std::vector<Header> hs;
  size_t at = 0;
  while (at + kHeaderSize <= out.size()) {
    Header h;
    EXPECT_EQ(decode_header(out.data() + at, h), nullptr);
    hs.push_back(h);
    at += kHeaderSize + (h.type == FrameType::data ? h.length : 0);
  }
  EXPECT_EQ(at, out.size());
  return hs;
}

Bytes output_of(Session &s) {
  Bytes b;
  s.take_output(b);
  return b;
}

Bytes pattern(size_t n, uint32_t seed) {
  Bytes b(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto &c : b) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<uint8_t>(x);
  }
  return b;
}

bool contains(const std::vector<uint32_t> &v, uint32_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

// ---------------------------------------------------------------------------------------------------

TEST(YamuxSession, OpenWriteFinBothWaysClosesStream) {
  Pair p;
  uint32_t id = p.client.open_stream();
  EXPECT_EQ(id, 1u);
  EXPECT_EQ(p.client.write(id, as_bytes("hello")), 5u);
  p.client.close(id);
  ASSERT_TRUE(p.pump());

  EXPECT_EQ(p.sh.opened, std::vector<uint32_t>{1});
  EXPECT_EQ(as_string_view(p.sh.data[1]), "hello");
  EXPECT_EQ(p.sh.fins, std::vector<uint32_t>{1});
  EXPECT_TRUE(p.sh.closed.empty());
  EXPECT_EQ(p.client.write(id, as_bytes("more")), 0u) << "no writes after our FIN";

  EXPECT_EQ(p.server.write(1, as_bytes("world")), 5u);
  p.server.close(1);
  EXPECT_EQ(p.sh.closed, std::vector<uint32_t>{1});  // both FINs: freed at once
  ASSERT_TRUE(p.pump());
  EXPECT_EQ(as_string_view(p.ch.data[1]), "world");
  EXPECT_EQ(p.ch.fins, std::vector<uint32_t>{1});
  EXPECT_EQ(p.ch.closed, std::vector<uint32_t>{1});
  EXPECT_EQ(p.client.stream_count(), 0u);
  EXPECT_EQ(p.server.stream_count(), 0u);
  EXPECT_TRUE(p.ch.resets.empty());
  EXPECT_TRUE(p.sh.resets.empty());
}

TEST(YamuxSession, OpenSendsWindowUpdateSynAndDataWithoutWaitingForAck) {
  Pair p;
  uint32_t id = p.client.open_stream();
  ASSERT_EQ(p.client.write(id, as_bytes("abc")), 3u);
  Bytes out = output_of(p.client);
  EXPECT_EQ(to_hex(out), "000100010000000100000000" "000000000000000100000003" "616263");

  ASSERT_EQ(p.server.feed(out), Session::Status::ok);
  // The acceptor ACKs at once with a Window Update, before the application writes anything.
  EXPECT_EQ(to_hex(output_of(p.server)), "000100020000000100000000");
  EXPECT_EQ(as_string_view(p.sh.data[1]), "abc");
}

TEST(YamuxSession, ServerOpensEvenIdsAndLargerInitialWindowIsAnnounced) {
  Config sc = server_config();
  sc.initial_window = 1 * MiB;
  Config cc = client_config();
  cc.initial_window = 512 * KiB;
  Pair p(cc, sc);
  uint32_t id = p.server.open_stream();
  EXPECT_EQ(id, 2u);
  EXPECT_EQ(p.server.open_stream(), 4u);
  Bytes out = output_of(p.server);
  auto hs = frames_of(out);
  ASSERT_EQ(hs.size(), 2u);
  EXPECT_EQ(hs[0], (Header{FrameType::window_update, kFlagSyn, 2, 1 * MiB - 256 * KiB}));
  ASSERT_EQ(p.client.feed(out), Session::Status::ok);
  EXPECT_EQ(p.client.send_window(2), 1 * MiB);
  auto acks = frames_of(output_of(p.client));
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_EQ(acks[0], (Header{FrameType::window_update, kFlagAck, 2, 256 * KiB}));
  EXPECT_EQ(p.client.receive_window(2), 512 * KiB);
}

TEST(YamuxSession, ResetByClientReachesServerAndLateFramesAreDropped) {
  Pair p;
  uint32_t id = p.client.open_stream();
  p.client.write(id, as_bytes("x"));
  ASSERT_TRUE(p.pump());
  // The server writes before it learns about the reset: those frames arrive late at the client.
  ASSERT_EQ(p.server.write(id, as_bytes("late data")), 9u);
  p.server.close(id);
  Bytes late = output_of(p.server);

  p.client.reset(id);
  EXPECT_EQ(p.client.stream_count(), 0u);
  EXPECT_TRUE(p.ch.resets.empty()) << "our own reset is not reported back";
  ASSERT_EQ(p.client.feed(late), Session::Status::ok);
  EXPECT_TRUE(p.ch.data.empty());
  EXPECT_TRUE(p.ch.fins.empty());

  ASSERT_TRUE(p.pump());
  EXPECT_EQ(p.sh.resets, std::vector<uint32_t>{id});
  EXPECT_EQ(p.server.stream_count(), 0u);
  EXPECT_TRUE(p.sh.closed.empty());
  EXPECT_EQ(p.server.write(id, as_bytes("y")), 0u);
}

TEST(YamuxSession, StreamResetInsideOpenDropsFollowingData) {
  Pair p;
  p.sh.opened_hook = [&](uint32_t id) { p.server.reset(id); };
  uint32_t id = p.client.open_stream();
  p.client.write(id, pattern(100 * KiB, 1));
  ASSERT_TRUE(p.pump());
  EXPECT_TRUE(p.sh.data.empty());
  EXPECT_EQ(p.ch.resets, std::vector<uint32_t>{id});
  EXPECT_EQ(p.client.stream_count(), 0u);
}

TEST(YamuxSession, ResetInsideOnDataDropsRestOfPayload) {
  Pair p;
  size_t seen = 0;
  p.sh.data_hook = [&](uint32_t id, BytesView d) {
    seen += d.size();
    p.server.reset(id);
  };
  p.sh.auto_consume = false;
  p.chunk = 1000;  // the 60 KiB frame arrives in many pieces; only the first is delivered
  uint32_t id = p.client.open_stream();
  p.client.write(id, pattern(60 * KiB, 2));
  ASSERT_TRUE(p.pump());
  EXPECT_EQ(seen, 1000u - 2 * kHeaderSize);
  EXPECT_EQ(p.ch.resets, std::vector<uint32_t>{id});
}

TEST(YamuxSession, ThousandConcurrentStreams) {
  Pair p;
  std::set<uint32_t> ids;
  for (int i = 0; i < 1000; ++i) {
    uint32_t id = p.client.open_stream();
    ASSERT_NE(id, 0u) << i;
    ids.insert(id);
    std::string msg = "stream " + std::to_string(id);
    ASSERT_EQ(p.client.write(id, as_bytes(msg)), msg.size());
    if (i % 200 == 199) {
      ASSERT_TRUE(p.pump());  // drain the ACK backlog (256)
    }
  }
  EXPECT_EQ(p.client.open_stream(), 0u) << "max_outbound_streams";
  ASSERT_TRUE(p.pump());
  EXPECT_EQ(p.server.stream_count(), 1000u);
  EXPECT_EQ(p.sh.opened.size(), 1000u);
  // Echo on every stream, then both sides close.
  for (uint32_t id : ids) {
    Bytes got = p.sh.data[id];
    ASSERT_EQ(as_string_view(got), "stream " + std::to_string(id));
    ASSERT_EQ(p.server.write(id, got), got.size());
    p.server.close(id);
    p.client.close(id);
  }
  ASSERT_TRUE(p.pump());
  for (uint32_t id : ids) ASSERT_EQ(as_string_view(p.ch.data[id]), "stream " + std::to_string(id));
  EXPECT_EQ(p.ch.closed.size(), 1000u);
  EXPECT_EQ(p.sh.closed.size(), 1000u);
  EXPECT_EQ(p.client.stream_count(), 0u);
  EXPECT_EQ(p.server.stream_count(), 0u);
  EXPECT_NE(p.client.open_stream(), 0u) << "slots are free again";
}

// Sends `total` bytes from client to server through the flow-control window, checking integrity.
void transfer(Pair &p, size_t total, size_t write_size) {
  Bytes src = pattern(1 * MiB + 7, 42);  // a period that is not a multiple of the frame size
  uint32_t id = p.client.open_stream();
  size_t sent = 0, received = 0;
  bool mismatch = false;
  auto push = [&](uint32_t) {
    while (sent < total) {
      size_t off = sent % src.size();
      size_t n = std::min({write_size, total - sent, src.size() - off});
      size_t k = p.client.write(id, BytesView(src.data() + off, n));
      sent += k;
      if (k < n) break;
    }
    if (sent == total) p.client.close(id);
  };
  p.ch.writable_hook = push;
  p.sh.data_hook = [&](uint32_t, BytesView d) {
    while (!d.empty()) {  // compare run by run against the repeating source
      size_t off = received % src.size();
      size_t n = std::min(d.size(), src.size() - off);
      if (std::memcmp(d.data(), src.data() + off, n) != 0) mismatch = true;
      received += n;
      d = d.subspan(n);
    }
  };
  ASSERT_TRUE(p.pump());
  p.server.close(id);  // the server only sends its FIN; the client keeps writing
  push(id);
  EXPECT_LT(sent, total) << "the window must stop the writer before the end";
  ASSERT_TRUE(p.pump()) << p.server.error() << p.client.error();
  EXPECT_EQ(sent, total);
  EXPECT_EQ(received, total);
  EXPECT_FALSE(mismatch);
  EXPECT_EQ(p.sh.closed, std::vector<uint32_t>{id});
  EXPECT_EQ(p.ch.closed, std::vector<uint32_t>{id});
}

TEST(YamuxSession, Transfers64MiBThroughFixedWindow) {
  Config sc = server_config();
  sc.auto_tune_window = false;
  Pair p(client_config(), sc);
  transfer(p, 64 * MiB, 200 * KiB);
  EXPECT_GT(p.ch.writable.size(), 200u) << "writer was throttled by a 256 KiB window";
}

TEST(YamuxSession, AutoTuningGrowsWindowForFastConsumer) {
  Pair p;
  uint32_t max_seen = 0;
  uint32_t id = p.client.open_stream();
  ASSERT_TRUE(p.pump());
  Bytes chunk = pattern(64 * KiB, 3);
  for (int i = 0; i < 256; ++i) {  // 16 MiB
    while (p.client.write(id, chunk) == 0) ASSERT_TRUE(p.pump());
    max_seen = std::max(max_seen, p.server.receive_window(id));
  }
  ASSERT_TRUE(p.pump());
  max_seen = std::max(max_seen, p.server.receive_window(id));
  EXPECT_GT(max_seen, 256 * KiB);
  EXPECT_LE(max_seen, 16 * MiB);
  EXPECT_GT(p.client.send_window(id), 256 * KiB);
}

TEST(YamuxSession, SlowConsumerWindowIsNotGrown) {
  Pair p;
  p.sh.auto_consume = false;
  uint32_t id = p.client.open_stream();
  Bytes big = pattern(1 * MiB, 4);
  EXPECT_EQ(p.client.write(id, big), 256 * KiB);
  ASSERT_TRUE(p.pump());
  EXPECT_EQ(p.client.write(id, big), 0u);
  EXPECT_EQ(p.sh.data[id].size(), 256 * KiB);
  EXPECT_EQ(p.server.receive_window(id), 256 * KiB);
}

TEST(YamuxSession, ConsumeBatchesWindowUpdatesAtHalfWindow) {
  Config sc = server_config();
  sc.auto_tune_window = false;
  Pair p(client_config(), sc);
  p.sh.auto_consume = false;
  uint32_t id = p.client.open_stream();
  ASSERT_EQ(p.client.write(id, pattern(256 * KiB, 5)), 256 * KiB);
  ASSERT_TRUE(p.pump());
  EXPECT_EQ(p.client.send_window(id), 0u);
  p.server.consume(id, 100 * KiB);
  EXPECT_FALSE(p.server.has_output());
  p.server.consume(id, 28 * KiB);
  auto hs = frames_of(output_of(p.server));
  ASSERT_EQ(hs.size(), 1u);
  EXPECT_EQ(hs[0], (Header{FrameType::window_update, 0, id, 128 * KiB}));
  // Consuming more than was delivered grants nothing extra.
  p.server.consume(id, 10 * MiB);
  hs = frames_of(output_of(p.server));
  ASSERT_EQ(hs.size(), 1u);
  EXPECT_EQ(hs[0].length, 128 * KiB);
}

TEST(YamuxSession, ShortWriteThenOnWritable) {
  Pair p;
  p.sh.auto_consume = false;
  uint32_t id = p.client.open_stream();
  Bytes big = pattern(300 * KiB, 6);
  EXPECT_EQ(p.client.write(id, big), 256 * KiB);
  ASSERT_TRUE(p.pump());
  EXPECT_TRUE(p.ch.writable.empty());
  p.server.consume(id, 256 * KiB);
  ASSERT_TRUE(p.pump());
  EXPECT_EQ(p.ch.writable, std::vector<uint32_t>{id});
  EXPECT_GE(p.client.send_window(id), 128 * KiB);
}

TEST(YamuxSession, LargeWritesAreSplitIntoMaxFramePayload) {
  Pair p;
  uint32_t id = p.client.open_stream();
  output_of(p.client);
  ASSERT_EQ(p.client.write(id, pattern(200 * KiB, 7)), 200 * KiB);
  auto hs = frames_of(output_of(p.client));
  ASSERT_EQ(hs.size(), 4u);
  size_t total = 0;
  for (auto &h : hs) {
    EXPECT_EQ(h.type, FrameType::data);
    EXPECT_LE(h.length, 64 * KiB - 12);
    total += h.length;
  }
  EXPECT_EQ(total, 200 * KiB);
}

TEST(YamuxSession, OneByteFeedsGiveTheSameResult) {
  for (size_t chunk : {size_t{1}, size_t{5}, size_t{13}, size_t{4099}}) {
    Pair p;
    p.chunk = chunk;
    uint32_t a = p.client.open_stream(), b = p.client.open_stream();
    Bytes da = pattern(300 * KiB, 8), db = pattern(1000, 9);
    size_t sent_a = p.client.write(a, da);
    p.ch.writable_hook = [&](uint32_t id) {
      if (id == a) sent_a += p.client.write(a, BytesView(da).subspan(sent_a));
      if (sent_a == da.size()) p.client.close(a);
    };
    p.client.write(b, db);
    p.client.close(b);
    p.client.ping(77);
    ASSERT_TRUE(p.pump()) << chunk;
    EXPECT_EQ(p.sh.data[a], da) << chunk;
    EXPECT_EQ(p.sh.data[b], db) << chunk;
    EXPECT_EQ(p.sh.fins, (std::vector<uint32_t>{b, a})) << chunk;
  }
}

TEST(YamuxSession, PingIsAnsweredWithSameValue) {
  Pair p;
  p.client.ping(0xdeadbeef);
  Bytes req = output_of(p.client);
  EXPECT_EQ(to_hex(req), "0002000100000000deadbeef");
  ASSERT_EQ(p.server.feed(req), Session::Status::ok);
  Bytes reply = output_of(p.server);
  EXPECT_EQ(to_hex(reply), "0002000200000000deadbeef");
  ASSERT_EQ(p.client.feed(reply), Session::Status::ok);
  EXPECT_FALSE(p.client.has_output()) << "an ACK is not answered";
}

TEST(YamuxSession, GoAwayStopsNewStreamsButExistingContinue) {
  Pair p;
  uint32_t id = p.client.open_stream();
  ASSERT_TRUE(p.pump());
  p.server.go_away(kGoAwayNormal);
  EXPECT_EQ(p.server.open_stream(), 0u);
  ASSERT_TRUE(p.pump());
  EXPECT_EQ(p.ch.go_aways, std::vector<uint32_t>{kGoAwayNormal});
  EXPECT_TRUE(p.client.remote_going_away());
  EXPECT_EQ(p.client.open_stream(), 0u);
  EXPECT_EQ(p.client.write(id, as_bytes("still here")), 10u);
  ASSERT_TRUE(p.pump());
  EXPECT_EQ(as_string_view(p.sh.data[id]), "still here");

  // A SYN that arrives after our Go Away is refused with RST.
  ASSERT_EQ(p.server.feed(frame(FrameType::window_update, kFlagSyn, 3, 0)), Session::Status::ok);
  auto hs = frames_of(output_of(p.server));
  ASSERT_EQ(hs.size(), 1u);
  EXPECT_EQ(hs[0], (Header{FrameType::window_update, kFlagRst, 3, 0}));
  EXPECT_EQ(p.server.stream_count(), 1u);
}

TEST(YamuxSession, InboundStreamLimitResetsOnlyTheExtraStream) {
  Config sc = server_config();
  sc.max_inbound_streams = 2;
  Pair p(client_config(), sc);
  uint32_t a = p.client.open_stream(), b = p.client.open_stream(), c = p.client.open_stream();
  p.client.write(c, as_bytes("dropped"));
  ASSERT_TRUE(p.pump());
  EXPECT_EQ(p.sh.opened, (std::vector<uint32_t>{a, b}));
  EXPECT_TRUE(p.sh.data.empty());
  EXPECT_EQ(p.ch.resets, std::vector<uint32_t>{c});
  EXPECT_EQ(p.server.stream_count(), 2u);
  EXPECT_EQ(p.client.stream_count(), 2u);
  p.client.close(a);
  p.server.close(a);
  ASSERT_TRUE(p.pump());
  uint32_t d = p.client.open_stream();
  ASSERT_TRUE(p.pump());
  EXPECT_TRUE(contains(p.sh.opened, d));
}

TEST(YamuxSession, OutboundStreamLimit) {
  Config cc = client_config();
  cc.max_outbound_streams = 2;
  Pair p(cc);
  EXPECT_NE(p.client.open_stream(), 0u);
  uint32_t b = p.client.open_stream();
  EXPECT_NE(b, 0u);
  EXPECT_EQ(p.client.open_stream(), 0u);
  p.client.reset(b);
  EXPECT_NE(p.client.open_stream(), 0u);
}

TEST(YamuxSession, AckBacklogLimitsUnacknowledgedOpens) {
  Config cc = client_config();
  cc.max_ack_backlog = 4;
  Pair p(cc);
  for (int i = 0; i < 4; ++i) ASSERT_NE(p.client.open_stream(), 0u);
  EXPECT_EQ(p.client.open_stream(), 0u);
  ASSERT_TRUE(p.pump());  // ACKs arrive
  for (int i = 0; i < 4; ++i) EXPECT_NE(p.client.open_stream(), 0u);
  EXPECT_EQ(p.client.open_stream(), 0u);
}

TEST(YamuxSession, DefaultAckBacklogIs256) {
  Pair p;
  for (int i = 0; i < 256; ++i) ASSERT_NE(p.client.open_stream(), 0u);
  EXPECT_EQ(p.client.open_stream(), 0u);
}

TEST(YamuxSession, LateFramesForResetStreamsAreIgnored) {
  Pair p;
  uint32_t id = p.client.open_stream();
  ASSERT_TRUE(p.pump());
  p.server.reset(id);
  // Frames the client sent before it saw the RST.
  ASSERT_EQ(p.server.feed(frame(FrameType::data, 0, id, 4, as_bytes("late"))), Session::Status::ok);
  ASSERT_EQ(p.server.feed(frame(FrameType::window_update, 0, id, 1000)), Session::Status::ok);
  ASSERT_EQ(p.server.feed(frame(FrameType::window_update, kFlagFin, id, 0)), Session::Status::ok);
  ASSERT_EQ(p.server.feed(frame(FrameType::window_update, kFlagRst, id, 0)), Session::Status::ok);
  EXPECT_TRUE(p.sh.data.empty());
  EXPECT_TRUE(p.sh.fins.empty());
  EXPECT_TRUE(p.sh.resets.empty());
  // Late frames on a stream we opened and the peer reset.
  uint32_t s = p.server.open_stream();
  ASSERT_TRUE(p.pump());
  p.client.reset(s);
  ASSERT_TRUE(p.pump());
  EXPECT_EQ(p.sh.resets, std::vector<uint32_t>{s});
  ASSERT_EQ(p.server.feed(frame(FrameType::data, 0, s, 3, as_bytes("old"))), Session::Status::ok);
  EXPECT_FALSE(p.server.failed());
}

TEST(YamuxSession, DataAfterRemoteFinResetsThatStreamOnly) {
  Pair p;
  uint32_t a = p.client.open_stream(), b = p.client.open_stream();
  p.client.close(a);
  ASSERT_TRUE(p.pump());
  output_of(p.server);
  ASSERT_EQ(p.server.feed(frame(FrameType::data, 0, a, 3, as_bytes("bad"))), Session::Status::ok);
  EXPECT_EQ(p.sh.resets, std::vector<uint32_t>{a});
  EXPECT_TRUE(p.sh.data.empty());
  auto hs = frames_of(output_of(p.server));
  ASSERT_EQ(hs.size(), 1u);
  EXPECT_EQ(hs[0], (Header{FrameType::window_update, kFlagRst, a, 0}));
  EXPECT_EQ(p.server.stream_count(), 1u);
  EXPECT_EQ(p.client.write(b, as_bytes("ok")), 2u);
  ASSERT_TRUE(p.pump());
  EXPECT_EQ(as_string_view(p.sh.data[b]), "ok");
}

// ---- session-level protocol errors: Status::failed, a Go Away (protocol error) queued, reason given

void expect_protocol_error(Session &s, const Bytes &input, const std::string &reason_part) {
  output_of(s);
  EXPECT_EQ(s.feed(input), Session::Status::failed);
  EXPECT_TRUE(s.failed());
  EXPECT_NE(s.error().find(reason_part), std::string::npos) << s.error();
  Bytes out = output_of(s);
  ASSERT_GE(out.size(), kHeaderSize);
  EXPECT_EQ(to_hex(BytesView(out).last(kHeaderSize)), "000300000000000000000001");
  // A failed session refuses everything afterwards.
  EXPECT_EQ(s.feed(frame(FrameType::ping, kFlagSyn, 0, 1)), Session::Status::failed);
  EXPECT_EQ(s.open_stream(), 0u);
  EXPECT_FALSE(s.has_output());
}

TEST(YamuxSessionErrors, DataBeyondReceiveWindow) {
  Pair p;
  Bytes in = frame(FrameType::window_update, kFlagSyn, 1, 0);
  Bytes payload(256 * KiB + 1, 0xaa);
  append(in, frame(FrameType::data, 0, 1, static_cast<uint32_t>(payload.size()), payload));
  expect_protocol_error(p.server, in, "receive window");
}

TEST(YamuxSessionErrors, WindowIsCumulativeAcrossFrames) {
  Config sc = server_config();
  sc.auto_tune_window = false;
  Pair p(client_config(), sc);
  p.sh.auto_consume = false;
  Bytes in = frame(FrameType::window_update, kFlagSyn, 1, 0);
  Bytes payload(64 * KiB, 1);
  for (int i = 0; i < 4; ++i) append(in, frame(FrameType::data, 0, 1, 64 * KiB, payload));
  ASSERT_EQ(p.server.feed(in), Session::Status::ok);
  expect_protocol_error(p.server, frame(FrameType::data, 0, 1, 1, as_bytes("x")), "receive window");
}

TEST(YamuxSessionErrors, InboundSynWithOurParity) {
  Pair p;
  expect_protocol_error(p.client, frame(FrameType::window_update, kFlagSyn, 3, 0), "parity");
  Pair q;
  expect_protocol_error(q.server, frame(FrameType::data, kFlagSyn, 2, 0), "parity");
}

TEST(YamuxSessionErrors, SynForOpenStream) {
  Pair p;
  ASSERT_EQ(p.server.feed(frame(FrameType::window_update, kFlagSyn, 1, 0)), Session::Status::ok);
  expect_protocol_error(p.server, frame(FrameType::window_update, kFlagSyn, 1, 0), "already open");
}

TEST(YamuxSessionErrors, SynReusingClosedId) {
  Pair p;
  ASSERT_EQ(p.server.feed(frame(FrameType::window_update, kFlagSyn, 1, 0)), Session::Status::ok);
  ASSERT_EQ(p.server.feed(frame(FrameType::window_update, kFlagRst, 1, 0)), Session::Status::ok);
  EXPECT_EQ(p.sh.resets, std::vector<uint32_t>{1});
  expect_protocol_error(p.server, frame(FrameType::window_update, kFlagSyn, 1, 0), "reuses");
}

TEST(YamuxSessionErrors, FrameForNeverOpenedStream) {
  Pair p;
  expect_protocol_error(p.server, frame(FrameType::data, 0, 7, 1, as_bytes("x")), "unknown stream");
  Pair q;
  expect_protocol_error(q.client, frame(FrameType::window_update, 0, 5, 10), "unknown stream");
}

TEST(YamuxSessionErrors, StreamZero) {
  Pair p;
  expect_protocol_error(p.server, frame(FrameType::data, kFlagSyn, 0, 0), "stream 0");
}

TEST(YamuxSessionErrors, HugeDataFrame) {
  Pair p;
  expect_protocol_error(p.server, frame(FrameType::data, 0, 1, 0xffffffff), "16 MiB");
}

TEST(YamuxSessionErrors, BadVersionAndType) {
  Pair p;
  expect_protocol_error(p.server, *from_hex("010100010000000100000000"), "version");
  Pair q;
  // Split across feeds: the header is assembled first.
  Bytes bad = *from_hex("000700000000000000000000");
  q.server.feed(BytesView(bad).first(5));
  expect_protocol_error(q.server, Bytes(bad.begin() + 5, bad.end()), "type");
}

TEST(YamuxSessionErrors, SendWindowOverflow) {
  Pair p;
  uint32_t id = p.client.open_stream();
  ASSERT_TRUE(p.pump());
  expect_protocol_error(p.client, frame(FrameType::window_update, 0, id, 0xffffffff), "overflow");
}

TEST(YamuxSession, AcceptsDataFrameSynAndDataFin) {
  // rust-yamux style: open with Data|SYN carrying payload, close with an empty Data|FIN.
  Pair p;
  Bytes in = frame(FrameType::data, kFlagSyn, 1, 2, as_bytes("hi"));
  append(in, frame(FrameType::data, kFlagFin, 1, 0));
  ASSERT_EQ(p.server.feed(in), Session::Status::ok);
  EXPECT_EQ(p.sh.opened, std::vector<uint32_t>{1});
  EXPECT_EQ(as_string_view(p.sh.data[1]), "hi");
  EXPECT_EQ(p.sh.fins, std::vector<uint32_t>{1});
  p.server.close(1);
  EXPECT_EQ(p.sh.closed, std::vector<uint32_t>{1});
}

TEST(YamuxSession, ResetAfterFailureStillFreesTheStream) {
  Pair p;
  uint32_t id = p.client.open_stream();
  ASSERT_TRUE(p.pump());
  ASSERT_EQ(p.client.feed(frame(FrameType::window_update, kFlagSyn, 5, 0)), Session::Status::failed);
  output_of(p.client);
  EXPECT_EQ(p.client.stream_count(), 1u);
  p.client.reset(id);
  EXPECT_EQ(p.client.stream_count(), 0u);
  EXPECT_FALSE(p.client.has_output()) << "nothing is sent after the Go Away";
}

TEST(YamuxSession, RemoteGoAwayCodeIsReported) {
  Pair p;
  ASSERT_EQ(p.client.feed(frame(FrameType::go_away, 0, 0, kGoAwayInternalError)), Session::Status::ok);
  EXPECT_EQ(p.ch.go_aways, std::vector<uint32_t>{kGoAwayInternalError});
}

TEST(YamuxSession, TakeOutputAppendsToNonEmptyBuffer) {
  Pair p;
  p.client.ping(1);
  Bytes out{0x01, 0x02};
  p.client.take_output(out);
  EXPECT_EQ(out.size(), 2 + kHeaderSize);
  EXPECT_FALSE(p.client.has_output());
}

}  // namespace
}  // namespace chorus::p2p::yamux

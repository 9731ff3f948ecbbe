// The request handler against an in-memory RecordStore, a brute-force routing table and a test
// validator (keys under /test/: a value is valid when it starts with 'v'; the larger value wins).
#include "kad/handler.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

namespace chorus::dht {
namespace {

Bytes b(std::string_view s) { return chorus::p2p::to_bytes(chorus::p2p::as_bytes(s)); }

PeerId random_peer(std::mt19937_64 &rng) {
  uint8_t pk[32];
  for (auto &x : pk) x = static_cast<uint8_t>(rng());
  return PeerId::from_ed25519(pk);
}

// Just enough of RecordStore for the handler, in memory. fail_writes makes every call throw.
class MemoryStore : public RecordStore {
 public:
  bool fail = false;
  size_t max_provider_keys_per_peer = 1000;

  void put_record(const StoredRecord &r) override {
    check();
    records[r.key] = r;
  }
  std::optional<StoredRecord> get_record(BytesView key, int64_t) override {
    check();
    auto it = records.find(Bytes(key.begin(), key.end()));
    if (it == records.end()) return std::nullopt;
    return it->second;
  }
  bool remove_record(BytesView key) override { return records.erase(Bytes(key.begin(), key.end())) != 0; }
  std::vector<StoredRecord> local_records_older_than(int64_t, size_t) override { return {}; }

  // Synchronous underneath: the callback runs before the call returns.
  void put_record_async(const StoredRecord &r, WriteDone done) override {
    try {
      put_record(r);
    } catch (...) {
      done(std::current_exception());
      return;
    }
    done(nullptr);
  }
  void add_provider_async(const ProviderRecord &r, ProviderDone done) override {
    bool stored = false;
    try {
      stored = add_provider(r);
    } catch (...) {
      done(false, std::current_exception());
      return;
    }
    done(stored, nullptr);
  }
  bool add_provider(const ProviderRecord &r) override {
    check();
    size_t keys = 0;
    for (const auto &[k, list] : provider_lists)
      keys += std::any_of(list.begin(), list.end(), [&](const ProviderRecord &p) { return p.provider == r.provider; });
    auto &list = provider_lists[r.key];
    auto same = std::find_if(list.begin(), list.end(), [&](const ProviderRecord &p) { return p.provider == r.provider; });
    if (same != list.end()) {
      *same = r;
      return true;
    }
    if (keys >= max_provider_keys_per_peer) return false;
    list.push_back(r);
    return true;
  }
  std::vector<ProviderRecord> providers(BytesView key, int64_t, size_t max) override {
    check();
    auto it = provider_lists.find(Bytes(key.begin(), key.end()));
    if (it == provider_lists.end()) return {};
    std::vector<ProviderRecord> out(it->second.rbegin(), it->second.rend());  // newest first
    if (max != 0 && out.size() > max) out.resize(max);
    return out;
  }

  void add_local_provide(BytesView, int64_t) override {}
  bool remove_local_provide(BytesView) override { return false; }
  std::vector<Bytes> local_provides_older_than(int64_t) override { return {}; }
  void mark_provided(BytesView, int64_t) override {}
  void cache_put(BytesView, BytesView, int64_t, int64_t) override {}
  std::optional<Bytes> cache_get(BytesView, int64_t) override { return std::nullopt; }
  size_t sweep_expired(int64_t) override { return 0; }
  StoreStats stats() override { return {}; }

  std::map<Bytes, StoredRecord> records;
  std::map<Bytes, std::vector<ProviderRecord>> provider_lists;

 private:
  void check() {
    if (fail) throw StoreError("records.db: disk I/O error");
  }
};

RecordValidator test_validator() {
  RecordValidator v;
  v.validate = [](BytesView key, BytesView value, std::string *why) {
    std::string_view k = chorus::p2p::as_string_view(key);
    bool ok = k.starts_with("/test/") && !value.empty() && value[0] == 'v';
    if (!ok && why) *why = "invalid";
    return ok;
  };
  v.select = [](BytesView, const std::vector<Bytes> &values) {
    return static_cast<size_t>(std::max_element(values.begin(), values.end()) - values.begin());
  };
  return v;
}

class HandlerTest : public ::testing::Test {
 protected:
  std::mt19937_64 rng{16};
  PeerId self = random_peer(rng);
  PeerId alice = random_peer(rng);
  PeerId bob = random_peer(rng);
  MemoryStore store;
  std::vector<PeerId> table;  // the routing table, searched by brute force
  std::unordered_map<PeerId, PeerContact> contacts;
  HandlerOptions options;
  std::unique_ptr<RequestHandler> handler;
  int64_t now = 1'800'000'000'000;

  void SetUp() override {
    for (int i = 0; i < 40; ++i) {
      PeerId p = random_peer(rng);
      table.push_back(p);
      // Every fifth has no address: it must never be named.
      if (i % 5 != 4)
        contacts[p] = PeerContact{{Bytes{0x04, 10, 0, 0, uint8_t(i)}}, i % 2 ? ConnectionType::kConnected
                                                                             : ConnectionType::kNotConnected};
    }
    table.push_back(alice);
    contacts[alice] = PeerContact{{Bytes{0x04, 10, 1, 1, 1}}, ConnectionType::kConnected};
    make_handler();
  }

  void make_handler() {
    handler = std::make_unique<RequestHandler>(
        self, store,
        [this](const KadId &target, size_t count) {
          std::vector<PeerId> sorted = table;
          std::sort(sorted.begin(), sorted.end(), [&](const PeerId &x, const PeerId &y) {
            return closer(KadId::of_peer(x), KadId::of_peer(y), target);
          });
          if (sorted.size() > count) sorted.resize(count);
          return sorted;
        },
        [this](const PeerId &p) {
          auto it = contacts.find(p);
          return it == contacts.end() ? PeerContact{} : it->second;
        },
        test_validator(), options);
  }

  // The peers a correct closerPeers holds: the k closest in the table with addresses, not `requester`.
  std::vector<std::string> expected_closer(BytesView key, const PeerId &requester) {
    std::vector<PeerId> sorted = table;
    KadId target = KadId::of_key(key);
    std::sort(sorted.begin(), sorted.end(),
              [&](const PeerId &x, const PeerId &y) { return closer(KadId::of_peer(x), KadId::of_peer(y), target); });
    std::vector<std::string> out;
    for (const PeerId &p : sorted)
      if (p != requester && contacts.count(p) && out.size() < options.k) out.push_back(p.to_base58());
    return out;
  }

  // Peer ids as base58, so failures print readably.
  static std::string name(BytesView id) {
    auto p = PeerId::from_bytes(id, nullptr);
    return p ? p->to_base58() : "<bad id " + chorus::p2p::to_hex(id) + ">";
  }
  static std::vector<std::string> ids(const std::vector<PeerEntry> &entries) {
    std::vector<std::string> out;
    for (const auto &e : entries) out.push_back(name(e.id));
    return out;
  }

  static Message put(std::string_view key, std::string_view value) {
    Message m;
    m.type = MessageType::kPutValue;
    m.key = b(key);
    m.record = Record{b(key), b(value), ""};
    return m;
  }
  static Message request(MessageType type, Bytes key) {
    Message m;
    m.type = type;
    m.key = std::move(key);
    return m;
  }
  Message add_provider(const Bytes &key, const PeerId &named, std::vector<Bytes> addrs) {
    Message m = request(MessageType::kAddProvider, key);
    m.provider_peers.push_back(PeerEntry{named.bytes(), std::move(addrs), ConnectionType::kConnected});
    return m;
  }
};

TEST_F(HandlerTest, PingGetsAnEmptyPing) {
  auto reply = handler->handle(alice, request(MessageType::kPing, {}), now);
  ASSERT_TRUE(reply);
  EXPECT_EQ(*reply, Message{});  // type PING, nothing else
  EXPECT_EQ(handler->counters().requests_for(MessageType::kPing), 1u);
  EXPECT_EQ(handler->counters().replies_for(MessageType::kPing), 1u);
}

TEST_F(HandlerTest, FindNodeNamesTheKClosestWithAddressesButNeverTheRequester) {
  // Target alice's own id: alice is the closest peer of all, and must not be told about herself.
  auto reply = handler->handle(alice, request(MessageType::kFindNode, alice.bytes()), now);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->type, MessageType::kFindNode);
  EXPECT_EQ(reply->key, alice.bytes());
  ASSERT_EQ(reply->closer_peers.size(), options.k);
  EXPECT_EQ(ids(reply->closer_peers), expected_closer(alice.bytes(), alice));
  for (const PeerEntry &e : reply->closer_peers) {
    const PeerContact &c = contacts.at(*PeerId::from_bytes(e.id, nullptr));
    EXPECT_EQ(e.addrs, c.addrs);
    EXPECT_EQ(e.connection, c.connection);
  }
  // Bob asks for alice: alice, known with an address, comes first.
  auto for_bob = handler->handle(bob, request(MessageType::kFindNode, alice.bytes()), now);
  ASSERT_TRUE(for_bob);
  ASSERT_EQ(for_bob->closer_peers.size(), options.k);
  EXPECT_EQ(for_bob->closer_peers[0].id, alice.bytes());
  for (const PeerEntry &e : for_bob->closer_peers) EXPECT_NE(e.id, bob.bytes());
}

TEST_F(HandlerTest, FindNodeForAReachablePeerOutsideTheTableNamesIt) {
  PeerId client = random_peer(rng);  // a client-mode peer connected to us: not in the table
  contacts[client] = PeerContact{{Bytes{0x04, 10, 9, 9, 9}}, ConnectionType::kConnected};
  auto reply = handler->handle(bob, request(MessageType::kFindNode, client.bytes()), now);
  ASSERT_TRUE(reply);
  ASSERT_EQ(reply->closer_peers.size(), options.k);
  EXPECT_EQ(reply->closer_peers[0].id, client.bytes());
  EXPECT_EQ(reply->closer_peers[0].addrs, contacts[client].addrs);
}

TEST_F(HandlerTest, FindNodeWithoutKeyGetsNoReply) {
  EXPECT_FALSE(handler->handle(alice, request(MessageType::kFindNode, {}), now));
  EXPECT_EQ(handler->counters().rejected_for(RejectReason::kEmptyKey), 1u);
  EXPECT_EQ(handler->counters().replies_for(MessageType::kFindNode), 0u);
}

TEST_F(HandlerTest, PutValueStoresAndEchoesThenGetValueReturnsIt) {
  Message req = put("/test/a", "v1");
  auto reply = handler->handle(alice, req, now);
  ASSERT_TRUE(reply);
  EXPECT_EQ(*reply, req);
  ASSERT_EQ(store.records.count(b("/test/a")), 1u);
  EXPECT_EQ(store.records[b("/test/a")].value, b("v1"));
  EXPECT_EQ(store.records[b("/test/a")].received_ms, now);
  EXPECT_FALSE(store.records[b("/test/a")].local);
  EXPECT_EQ(handler->counters().records_stored, 1u);

  auto got = handler->handle(bob, request(MessageType::kGetValue, b("/test/a")), now + 5);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->type, MessageType::kGetValue);
  ASSERT_TRUE(got->record);
  EXPECT_EQ(got->record->key, b("/test/a"));
  EXPECT_EQ(got->record->value, b("v1"));
  EXPECT_EQ(got->record->time_received, rfc3339_utc(now));
  EXPECT_EQ(ids(got->closer_peers), expected_closer(b("/test/a"), bob));

  auto missing = handler->handle(bob, request(MessageType::kGetValue, b("/test/none")), now);
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->record);
  EXPECT_EQ(missing->closer_peers.size(), options.k);
}

TEST_F(HandlerTest, InvalidPutsAreRefusedWithoutReplyAndCounted) {
  ASSERT_TRUE(handler->handle(alice, put("/test/a", "v5"), now));

  Message no_record = request(MessageType::kPutValue, b("/test/a"));
  Message mismatch = put("/test/a", "v9");
  mismatch.record->key = b("/test/b");
  Message huge = put("/test/a", "v");
  huge.record->value.resize(options.max_value_bytes + 1, 'v');
  struct Case {
    Message msg;
    RejectReason why;
  } cases[] = {
      {no_record, RejectReason::kMissingRecord},
      {mismatch, RejectReason::kKeyMismatch},
      {huge, RejectReason::kValueTooLarge},
      {put("/test/a", "x9"), RejectReason::kInvalidRecord},
      {put("/unknown/a", "v9"), RejectReason::kInvalidRecord},
      {put("/test/a", "v1"), RejectReason::kStaleRecord},
      {request(MessageType::kPutValue, {}), RejectReason::kEmptyKey},
  };
  for (const Case &c : cases) {
    uint64_t before = handler->counters().rejected_for(c.why);
    EXPECT_FALSE(handler->handle(alice, c.msg, now)) << reject_reason_name(c.why);
    EXPECT_EQ(handler->counters().rejected_for(c.why), before + 1) << reject_reason_name(c.why);
  }
  EXPECT_EQ(store.records.size(), 1u);
  EXPECT_EQ(store.records[b("/test/a")].value, b("v5"));
  EXPECT_EQ(handler->counters().requests_for(MessageType::kPutValue), 8u);
  EXPECT_EQ(handler->counters().replies_for(MessageType::kPutValue), 1u);
}

TEST_F(HandlerTest, BetterOrEqualPutReplacesAndKeepsTheLocalMark) {
  store.records[b("/test/mine")] = StoredRecord{b("/test/mine"), b("v2"), now - 1000, 0, true};
  ASSERT_TRUE(handler->handle(alice, put("/test/mine", "v2"), now));  // the same value: refreshed
  EXPECT_EQ(store.records[b("/test/mine")].received_ms, now);
  ASSERT_TRUE(handler->handle(alice, put("/test/mine", "v3"), now + 1));
  EXPECT_EQ(store.records[b("/test/mine")].value, b("v3"));
  EXPECT_TRUE(store.records[b("/test/mine")].local) << "our key stays ours to republish";
  // A stored value that no longer validates does not block a valid one.
  store.records[b("/test/bad")] = StoredRecord{b("/test/bad"), b("x9"), now, 0, false};
  EXPECT_TRUE(handler->handle(alice, put("/test/bad", "v1"), now));
  EXPECT_EQ(store.records[b("/test/bad")].value, b("v1"));
}

TEST_F(HandlerTest, GetValueDropsAStoredRecordThatNoLongerValidates) {
  store.records[b("/test/old")] = StoredRecord{b("/test/old"), b("x1"), now, 0, false};
  auto reply = handler->handle(bob, request(MessageType::kGetValue, b("/test/old")), now);
  ASSERT_TRUE(reply);
  EXPECT_FALSE(reply->record);
  EXPECT_EQ(store.records.count(b("/test/old")), 0u);
  EXPECT_EQ(handler->counters().rejected_for(RejectReason::kInvalidStoredRecord), 1u);
}

TEST_F(HandlerTest, AddProviderStoresOnlyTheSendersOwnEntries) {
  Bytes key = b("\x12\x20 a content multihash......");
  Message m = add_provider(key, alice, {Bytes{0x04, 1, 2, 3, 4}});
  m.provider_peers.push_back(PeerEntry{bob.bytes(), {Bytes{0x04, 6, 6, 6, 6}}, ConnectionType::kConnected});
  m.provider_peers.push_back(PeerEntry{alice.bytes(), {}, ConnectionType::kConnected});  // no address
  EXPECT_FALSE(handler->handle(alice, m, now)) << "ADD_PROVIDER has no reply";
  ASSERT_EQ(store.provider_lists[key].size(), 1u);
  EXPECT_EQ(store.provider_lists[key][0].provider, alice.bytes());
  EXPECT_EQ(store.provider_lists[key][0].addrs, (std::vector<Bytes>{Bytes{0x04, 1, 2, 3, 4}}));
  EXPECT_EQ(store.provider_lists[key][0].received_ms, now);
  EXPECT_EQ(handler->counters().rejected_for(RejectReason::kForeignProvider), 1u);
  EXPECT_EQ(handler->counters().rejected_for(RejectReason::kProviderWithoutAddrs), 1u);
  EXPECT_EQ(handler->counters().providers_stored, 1u);

  // Bob announcing alice: ignored entirely.
  Bytes other = b("\x12\x20 another multihash..........");
  handler->handle(bob, add_provider(other, alice, {Bytes{0x04, 1, 2, 3, 4}}), now);
  EXPECT_TRUE(store.provider_lists[other].empty());
  EXPECT_EQ(handler->counters().rejected_for(RejectReason::kForeignProvider), 2u);

  // Keys over 80 bytes are not provider keys.
  handler->handle(alice, add_provider(Bytes(81, 'k'), alice, {Bytes{0x04, 1, 2, 3, 4}}), now);
  EXPECT_EQ(handler->counters().rejected_for(RejectReason::kKeyTooLong), 1u);
}

TEST_F(HandlerTest, GetProvidersReturnsEveryStoredProvider) {
  Bytes key = b("\x12\x20 thirty announcers...........");
  std::vector<std::string> announcers;
  for (int i = 0; i < 30; ++i) {
    PeerId p = random_peer(rng);
    announcers.push_back(p.to_base58());
    handler->handle(p, add_provider(key, p, {Bytes{0x04, 10, 2, 0, uint8_t(i)}}), now + i);
  }
  auto reply = handler->handle(bob, request(MessageType::kGetProviders, key), now + 100);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->type, MessageType::kGetProviders);
  std::vector<std::string> got = ids(reply->provider_peers);
  std::sort(got.begin(), got.end());
  std::sort(announcers.begin(), announcers.end());
  EXPECT_EQ(got, announcers);
  for (const PeerEntry &e : reply->provider_peers) EXPECT_EQ(e.addrs.size(), 1u);
  EXPECT_EQ(ids(reply->closer_peers), expected_closer(key, bob));
  EXPECT_EQ(handler->counters().providers_truncated, 0u);
}

TEST_F(HandlerTest, OurOwnProvideIsNamedWithOurCurrentAddresses) {
  Bytes key = b("\x12\x20 our own content");
  store.provider_lists[key].push_back(ProviderRecord{key, self.bytes(), {}, now, 0});
  contacts[self] = PeerContact{{Bytes{0x04, 192, 168, 1, 2}}, ConnectionType::kConnected};
  auto reply = handler->handle(bob, request(MessageType::kGetProviders, key), now);
  ASSERT_TRUE(reply);
  ASSERT_EQ(reply->provider_peers.size(), 1u);
  EXPECT_EQ(reply->provider_peers[0].id, self.bytes());
  EXPECT_EQ(reply->provider_peers[0].addrs, contacts[self].addrs);
}

TEST_F(HandlerTest, GetProvidersStaysWithinThePeerAndFrameLimits) {
  Bytes key = b("\x12\x20 many announcers.............");
  for (int i = 0; i < 100; ++i) {
    PeerId p = random_peer(rng);
    store.provider_lists[key].push_back(ProviderRecord{key, p.bytes(), {Bytes(40, uint8_t(i))}, now, 0});
  }
  auto reply = handler->handle(bob, request(MessageType::kGetProviders, key), now);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->provider_peers.size(), options.max_peers_per_reply);
  EXPECT_EQ(handler->counters().providers_truncated, 1u);

  // A 2 KB reply budget: each provider entry is 2 + (2 + 38) + (2 + 40) = 84 bytes.
  options.max_reply_bytes = 2048;
  make_handler();
  reply = handler->handle(bob, request(MessageType::kGetProviders, key), now);
  ASSERT_TRUE(reply);
  size_t closer_bytes = 0;
  for (const PeerEntry &e : reply->closer_peers) closer_bytes += 2 + (2 + e.id.size()) + 7 + (e.connection != ConnectionType::kNotConnected ? 2 : 0);
  size_t header = 2 + 2 + key.size();
  EXPECT_EQ(reply->provider_peers.size(), (2048 - header - closer_bytes) / 84);
  EXPECT_GT(reply->provider_peers.size(), 0u);
}

TEST_F(HandlerTest, ProviderFloodFromOnePeerIsBounded) {
  options.provider_burst = 10;
  options.provider_refill_per_s = 1;
  make_handler();
  auto key = [](int i) { return b("\x12\x20 flood key " + std::to_string(i)); };
  for (int i = 0; i < 50; ++i) handler->handle(alice, add_provider(key(i), alice, {Bytes{0x04, 1, 1, 1, 1}}), now);
  EXPECT_EQ(handler->counters().providers_stored, 10u);
  EXPECT_EQ(handler->counters().rejected_for(RejectReason::kProviderRateLimited), 40u);
  // Another peer is not held back by alice's flood.
  handler->handle(bob, add_provider(key(0), bob, {Bytes{0x04, 2, 2, 2, 2}}), now);
  EXPECT_EQ(handler->counters().providers_stored, 11u);
  // Five seconds later alice has five more.
  for (int i = 50; i < 60; ++i)
    handler->handle(alice, add_provider(key(i), alice, {Bytes{0x04, 1, 1, 1, 1}}), now + 5'000);
  EXPECT_EQ(handler->counters().providers_stored, 16u);
}

TEST_F(HandlerTest, ManySendersDoNotResetAFloodersBucket) {
  options.provider_burst = 5;
  options.provider_refill_per_s = 0.001;
  options.max_tracked_senders = 8;
  make_handler();
  Bytes key = b("\x12\x20 key");
  for (int i = 0; i < 10; ++i) handler->handle(alice, add_provider(key, alice, {Bytes{0x04, 1, 1, 1, 1}}), now);
  EXPECT_EQ(handler->counters().providers_stored, 5u);
  // 100 other senders, one announcement each: more than the handler tracks.
  for (int i = 0; i < 100; ++i) {
    PeerId p = random_peer(rng);
    handler->handle(p, add_provider(key, p, {Bytes{0x04, 3, 3, 3, 3}}), now);
  }
  EXPECT_EQ(handler->counters().providers_stored, 105u);
  handler->handle(alice, add_provider(key, alice, {Bytes{0x04, 1, 1, 1, 1}}), now);
  EXPECT_EQ(handler->counters().providers_stored, 105u) << "alice's empty bucket was forgotten";
}

TEST_F(HandlerTest, TheStoresPerProviderLimitIsCounted) {
  store.max_provider_keys_per_peer = 2;
  for (int i = 0; i < 3; ++i)
    handler->handle(alice, add_provider(b("\x12\x20 k" + std::to_string(i)), alice, {Bytes{0x04, 1, 1, 1, 1}}), now);
  EXPECT_EQ(handler->counters().providers_stored, 2u);
  EXPECT_EQ(handler->counters().rejected_for(RejectReason::kProviderLimit), 1u);
}

TEST_F(HandlerTest, AStoreFailureAcknowledgesNothing) {
  store.fail = true;
  EXPECT_FALSE(handler->handle(alice, put("/test/a", "v1"), now));
  EXPECT_FALSE(handler->handle(alice, request(MessageType::kGetValue, b("/test/a")), now));
  EXPECT_EQ(handler->counters().rejected_for(RejectReason::kStoreError), 2u);
  EXPECT_EQ(handler->counters().records_stored, 0u);
}

TEST_F(HandlerTest, WritesWaitForCommitAndTheEchoForDurability) {
  // begin() on the dht thread leaves the store alone; the echo comes from finish() after commit().
  Message req = put("/test/a", "v5");
  HandledRequest h = handler->begin(alice, req, now);
  EXPECT_FALSE(h.reply);
  ASSERT_TRUE(h.write);
  EXPECT_TRUE(store.records.empty());
  WriteOutcome outcome = RequestHandler::commit(store, handler->validator(), *h.write);
  EXPECT_TRUE(outcome.record_stored);
  EXPECT_EQ(store.records[b("/test/a")].value, b("v5"));
  auto echo = handler->finish(*h.write, outcome);
  ASSERT_TRUE(echo);
  EXPECT_EQ(*echo, req);
  EXPECT_EQ(handler->counters().replies_for(MessageType::kPutValue), 1u);

  HandledRequest provide = handler->begin(alice, add_provider(b("\x12\x20 p"), alice, {Bytes{0x04, 1, 1, 1, 1}}), now);
  EXPECT_FALSE(provide.reply);
  ASSERT_TRUE(provide.write);
  EXPECT_EQ(provide.write->providers.size(), 1u);
  EXPECT_TRUE(store.provider_lists.empty());
  EXPECT_FALSE(handler->finish(*provide.write, RequestHandler::commit(store, handler->validator(), *provide.write)));
  EXPECT_EQ(store.provider_lists[b("\x12\x20 p")].size(), 1u);
  EXPECT_EQ(handler->counters().providers_stored, 1u);
}

TEST_F(HandlerTest, TwoPutsInFlightCannotLetTheWorseLandLast) {
  HandledRequest better = handler->begin(alice, put("/test/race", "v5"), now);
  HandledRequest worse = handler->begin(bob, put("/test/race", "v4"), now);
  ASSERT_TRUE(better.write && worse.write);
  EXPECT_TRUE(handler->finish(*better.write, RequestHandler::commit(store, handler->validator(), *better.write)));
  WriteOutcome late = RequestHandler::commit(store, handler->validator(), *worse.write);
  EXPECT_TRUE(late.record_stale);
  EXPECT_FALSE(handler->finish(*worse.write, late)) << "no echo for a record that was not stored";
  EXPECT_EQ(store.records[b("/test/race")].value, b("v5"));
  EXPECT_EQ(handler->counters().rejected_for(RejectReason::kStaleRecord), 1u);
}

TEST_F(HandlerTest, UnknownTypeIsCountedNotAnswered) {
  Message m;
  m.type = static_cast<MessageType>(9);
  EXPECT_FALSE(handler->handle(alice, m, now));
  EXPECT_EQ(handler->counters().rejected_for(RejectReason::kUnknownType), 1u);
}

TEST(HandlerTime, Rfc3339) {
  EXPECT_EQ(rfc3339_utc(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(rfc3339_utc(1'796'593'200'123), "2026-12-06T21:40:00.123Z");
}

}  // namespace
}  // namespace chorus::dht

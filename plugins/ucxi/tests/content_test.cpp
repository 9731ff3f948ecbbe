// The content store on the fake DHT (fake_dht.hpp): versions, navigation with bounds, tombstones,
// role checks, limits, failures and timeouts from the DHT, the cache, concurrency, and stop().
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <chorus/status.h>

#include "content.hpp"
#include "dht_adapter.hpp"
#include "fake_dht.hpp"
#include "store/index.hpp"

namespace chorus::ucxi {
namespace {

using testing::FakeDht;
using testing::FakeNetwork;
using Bytes = std::vector<uint8_t>;

ucxl::Address A(const std::string &text) {
  ucxl::ParseError err;
  auto a = ucxl::parse(text, &err);
  if (!a) ADD_FAILURE() << text << ": " << err.what();
  return a.value_or(ucxl::Address{});
}

Bytes bytes(const std::string &s) { return Bytes(s.begin(), s.end()); }
std::string text(const Bytes &b) { return std::string(b.begin(), b.end()); }

// Collects the outcomes of operations and counts how often each one's done ran.
class Calls {
 public:
  Done done(size_t *slot = nullptr) {
    std::lock_guard lock(mu_);
    const size_t i = counts_.size();
    counts_.push_back(0);
    outcomes_.emplace_back();
    if (slot != nullptr) *slot = i;
    return [this, i](Outcome o) {
      std::lock_guard lock(mu_);
      ++counts_[i];
      outcomes_[i] = std::move(o);
      ++finished_;
      cv_.notify_all();
    };
  }
  // Waits until n done calls arrived in total (bounded, so a missing one fails instead of hanging).
  bool wait(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(20), [&] { return finished_ >= n; });
  }
  size_t count(size_t i) {
    std::lock_guard lock(mu_);
    return counts_[i];
  }
  Outcome outcome(size_t i) {
    std::lock_guard lock(mu_);
    return outcomes_[i];
  }
  size_t finished() {
    std::lock_guard lock(mu_);
    return finished_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<size_t> counts_;
  std::vector<Outcome> outcomes_;
  size_t finished_ = 0;
};

// One operation, waited for; fails the test when done runs other than once.
template <class Start>
Outcome run(Start &&start) {
  Calls calls;
  size_t slot = 0;
  start(calls.done(&slot));
  EXPECT_TRUE(calls.wait(1)) << "done never ran";
  EXPECT_EQ(calls.count(slot), 1u);
  return calls.outcome(slot);
}

struct Node {
  std::shared_ptr<FakeDht> dht;
  std::shared_ptr<Index> index;
  std::unique_ptr<ContentStore> store;

  Node(std::shared_ptr<FakeNetwork> net, const std::string &peer, std::set<std::string> keys, std::string role = "developer",
       ContentSettings s = {}) {
    dht = std::make_shared<FakeDht>(std::move(net), peer, std::move(keys));
    index = Index::open(":memory:");
    store = std::make_unique<ContentStore>(dht, index, Identity{peer, "agent-" + peer, std::move(role)}, s);
  }
  Outcome put(const std::string &addr, const std::string &content, const std::string &type = "text/plain") {
    return run([&](Done d) { store->put(A(addr), type, bytes(content), 0, std::move(d)); });
  }
  Outcome get(const std::string &addr, uint64_t from = 0) {
    return run([&](Done d) { store->get(A(addr), from, 0, std::move(d)); });
  }
  Outcome resolve(const std::string &addr, uint64_t from = 0) {
    return run([&](Done d) { store->resolve(A(addr), from, 0, std::move(d)); });
  }
  Outcome remove(const std::string &addr) {
    return run([&](Done d) { store->remove(A(addr), 0, std::move(d)); });
  }
};

class ContentTest : public ::testing::Test {
 protected:
  std::shared_ptr<FakeNetwork> net = std::make_shared<FakeNetwork>(std::set<std::string>{"developer", "architect"});
  Node a{net, "peerA", {"developer", "architect"}};
  Node c{net, "peerC", {"developer"}};
  const std::string doc = "ucxl://gpt4:developer@chorus:auth/*^/src/auth.go";
};

TEST_F(ContentTest, PutThenGetLatestAndSpecificFromAnotherNode) {
  Outcome p1 = a.put(doc, "one");
  ASSERT_EQ(p1.status, CHORUS_OK) << p1.message;
  EXPECT_EQ(p1.meta["version"], 1);
  EXPECT_EQ(p1.meta["address"], "ucxl://gpt4:developer@chorus:auth/*~1/src/auth.go");
  EXPECT_EQ(p1.meta["sha256"], FakeDht::hex_sha256(bytes("one")));
  EXPECT_EQ(p1.meta["size"], 3);
  Outcome p2 = a.put(doc, "two", "application/json");
  ASSERT_EQ(p2.status, CHORUS_OK) << p2.message;
  EXPECT_EQ(p2.meta["version"], 2);

  Outcome latest = c.get(doc);
  ASSERT_EQ(latest.status, CHORUS_OK) << latest.message;
  EXPECT_EQ(text(latest.content), "two");
  EXPECT_EQ(latest.meta["version"], 2);
  EXPECT_EQ(latest.meta["versions"], 2);
  EXPECT_EQ(latest.meta["content_type"], "application/json");
  EXPECT_EQ(latest.meta["role"], "developer");
  EXPECT_EQ(latest.meta["author"], "agent-peerA");
  EXPECT_EQ(latest.meta["deleted"], false);
  EXPECT_EQ(latest.meta["address"], "ucxl://gpt4:developer@chorus:auth/*~2/src/auth.go");

  Outcome first = c.get("ucxl://gpt4:developer@chorus:auth/*~1/src/auth.go");
  ASSERT_EQ(first.status, CHORUS_OK) << first.message;
  EXPECT_EQ(text(first.content), "one");
  EXPECT_EQ(first.meta["content_type"], "text/plain");

  // *~ is any version: the newest.
  EXPECT_EQ(text(c.get("ucxl://gpt4:developer@chorus:auth/*~/src/auth.go").content), "two");
  // The reader's index learned the series from the list it fetched.
  auto row = c.index->series(series_id(A(doc).series()));
  ASSERT_TRUE(row.has_value());
  EXPECT_EQ(row->versions, 2u);
}

TEST_F(ContentTest, RelativeNavigationStopsAtTheBounds) {
  for (const char *v : {"v1", "v2", "v3"}) ASSERT_EQ(a.put(doc, v).status, CHORUS_OK);
  const std::string base = "ucxl://gpt4:developer@chorus:auth/";
  auto get = [&](const std::string &t, uint64_t from = 0) { return c.get(base + t + "/src/auth.go", from); };
  EXPECT_EQ(text(get("~~1").content), "v2");
  EXPECT_EQ(text(get("~~2").content), "v1");
  EXPECT_EQ(get("~~3").status, CHORUS_E_UCXI_TEMPORAL);
  EXPECT_EQ(get("^^1").status, CHORUS_E_UCXI_TEMPORAL);  // from latest, nothing is ahead
  EXPECT_EQ(text(get("^^1", 1).content), "v2");
  EXPECT_EQ(text(get("^^2", 1).content), "v3");
  EXPECT_EQ(get("^^3", 1).status, CHORUS_E_UCXI_TEMPORAL);
  EXPECT_EQ(text(get("~~1", 2).content), "v1");
  EXPECT_EQ(get("~~2", 2).status, CHORUS_E_UCXI_TEMPORAL);
  EXPECT_EQ(get("~~1", 4).status, CHORUS_E_UCXI_TEMPORAL);  // from beyond the versions
  EXPECT_EQ(get("*~4").status, CHORUS_E_UCXI_TEMPORAL);
  EXPECT_EQ(text(get("*~3").content), "v3");
  // resolve: the same answers without fetching content.
  Outcome r = c.resolve(base + "~~2/src/auth.go");
  ASSERT_EQ(r.status, CHORUS_OK) << r.message;
  EXPECT_EQ(r.meta["version"], 1);
  EXPECT_TRUE(r.content.empty());
  EXPECT_EQ(c.store->stats()["navigator"]["out_of_range"].get<uint64_t>(), 6u);
  // A series without versions is not found, whatever the segment.
  EXPECT_EQ(c.get(base + "*^/nothing").status, CHORUS_E_NOT_FOUND);
  EXPECT_EQ(c.get(base + "~~1/nothing").status, CHORUS_E_NOT_FOUND);
}

TEST_F(ContentTest, DeleteIsATombstoneVersion) {
  ASSERT_EQ(a.put(doc, "one").status, CHORUS_OK);
  ASSERT_EQ(a.put(doc, "two").status, CHORUS_OK);
  Outcome del = a.remove(doc);
  ASSERT_EQ(del.status, CHORUS_OK) << del.message;
  EXPECT_EQ(del.meta["version"], 3);
  EXPECT_EQ(del.meta["sha256"], "");

  Outcome latest = c.get(doc);
  EXPECT_EQ(latest.status, CHORUS_E_NOT_FOUND);
  EXPECT_NE(latest.message.find("deleted at version 3"), std::string::npos) << latest.message;
  EXPECT_EQ(c.get("ucxl://gpt4:developer@chorus:auth/*~3/src/auth.go").status, CHORUS_E_NOT_FOUND);
  EXPECT_EQ(text(c.get("ucxl://gpt4:developer@chorus:auth/*~1/src/auth.go").content), "one");
  EXPECT_EQ(text(c.get("ucxl://gpt4:developer@chorus:auth/~~1/src/auth.go").content), "two");
  Outcome r = c.resolve(doc);
  ASSERT_EQ(r.status, CHORUS_OK);
  EXPECT_EQ(r.meta["deleted"], true);

  EXPECT_EQ(a.remove(doc).status, CHORUS_E_NOT_FOUND);  // already deleted
  EXPECT_EQ(a.remove("ucxl://gpt4:developer@chorus:auth/*^/never").status, CHORUS_E_NOT_FOUND);
  // Putting again continues the history.
  Outcome again = a.put(doc, "three");
  ASSERT_EQ(again.status, CHORUS_OK);
  EXPECT_EQ(again.meta["version"], 4);
  EXPECT_EQ(text(c.get(doc).content), "three");
}

TEST_F(ContentTest, NodeWithoutTheRoleKeyIsNotAuthorised) {
  const std::string secret = "ucxl://gpt4:architect@chorus:auth/*^/design.md";
  ASSERT_EQ(a.put(secret, "plans").status, CHORUS_OK);
  Outcome got = c.get(secret);
  EXPECT_EQ(got.status, CHORUS_E_UCXI_NOT_AUTHORISED) << got.message;
  EXPECT_TRUE(got.content.empty());
  // Resolution needs no key: the version list is public.
  EXPECT_EQ(c.resolve(secret).status, CHORUS_OK);
  EXPECT_EQ(text(a.get(secret).content), "plans");
}

TEST_F(ContentTest, UnknownRoleAndRoleAny) {
  Outcome unknown = a.put("ucxl://gpt4:nobody@chorus:auth/*^/x", "x");
  EXPECT_EQ(unknown.status, CHORUS_E_INVALID_ARG);
  EXPECT_EQ(unknown.field, "role");
  // Nothing was published for it.
  EXPECT_EQ(c.get("ucxl://gpt4:nobody@chorus:auth/*^/x").status, CHORUS_E_NOT_FOUND);

  // role any: the agent's own role encrypts it.
  Outcome any = a.put("ucxl://gpt4:any@chorus:auth/*^/shared", "s");
  ASSERT_EQ(any.status, CHORUS_OK) << any.message;
  Outcome got = c.get("ucxl://gpt4:any@chorus:auth/*^/shared");
  ASSERT_EQ(got.status, CHORUS_OK) << got.message;
  EXPECT_EQ(got.meta["role"], "developer");

  Node roleless{net, "peerR", {"developer"}, ""};
  Outcome none = roleless.put("ucxl://gpt4:any@chorus:auth/*^/shared", "s");
  EXPECT_EQ(none.status, CHORUS_E_INVALID_ARG);
  EXPECT_EQ(none.field, "role");
  EXPECT_EQ(roleless.dht->calls(FakeDht::kGetValue), 0u);
}

TEST_F(ContentTest, RefusedBeforeTheNetwork) {
  ContentSettings small;
  small.max_content_bytes = 4;
  Node n{net, "peerS", {"developer"}, "developer", small};
  EXPECT_EQ(n.put(doc, "12345").status, CHORUS_E_TOO_LARGE);
  EXPECT_EQ(n.put(doc, "1234").status, CHORUS_OK);

  Outcome wild = n.put("ucxl://any:developer@chorus:auth/*^/x", "x");
  EXPECT_EQ(wild.status, CHORUS_E_INVALID_ARG);
  EXPECT_EQ(wild.field, "address");
  EXPECT_EQ(n.get("ucxl://gpt4:developer@any:auth/*^/x").field, "address");
  EXPECT_EQ(n.remove("ucxl://gpt4:developer@chorus:any/*^/x").field, "address");
  Outcome versioned = n.put("ucxl://gpt4:developer@chorus:auth/*~1/src/auth.go", "x");
  EXPECT_EQ(versioned.status, CHORUS_E_INVALID_ARG);
  EXPECT_EQ(versioned.field, "address");
  // One put reached the network (get_value of the list), the refusals did not.
  EXPECT_EQ(n.dht->calls(FakeDht::kGetValue), 1u);
  EXPECT_EQ(n.dht->calls(FakeDht::kStore), 1u);
}

TEST_F(ContentTest, DhtFailuresAndTimeoutsPassOn) {
  ASSERT_EQ(a.put(doc, "one").status, CHORUS_OK);
  c.dht->fail_next(FakeDht::kGetValue, CHORUS_E_TIMEOUT, "deadline");
  EXPECT_EQ(c.get(doc).status, CHORUS_E_TIMEOUT);
  c.dht->fail_next(FakeDht::kRetrieve, CHORUS_E_TIMEOUT, "deadline");
  EXPECT_EQ(c.get(doc).status, CHORUS_E_TIMEOUT);
  c.dht->fail_next(FakeDht::kRetrieve, CHORUS_E_DHT_INTEGRITY, "hash mismatch");
  Outcome damaged = c.get(doc);
  EXPECT_EQ(damaged.status, CHORUS_E_INTERNAL);
  EXPECT_NE(damaged.message.find("hash mismatch"), std::string::npos);
  c.dht->fail_next(FakeDht::kGetValue, CHORUS_E_UNAVAILABLE, "no peers");
  EXPECT_EQ(c.get(doc).status, CHORUS_E_UNAVAILABLE);

  // A put whose store step times out publishes no version.
  a.dht->fail_next(FakeDht::kStore, CHORUS_E_TIMEOUT, "deadline");
  EXPECT_EQ(a.put(doc, "two").status, CHORUS_E_TIMEOUT);
  a.dht->fail_next(FakeDht::kPutValue, CHORUS_E_TIMEOUT, "deadline");
  EXPECT_EQ(a.put(doc, "two").status, CHORUS_E_TIMEOUT);
  EXPECT_EQ(c.get(doc).meta["versions"], 1);
  // Under-replicated (stored locally, too few peers took it): the put stands.
  a.dht->fail_next(FakeDht::kPutValue, CHORUS_E_UNAVAILABLE, "2 of 3 peers");
  Outcome weak = a.put(doc, "two");
  ASSERT_EQ(weak.status, CHORUS_OK);
  EXPECT_EQ(weak.meta["replicated"], false);
  EXPECT_FALSE(weak.meta.contains("replicas")) << "a dht that does not say gives no count";
  // The dht says how many peers took the version list: 0 (nobody reachable) is a put that stands
  // but is not replicated.
  a.dht->set_put_replicas(0);
  Outcome alone = a.put(doc, "three");
  ASSERT_EQ(alone.status, CHORUS_OK);
  EXPECT_EQ(alone.meta["replicas"], 0);
  EXPECT_EQ(alone.meta["replicated"], false);
  a.dht->set_put_replicas(2);
  Outcome shared = a.put(doc, "four");
  ASSERT_EQ(shared.status, CHORUS_OK);
  EXPECT_EQ(shared.meta["replicas"], 2);
  EXPECT_EQ(shared.meta["replicated"], true);
}

TEST_F(ContentTest, DeadlinePassedWhileWaitingIsATimeout) {
  ASSERT_EQ(a.put(doc, "one").status, CHORUS_OK);
  c.dht->hold(FakeDht::kGetValue, true);
  Calls calls;
  size_t slot = 0;
  const auto started = std::chrono::steady_clock::now();
  c.store->get(A(doc), 0, 1, calls.done(&slot));  // 1 ms for the whole get
  ASSERT_TRUE(c.dht->wait_held(1));
  // The list arrives only once the get's deadline has certainly passed.
  while (std::chrono::steady_clock::now() - started < std::chrono::milliseconds(3)) std::this_thread::yield();
  c.dht->release_held();
  ASSERT_TRUE(calls.wait(1));
  EXPECT_EQ(calls.outcome(slot).status, CHORUS_E_TIMEOUT);
  EXPECT_EQ(c.dht->calls(FakeDht::kRetrieve), 0u);
}

TEST_F(ContentTest, MalformedVersionRecordIsAnInternalError) {
  {
    std::lock_guard lock(net->mu);
    net->records[version_record_key(series_id(A(doc).series()))] = bytes(R"({"address":"x","versions":[]})");
  }
  Outcome got = c.get(doc);
  EXPECT_EQ(got.status, CHORUS_E_INTERNAL);
  EXPECT_EQ(a.put(doc, "x").status, CHORUS_E_INTERNAL);  // never overwrites what it cannot read
}

TEST_F(ContentTest, ImmutableVersionsComeFromTheCache) {
  ASSERT_EQ(a.put(doc, "one").status, CHORUS_OK);
  const std::string v1 = "ucxl://gpt4:developer@chorus:auth/*~1/src/auth.go";
  ASSERT_EQ(text(c.get(v1).content), "one");
  const uint64_t lists = c.dht->calls(FakeDht::kGetValue);
  EXPECT_EQ(c.dht->calls(FakeDht::kRetrieve), 1u);
  ASSERT_EQ(text(c.get(v1).content), "one");
  EXPECT_EQ(c.dht->calls(FakeDht::kRetrieve), 1u);      // content: cache hit
  EXPECT_EQ(c.dht->calls(FakeDht::kGetValue), lists);   // *~1 within a list seen: no fetch
  ASSERT_EQ(text(c.get(doc).content), "one");
  EXPECT_EQ(c.dht->calls(FakeDht::kGetValue), lists + 1);  // latest: always fetched
  EXPECT_EQ(c.dht->calls(FakeDht::kRetrieve), 1u);
  const auto stats = c.store->stats();
  EXPECT_EQ(stats["cache"]["hits"], 2);
  EXPECT_EQ(stats["cache"]["misses"], 1);
  EXPECT_EQ(stats["cache"]["entries"], 1);
  // Our own puts are not cached: only content this agent could decrypt is served from memory.
  EXPECT_EQ(a.store->stats()["cache"]["entries"], 0);
}

TEST_F(ContentTest, CacheEvictsTheLeastRecentlyUsed) {
  ContentSettings s;
  s.cache_entries = 2;
  Node r{net, "peerL", {"developer"}, "developer", s};
  for (const char *v : {"v1", "v2", "v3"}) ASSERT_EQ(a.put(doc, v).status, CHORUS_OK);
  auto get = [&](int n) { return text(r.get("ucxl://gpt4:developer@chorus:auth/*~" + std::to_string(n) + "/src/auth.go").content); };
  EXPECT_EQ(get(1), "v1");
  EXPECT_EQ(get(2), "v2");
  EXPECT_EQ(get(1), "v1");  // hit; v2 is now the least recently used
  EXPECT_EQ(get(3), "v3");  // evicts v2
  EXPECT_EQ(r.dht->calls(FakeDht::kRetrieve), 3u);
  EXPECT_EQ(get(1), "v1");
  EXPECT_EQ(r.dht->calls(FakeDht::kRetrieve), 3u);
  EXPECT_EQ(get(2), "v2");
  EXPECT_EQ(r.dht->calls(FakeDht::kRetrieve), 4u);
}

TEST_F(ContentTest, ConcurrentOperationsEachCompleteOnce) {
  constexpr int kThreads = 4, kPerThread = 8;
  Calls calls;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string addr = "ucxl://gpt4:developer@chorus:auth/*^/t" + std::to_string(t) + "/f" + std::to_string(i);
        a.store->put(A(addr), "text/plain", bytes(addr), 0, calls.done());
        c.store->get(A(addr), 0, 0, calls.done());  // may run before or after the put: found or not
      }
    });
  for (auto &th : threads) th.join();
  ASSERT_TRUE(calls.wait(2 * kThreads * kPerThread));
  for (size_t i = 0; i < 2 * kThreads * kPerThread; ++i) {
    EXPECT_EQ(calls.count(i), 1u) << i;
    const Outcome o = calls.outcome(i);
    EXPECT_TRUE(o.status == CHORUS_OK || o.status == CHORUS_E_NOT_FOUND) << i << ": " << o.message;
  }
  // Every series has exactly its one version, readable from the other node.
  for (int t = 0; t < kThreads; ++t)
    for (int i = 0; i < kPerThread; ++i) {
      const std::string addr = "ucxl://gpt4:developer@chorus:auth/*^/t" + std::to_string(t) + "/f" + std::to_string(i);
      Outcome o = c.get(addr);
      ASSERT_EQ(o.status, CHORUS_OK) << o.message;
      EXPECT_EQ(text(o.content), addr);
      EXPECT_EQ(o.meta["versions"], 1);
    }
  EXPECT_EQ(a.index->series_count(), static_cast<uint64_t>(kThreads * kPerThread));
}

TEST_F(ContentTest, StopCancelsInFlightOperationsExactlyOnce) {
  ASSERT_EQ(a.put(doc, "one").status, CHORUS_OK);
  c.dht->hold(FakeDht::kGetValue, true);
  c.dht->hold(FakeDht::kFindProviders, true);
  Calls calls;
  c.store->get(A(doc), 0, 0, calls.done());
  c.store->resolve(A(doc), 0, 0, calls.done());
  c.store->put(A(doc), "text/plain", bytes("two"), 0, calls.done());
  c.store->discover(A(doc), 0, calls.done());
  ASSERT_TRUE(c.dht->wait_held(4));
  EXPECT_EQ(calls.finished(), 0u);
  c.store->stop();
  ASSERT_TRUE(calls.wait(4));
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(calls.count(i), 1u);
    EXPECT_EQ(calls.outcome(i).status, CHORUS_E_CANCELLED);
  }
  // The DHT's late answers find nobody to tell, and start nothing new.
  c.dht->release_held();
  c.dht->drain();
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(calls.count(i), 1u);
  EXPECT_EQ(c.dht->calls(FakeDht::kStore), 0u);  // the cancelled put stored nothing
  EXPECT_EQ(c.dht->calls(FakeDht::kRetrieve), 0u);
  // New operations after stop fail at once, without the network.
  Outcome after = run([&](Done d) { c.store->get(A(doc), 0, 0, std::move(d)); });
  EXPECT_EQ(after.status, CHORUS_E_CANCELLED);
  EXPECT_EQ(c.dht->calls(FakeDht::kGetValue), 3u);
}

TEST_F(ContentTest, LastOwnerMayLetGoFromInsideDone) {
  ASSERT_EQ(a.put(doc, "one").status, CHORUS_OK);
  auto store = std::make_shared<ContentStore>(c.dht, c.index, Identity{"peerC", "agent-peerC", "developer"}, ContentSettings{});
  Calls calls;
  Done inner = calls.done();
  store->get(A(doc), 0, 0, [keep = store, inner](Outcome o) mutable {
    keep.reset();  // the last owner: the store goes away on the DHT's thread, inside its own completion
    inner(std::move(o));
  });
  store.reset();
  ASSERT_TRUE(calls.wait(1));
  // The completion still holds the store (and through it c.dht) until it returns; the fixture must not
  // drop its own c.dht before then, or the fake's last owner would be its own thread, which cannot join
  // itself.
  c.dht->drain();
  EXPECT_EQ(calls.outcome(0).status, CHORUS_OK);
  EXPECT_EQ(text(calls.outcome(0).content), "one");
}

TEST_F(ContentTest, AnnounceDiscoverAndQuery) {
  ASSERT_EQ(a.put(doc, "one").status, CHORUS_OK);
  EXPECT_EQ(run([&](Done d) { c.store->discover(A(doc), 0, std::move(d)); }).status, CHORUS_E_NOT_FOUND);
  Outcome ann = run([&](Done d) { a.store->announce(A(doc), 0, std::move(d)); });
  ASSERT_EQ(ann.status, CHORUS_OK) << ann.message;
  EXPECT_EQ(ann.meta["peer_id"], "peerA");
  EXPECT_EQ(ann.meta["address"], "ucxl://gpt4:developer@chorus:auth/src/auth.go");
  ASSERT_EQ(run([&](Done d) { c.store->announce(A(doc), 0, std::move(d)); }).status, CHORUS_OK);

  Outcome found = run([&](Done d) { c.store->discover(A(doc), 0, std::move(d)); });
  ASSERT_EQ(found.status, CHORUS_OK) << found.message;
  std::set<std::string> peers;
  for (const auto &p : found.meta["providers"]) peers.insert(p["peer_id"].get<std::string>());
  EXPECT_EQ(peers, (std::set<std::string>{"peerA", "peerC"}));
  EXPECT_FALSE(found.meta["providers"][0]["addrs"].empty());

  // Heard on pubsub: a third provider and a series this node never fetched.
  c.store->note_remote(A("ucxl://claude:developer@chorus:auth/*~2/notes.md"), "peerB", 2, "ab12");
  c.store->note_remote(A(doc), "peerB", 1, FakeDht::hex_sha256(bytes("one")));
  Outcome wild = run([&](Done d) { c.store->discover(A("ucxl://any:developer@chorus:auth/*^"), 0, std::move(d)); });
  ASSERT_EQ(wild.status, CHORUS_OK) << wild.message;
  peers.clear();
  for (const auto &p : wild.meta["providers"]) peers.insert(p["peer_id"].get<std::string>());
  // What this node's index knows: its own announcement, peerA from the DHT lookup, peerB heard.
  EXPECT_EQ(peers, (std::set<std::string>{"peerA", "peerB", "peerC"}));

  Outcome q = c.store->query(A("ucxl://any:any@chorus:any/*^"), 10);
  ASSERT_EQ(q.status, CHORUS_OK);
  std::set<std::string> series;
  for (const auto &m : q.meta["matches"]) series.insert(m["address"].get<std::string>());
  EXPECT_EQ(series, (std::set<std::string>{"ucxl://gpt4:developer@chorus:auth/src/auth.go",
                                           "ucxl://claude:developer@chorus:auth/notes.md"}));
  EXPECT_EQ(c.store->query(A("ucxl://claude:any@any:any/*^/notes.md"), 10).meta["matches"][0]["versions"], 2);
  EXPECT_TRUE(c.store->query(A("ucxl://any:any@other:any/*^"), 10).meta["matches"].empty());
  EXPECT_EQ(c.store->query(A("ucxl://any:any@any:any/*^"), 1).meta["matches"].size(), 1u);
  EXPECT_TRUE(c.store->index_ok());
  EXPECT_EQ(c.store->series_indexed(), 2u);
}

}  // namespace
}  // namespace chorus::ucxi

// ---- DhtAdapter over a chorus_dht_v1 table ----

namespace chorus::ucxi {
namespace {

// A table whose get_value refuses the key "refuse" at once and otherwise keeps the completion for
// the test to run; store checks its arguments and completes before returning.
struct TableState {
  std::vector<std::pair<chorus_dht_done_fn, void *>> pending;
  std::string stored_key, stored_role;
  Bytes stored;
};

chorus_status t_get_value(void *self, const uint8_t *key, size_t key_len, uint32_t, chorus_dht_done_fn done, void *arg,
                          chorus_error *err) {
  auto *s = static_cast<TableState *>(self);
  if (std::string(reinterpret_cast<const char *>(key), key_len) == "refuse") {
    chorus_error_set_str(err, CHORUS_E_INVALID_ARG, "dht: refused key");
    return CHORUS_E_INVALID_ARG;
  }
  s->pending.emplace_back(done, arg);
  return CHORUS_OK;
}

chorus_status t_store(void *self, const char *key, const char *role, const uint8_t *content, size_t len, uint32_t,
                      chorus_dht_done_fn done, void *arg, chorus_error *) {
  auto *s = static_cast<TableState *>(self);
  s->stored_key = key;
  s->stored_role = role;
  s->stored.assign(content, content + len);
  const std::string hash = "abc";
  done(arg, CHORUS_OK, nullptr, reinterpret_cast<const uint8_t *>(hash.data()), hash.size());
  return CHORUS_OK;
}

TEST(DhtAdapter, CopiesResultsAndCompletesRefusalsInline) {
  TableState state;
  chorus_dht_v1 table{};
  table.struct_size = sizeof table;
  table.get_value = &t_get_value;
  table.store = &t_store;
  chorus_service_ref ref{};
  ref.struct_size = sizeof ref;
  ref.table = &table;
  ref.self = &state;
  DhtAdapter dht(chorus::ServiceRef<chorus_dht_v1>(nullptr, nullptr, ref));

  int calls = 0;
  chorus_status got = CHORUS_OK;
  std::string message;
  Bytes data;
  auto result = [&](chorus_status st, std::string m, Bytes d) {
    ++calls;
    got = st;
    message = std::move(m);
    data = std::move(d);
  };

  dht.get_value("refuse", 10, result);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(got, CHORUS_E_INVALID_ARG);
  EXPECT_EQ(message, "dht: refused key");
  EXPECT_TRUE(state.pending.empty());

  dht.get_value("/chorus/x", 10, result);
  EXPECT_EQ(calls, 1);
  ASSERT_EQ(state.pending.size(), 1u);
  {
    std::string value = "payload";
    state.pending[0].first(state.pending[0].second, CHORUS_OK, nullptr, reinterpret_cast<const uint8_t *>(value.data()),
                           value.size());
    value.assign(value.size(), '#');  // the completion's pointer is dead now: the adapter copied
  }
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(got, CHORUS_OK);
  EXPECT_EQ(text(data), "payload");

  dht.get_value("/chorus/y", 10, result);
  ASSERT_EQ(state.pending.size(), 2u);
  chorus_error err{};
  err.struct_size = sizeof err;
  chorus_error_set_str(&err, CHORUS_E_DHT_NOT_AUTHORISED, "no key");
  state.pending[1].first(state.pending[1].second, CHORUS_E_DHT_NOT_AUTHORISED, &err, nullptr, 0);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(got, CHORUS_E_DHT_NOT_AUTHORISED);
  EXPECT_EQ(message, "no key");

  dht.store("ucxl/k", "developer", bytes("hello"), 10, result);
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(text(data), "abc");
  EXPECT_EQ(state.stored_key, "ucxl/k");
  EXPECT_EQ(state.stored_role, "developer");
  EXPECT_EQ(text(state.stored), "hello");

  // A slot the provider lacks, and an empty ref: refused inline, once.
  dht.retrieve("ucxl/k", 10, result);
  EXPECT_EQ(calls, 5);
  EXPECT_EQ(got, CHORUS_E_UNSUPPORTED);
  DhtAdapter none{chorus::ServiceRef<chorus_dht_v1>()};
  none.provide(Bytes{1, 2}, 10, result);
  EXPECT_EQ(calls, 6);
  EXPECT_EQ(got, CHORUS_E_UNAVAILABLE);
}

}  // namespace
}  // namespace chorus::ucxi

// RecordStore (SQLite): the file's mode, refusals of files that are not ours, the durability of
// acknowledged puts across SIGKILL, and the records / providers / local provides / cache semantics
// with explicit times.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <semaphore>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/record_store.hpp"

namespace chorus::dht {
namespace {

namespace fs = std::filesystem;

Bytes bytes_of(const std::string &s) { return Bytes(s.begin(), s.end()); }

std::string read_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string &path, const std::string &data, mode_t mode = 0600) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ::close(fd);
}

mode_t file_mode(const std::string &path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// Runs sql on path with the plain sqlite3 API (as another application would).
void sqlite_exec(const std::string &path, const std::string &sql) {
  sqlite3 *db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char *err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << msg;
}

// The record value the crash test writes for index i: its content depends on i, so a torn or
// misplaced value is caught.
Bytes crash_value(uint32_t i) {
  Bytes v(200);
  for (size_t j = 0; j < v.size(); ++j) v[j] = static_cast<uint8_t>((i * 2654435761u) >> (j % 24));
  return v;
}

Bytes crash_key(uint32_t i) { return bytes_of("/chorus/crash/" + std::to_string(i)); }

class RecordStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dht-store-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    options_.path = dir_ + "/records.db";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<RecordStore> open() { return RecordStore::open(options_); }

  // Expects open to throw a StoreError whose message names the file and contains `reason`, and the
  // file to be left exactly as it was. Returns the message.
  std::string expect_refused(const std::string &reason) {
    std::string before = read_file(options_.path);
    std::string msg;
    try {
      open();
      ADD_FAILURE() << "open accepted the file; expected a refusal with: " << reason;
    } catch (const StoreError &e) {
      msg = e.what();
      EXPECT_NE(msg.find(options_.path), std::string::npos) << msg;
      EXPECT_NE(msg.find(reason), std::string::npos) << msg;
    }
    EXPECT_EQ(read_file(options_.path), before) << "a refused file must not be modified";
    return msg;
  }

  std::string dir_;
  StoreOptions options_;
};

StoredRecord record(const std::string &key, const std::string &value, int64_t received_ms,
                    bool local = false) {
  StoredRecord r;
  r.key = bytes_of(key);
  r.value = bytes_of(value);
  r.received_ms = received_ms;
  r.local = local;
  return r;
}

ProviderRecord provider(const std::string &key, const std::string &peer, int64_t received_ms) {
  ProviderRecord p;
  p.key = bytes_of(key);
  p.provider = bytes_of(peer);
  p.received_ms = received_ms;
  return p;
}

// --- files and refusals -----------------------------------------------------------------------

TEST_F(RecordStoreTest, CreatesDatabaseWalAndShmWithMode0600) {
  mode_t old = ::umask(0);  // a permissive umask must not widen the files
  auto store = open();
  ::umask(old);
  store->put_record(record("/chorus/a", "v", 1000));
  EXPECT_EQ(file_mode(options_.path), 0600u);
  ASSERT_TRUE(fs::exists(options_.path + "-wal"));
  ASSERT_TRUE(fs::exists(options_.path + "-shm"));
  EXPECT_EQ(file_mode(options_.path + "-wal"), 0600u);
  EXPECT_EQ(file_mode(options_.path + "-shm"), 0600u);
}

TEST_F(RecordStoreTest, SetsApplicationIdSchemaVersionAndWal) {
  open().reset();
  sqlite3 *db = nullptr;
  ASSERT_EQ(sqlite3_open(options_.path.c_str(), &db), SQLITE_OK);
  auto pragma = [&](const char *sql) {
    sqlite3_stmt *s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &s, nullptr), SQLITE_OK);
    EXPECT_EQ(sqlite3_step(s), SQLITE_ROW);
    std::string v = reinterpret_cast<const char *>(sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return v;
  };
  EXPECT_EQ(pragma("PRAGMA application_id"), std::to_string(0x43444854));
  EXPECT_EQ(pragma("PRAGMA user_version"), "1");
  EXPECT_EQ(pragma("PRAGMA journal_mode"), "wal");
  sqlite3_close(db);
}

TEST_F(RecordStoreTest, RefusesFileReadableByGroupOrOthers) {
  open().reset();
  ASSERT_EQ(::chmod(options_.path.c_str(), 0640), 0);
  expect_refused("mode 0640");
  ASSERT_EQ(::chmod(options_.path.c_str(), 0604), 0);
  expect_refused("mode 0604");
  ASSERT_EQ(::chmod(options_.path.c_str(), 0600), 0);
  EXPECT_NO_THROW(open());
}

TEST_F(RecordStoreTest, RefusesWalFileReadableByOthers) {
  open().reset();
  write_file(options_.path + "-wal", "", 0644);
  ASSERT_EQ(::chmod((options_.path + "-wal").c_str(), 0644), 0);
  try {
    open();
    ADD_FAILURE() << "a world-readable -wal file was accepted";
  } catch (const StoreError &e) {
    EXPECT_NE(std::string(e.what()).find("records.db-wal: mode 0644"), std::string::npos) << e.what();
  }
}

TEST_F(RecordStoreTest, RefusesGarbage) {
  std::string garbage;
  for (int i = 0; i < 8192; ++i) garbage.push_back(static_cast<char>((i * 7919) >> 3));
  write_file(options_.path, garbage);
  expect_refused("file is not a database");
}

TEST_F(RecordStoreTest, RefusesForeignSqliteDatabase) {
  write_file(options_.path, "");
  sqlite_exec(options_.path,
              "PRAGMA application_id = 1234; CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);"
              "INSERT INTO notes(body) VALUES('someone else''s data');");
  expect_refused("another application");
}

TEST_F(RecordStoreTest, RefusesSqliteDatabaseWithoutApplicationId) {
  write_file(options_.path, "");
  sqlite_exec(options_.path, "CREATE TABLE records(x); INSERT INTO records VALUES(1);");
  expect_refused("another application (application_id 0x00000000");
}

TEST_F(RecordStoreTest, RefusesOursWithoutChorusTables) {
  write_file(options_.path, "");
  sqlite_exec(options_.path, "PRAGMA application_id = " + std::to_string(0x43444854) + "; PRAGMA user_version = 1;"
                             "CREATE TABLE other(x);");
  expect_refused("chorus table 'records' is missing");
}

TEST_F(RecordStoreTest, RefusesNewerSchemaVersion) {
  open()->put_record(record("/chorus/a", "v", 1000));
  sqlite_exec(options_.path, "PRAGMA user_version = 7;");
  expect_refused("schema version 7 is newer");
}

// Fills a store with enough records for several b-tree pages and closes it (the last close
// checkpoints the WAL into the main file). Eight writers, so the puts share commits.
void fill(std::unique_ptr<RecordStore> store) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < 400; i += 8) {
        store->put_record(record("/chorus/fill/" + std::to_string(i),
                                 std::string(300, static_cast<char>('a' + i % 26)), 1000));
      }
    });
  }
  for (auto &th : threads) th.join();
}

TEST_F(RecordStoreTest, RefusesCorruptedPage) {
  fill(open());
  ASSERT_FALSE(fs::exists(options_.path + "-wal"));
  std::string data = read_file(options_.path);
  ASSERT_GE(data.size(), 8u * 4096);
  // Overwrite page 5 (a b-tree page of the records table) with a plausible-looking mess.
  for (size_t i = 4 * 4096; i < 5 * 4096; ++i) data[i] = static_cast<char>((i * 131) ^ 0x5a);
  write_file(options_.path, data);
  std::string msg = expect_refused("refusing");
  EXPECT_TRUE(msg.find("integrity check failed") != std::string::npos ||
              msg.find("malformed") != std::string::npos)
      << msg;
}

TEST_F(RecordStoreTest, RefusesTruncatedDatabase) {
  fill(open());
  std::string data = read_file(options_.path);
  write_file(options_.path, data.substr(0, data.size() / 2));
  std::string msg = expect_refused("refusing");
  EXPECT_TRUE(msg.find("integrity check failed") != std::string::npos ||
              msg.find("malformed") != std::string::npos)
      << msg;
}

TEST_F(RecordStoreTest, RefusesUncreatablePath) {
  options_.path = dir_ + "/missing-dir/records.db";
  EXPECT_THROW(open(), StoreError);
}

// --- durability -------------------------------------------------------------------------------

TEST_F(RecordStoreTest, RecordsSurviveReopen) {
  {
    auto store = open();
    store->put_record(record("/chorus/a", "alpha", 1000, true));
    ProviderRecord p = provider("cid", "peer-1", 1000);
    p.addrs = {bytes_of("/ip4/1"), Bytes{}, bytes_of("/ip6/::1")};
    ASSERT_TRUE(store->add_provider(p));
    store->add_local_provide(bytes_of("cid"), 1000);
    store->cache_put(bytes_of("c"), bytes_of("cached"), 1000, 5000);
  }
  auto store = open();
  auto r = store->get_record(bytes_of("/chorus/a"), 2000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->value, bytes_of("alpha"));
  EXPECT_TRUE(r->local);
  auto ps = store->providers(bytes_of("cid"), 2000);
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0].addrs, (std::vector<Bytes>{bytes_of("/ip4/1"), Bytes{}, bytes_of("/ip6/::1")}));
  EXPECT_EQ(store->local_provides_older_than(2000).size(), 1u);
  EXPECT_EQ(store->cache_get(bytes_of("c"), 2000), bytes_of("cached"));
}

TEST_F(RecordStoreTest, ConcurrentWritersAllCommitted) {
  auto store = open();
  constexpr int kThreads = 8, kPerThread = 150;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        store->put_record(record("/chorus/" + std::to_string(t) + "/" + std::to_string(i), "v", 1000));
      }
    });
  }
  for (auto &th : threads) th.join();
  StoreStats st = store->stats();
  EXPECT_EQ(st.records, size_t{kThreads * kPerThread});
  EXPECT_EQ(st.writes, uint64_t{kThreads * kPerThread});
  EXPECT_GE(st.commits, 1u);
  EXPECT_LE(st.commits, st.writes);
}

// A child process puts records from several threads (and asynchronously from one more) and reports
// each index on a pipe after put_record returned (or its callback ran); the parent SIGKILLs it in the middle of the burst, reopens the store and
// finds every acknowledged record, intact.
TEST_F(RecordStoreTest, SigkillLosesNoAcknowledgedPut) {
  constexpr size_t kAcksBeforeKill = 3000;
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    try {
      auto store = RecordStore::open(options_);
      std::atomic<uint32_t> next{0};
      std::vector<std::thread> threads;
      // One thread puts asynchronously, up to 256 in flight; the store thread acks in the callback.
      std::counting_semaphore<256> in_flight(256);
      threads.emplace_back([&] {
        for (;;) {
          in_flight.acquire();
          uint32_t i = next.fetch_add(1);
          StoredRecord r;
          r.key = crash_key(i);
          r.value = crash_value(i);
          r.received_ms = 1000 + i;
          store->put_record_async(r, [&, i](std::exception_ptr error) {
            if (error || ::write(fds[1], &i, sizeof i) != sizeof i) ::_exit(3);
            in_flight.release();
          });
        }
      });
      for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&] {
          for (;;) {
            uint32_t i = next.fetch_add(1);
            StoredRecord r;
            r.key = crash_key(i);
            r.value = crash_value(i);
            r.received_ms = 1000 + i;
            store->put_record(r);
            // 4 bytes to a pipe are written atomically, so acks from threads never mix.
            if (::write(fds[1], &i, sizeof i) != sizeof i) ::_exit(3);
          }
        });
      }
      for (auto &th : threads) th.join();
    } catch (...) {
      ::_exit(2);
    }
    ::_exit(0);
  }
  ::close(fds[1]);

  std::vector<uint32_t> acked;
  auto read_ack = [&]() {
    uint32_t i;
    ssize_t n = ::read(fds[0], &i, sizeof i);
    if (n == sizeof i) acked.push_back(i);
    return n == sizeof i;
  };
  while (acked.size() < kAcksBeforeKill && read_ack()) {
  }
  ASSERT_EQ(acked.size(), kAcksBeforeKill) << "the child stopped before being killed";
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  // Acks still in the pipe were written after their put returned: they count too.
  while (read_ack()) {
  }
  ::close(fds[0]);

  auto store = open();
  std::set<uint32_t> unique(acked.begin(), acked.end());
  ASSERT_EQ(unique.size(), acked.size());
  for (uint32_t i : acked) {
    auto r = store->get_record(crash_key(i), 0);
    ASSERT_TRUE(r) << "acknowledged put " << i << " is missing after SIGKILL";
    EXPECT_EQ(r->value, crash_value(i)) << "record " << i;
    EXPECT_EQ(r->received_ms, 1000 + int64_t{i});
  }
  // Puts in flight at the kill may or may not be there; nothing else may be.
  EXPECT_GE(store->stats().records, acked.size());
}

TEST_F(RecordStoreTest, AsyncWritesShareCommitsAndAreDurableInTheirCallback) {
  auto store = open();
  constexpr int kPuts = 2000;
  std::mutex mu;
  std::condition_variable cv;
  int acked = 0, failed = 0;
  for (int i = 0; i < kPuts; ++i) {
    store->put_record_async(record("/chorus/async/" + std::to_string(i), "v" + std::to_string(i), 1000),
                            [&](std::exception_ptr error) {
                              std::lock_guard lock(mu);
                              (error ? failed : acked)++;
                              cv.notify_all();
                            });
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return acked + failed == kPuts; });
  }
  EXPECT_EQ(failed, 0);
  for (int i = 0; i < kPuts; i += 97) {
    auto r = store->get_record(bytes_of("/chorus/async/" + std::to_string(i)), 1000);
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->value, bytes_of("v" + std::to_string(i)));
  }
  StoreStats st = store->stats();
  EXPECT_EQ(st.writes, uint64_t{kPuts});
  EXPECT_LT(st.commits, st.writes / 2) << "queued writes should share commits";
}

TEST_F(RecordStoreTest, AsyncProviderRefusalAndDrainOnClose) {
  options_.max_provider_keys_per_peer = 1;
  std::atomic<int> stored{0}, refused{0};
  {
    auto store = open();
    for (int i = 0; i < 3; ++i) {
      store->add_provider_async(provider("cid-" + std::to_string(i), "peer", 1000),
                                [&](bool ok, std::exception_ptr error) {
                                  EXPECT_FALSE(error);
                                  (ok ? stored : refused)++;
                                });
    }
    for (int i = 0; i < 100; ++i) store->put_record_async(record("/chorus/drain/" + std::to_string(i), "v", 1000), {});
  }  // the destructor commits what is queued and runs the callbacks
  EXPECT_EQ(stored.load(), 1);
  EXPECT_EQ(refused.load(), 2);
  auto store = open();
  EXPECT_EQ(store->stats().records, 100u);
  EXPECT_EQ(store->stats().providers, 1u);
}

// --- records ----------------------------------------------------------------------------------

TEST_F(RecordStoreTest, PutGetReplaceRemove) {
  auto store = open();
  EXPECT_FALSE(store->get_record(bytes_of("/chorus/a"), 0));
  store->put_record(record("/chorus/a", "one", 1000));
  auto r = store->get_record(bytes_of("/chorus/a"), 1000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->key, bytes_of("/chorus/a"));
  EXPECT_EQ(r->value, bytes_of("one"));
  EXPECT_EQ(r->received_ms, 1000);
  EXPECT_EQ(r->expires_ms, 1000 + options_.record_ttl_ms);
  EXPECT_FALSE(r->local);

  store->put_record(record("/chorus/a", "two", 2000, true));
  r = store->get_record(bytes_of("/chorus/a"), 2000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->value, bytes_of("two"));
  EXPECT_TRUE(r->local);
  EXPECT_EQ(store->stats().records, 1u);

  EXPECT_TRUE(store->remove_record(bytes_of("/chorus/a")));
  EXPECT_FALSE(store->remove_record(bytes_of("/chorus/a")));
  EXPECT_FALSE(store->get_record(bytes_of("/chorus/a"), 2000));
}

TEST_F(RecordStoreTest, BinaryKeysAndEmptyValue) {
  auto store = open();
  StoredRecord r;
  r.key = {0x00, 0xff, 0x00, 0x10};
  r.received_ms = 5;
  store->put_record(r);
  auto got = store->get_record(r.key, 5);
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->value.empty());
  EXPECT_FALSE(store->get_record(Bytes{0x00, 0xff}, 5));
}

TEST_F(RecordStoreTest, RecordExpiry) {
  auto store = open();
  StoredRecord r = record("/chorus/e", "v", 1000);
  r.expires_ms = 5000;
  store->put_record(r);
  EXPECT_TRUE(store->get_record(r.key, 4999));
  EXPECT_FALSE(store->get_record(r.key, 5000));
  store->put_record(record("/chorus/d", "v", 1000));  // default ttl
  EXPECT_TRUE(store->get_record(bytes_of("/chorus/d"), 1000 + options_.record_ttl_ms - 1));
  EXPECT_FALSE(store->get_record(bytes_of("/chorus/d"), 1000 + options_.record_ttl_ms));
}

TEST_F(RecordStoreTest, LocalRecordsOlderThan) {
  auto store = open();
  store->put_record(record("/chorus/l1", "a", 1000, true));
  store->put_record(record("/chorus/l2", "b", 3000, true));
  store->put_record(record("/chorus/l3", "c", 2000, true));
  store->put_record(record("/chorus/remote", "d", 500, false));
  auto due = store->local_records_older_than(2500, 0);
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0].key, bytes_of("/chorus/l1"));  // oldest first
  EXPECT_EQ(due[1].key, bytes_of("/chorus/l3"));
  EXPECT_TRUE(due[0].local);
  EXPECT_EQ(store->local_records_older_than(5000, 1).size(), 1u);
  EXPECT_TRUE(store->local_records_older_than(1000, 0).empty());
  // Republishing refreshes the time.
  store->put_record(record("/chorus/l1", "a", 4000, true));
  due = store->local_records_older_than(2500, 0);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].key, bytes_of("/chorus/l3"));
}

// --- providers --------------------------------------------------------------------------------

TEST_F(RecordStoreTest, ProvidersNewestFirstAllReturned) {
  auto store = open();
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(store->add_provider(provider("cid", "peer-" + std::to_string(i), 1000 + i)));
  auto all = store->providers(bytes_of("cid"), 2000);
  ASSERT_EQ(all.size(), 30u);
  EXPECT_EQ(all.front().provider, bytes_of("peer-29"));
  EXPECT_EQ(all.back().provider, bytes_of("peer-0"));
  EXPECT_EQ(all[0].expires_ms, 1029 + options_.provider_ttl_ms);
  auto five = store->providers(bytes_of("cid"), 2000, 5);
  ASSERT_EQ(five.size(), 5u);
  EXPECT_EQ(five[4].provider, bytes_of("peer-25"));
  EXPECT_TRUE(store->providers(bytes_of("other"), 2000).empty());
}

TEST_F(RecordStoreTest, ProviderReplacedAndExpired) {
  auto store = open();
  ProviderRecord p = provider("cid", "peer-a", 1000);
  p.expires_ms = 3000;
  p.addrs = {bytes_of("old")};
  ASSERT_TRUE(store->add_provider(p));
  p.received_ms = 2000;
  p.expires_ms = 6000;
  p.addrs = {bytes_of("new1"), bytes_of("new2")};
  ASSERT_TRUE(store->add_provider(p));
  auto ps = store->providers(bytes_of("cid"), 4000);
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0].addrs, (std::vector<Bytes>{bytes_of("new1"), bytes_of("new2")}));
  EXPECT_EQ(ps[0].received_ms, 2000);
  EXPECT_TRUE(store->providers(bytes_of("cid"), 6000).empty());
}

TEST_F(RecordStoreTest, MaxProvidersPerKeyKeepsNewest) {
  options_.max_providers_per_key = 3;
  auto store = open();
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(store->add_provider(provider("cid", "peer-" + std::to_string(i), 1000 + i)));
  auto ps = store->providers(bytes_of("cid"), 2000);
  ASSERT_EQ(ps.size(), 3u);
  EXPECT_EQ(ps[0].provider, bytes_of("peer-5"));
  EXPECT_EQ(ps[1].provider, bytes_of("peer-4"));
  EXPECT_EQ(ps[2].provider, bytes_of("peer-3"));
}

TEST_F(RecordStoreTest, MaxProviderKeysPerPeerRefuses) {
  options_.max_provider_keys_per_peer = 3;
  auto store = open();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(store->add_provider(provider("cid-" + std::to_string(i), "flooder", 1000)));
  EXPECT_FALSE(store->add_provider(provider("cid-3", "flooder", 1001)));
  EXPECT_TRUE(store->providers(bytes_of("cid-3"), 1001).empty());
  // Refreshing a key the peer already provides is not a new key.
  EXPECT_TRUE(store->add_provider(provider("cid-0", "flooder", 1002)));
  // Other peers are not affected.
  EXPECT_TRUE(store->add_provider(provider("cid-3", "honest", 1003)));
  // Once the peer's records expire, it may provide again.
  EXPECT_TRUE(store->add_provider(provider("cid-3", "flooder", 1000 + options_.provider_ttl_ms + 1)));
  EXPECT_EQ(store->stats().providers, 5u);
}

// --- local provides, cache, sweep, stats ------------------------------------------------------

TEST_F(RecordStoreTest, LocalProvides) {
  auto store = open();
  store->add_local_provide(bytes_of("k1"), 1000);
  store->add_local_provide(bytes_of("k2"), 1000);
  EXPECT_EQ(store->local_provides_older_than(1).size(), 2u);  // never provided: due at once
  store->mark_provided(bytes_of("k1"), 5000);
  auto due = store->local_provides_older_than(5000);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0], bytes_of("k2"));
  EXPECT_EQ(store->local_provides_older_than(5001).size(), 2u);
  store->add_local_provide(bytes_of("k1"), 6000);  // again: keeps its provided time
  EXPECT_EQ(store->local_provides_older_than(5000).size(), 1u);
  EXPECT_TRUE(store->remove_local_provide(bytes_of("k1")));
  EXPECT_FALSE(store->remove_local_provide(bytes_of("k1")));
  store->mark_provided(bytes_of("k1"), 7000);  // removed: stays removed
  EXPECT_EQ(store->stats().local_provides, 1u);
}

TEST_F(RecordStoreTest, CacheTtl) {
  auto store = open();
  store->cache_put(bytes_of("c"), bytes_of("v1"), 1000, 500);
  EXPECT_EQ(store->cache_get(bytes_of("c"), 1499), bytes_of("v1"));
  EXPECT_FALSE(store->cache_get(bytes_of("c"), 1500));
  store->cache_put(bytes_of("c"), bytes_of("v2"), 2000, 500);
  EXPECT_EQ(store->cache_get(bytes_of("c"), 2100), bytes_of("v2"));
  EXPECT_FALSE(store->cache_get(bytes_of("nope"), 0));
}

TEST_F(RecordStoreTest, SweepExpired) {
  auto store = open();
  StoredRecord r = record("/chorus/old", "v", 1000);
  r.expires_ms = 2000;
  store->put_record(r);
  StoredRecord local = record("/chorus/mine", "v", 1000, true);
  local.expires_ms = 2000;
  store->put_record(local);
  store->put_record(record("/chorus/fresh", "v", 1000));
  ProviderRecord p = provider("cid", "peer", 1000);
  p.expires_ms = 2000;
  store->add_provider(p);
  store->add_provider(provider("cid", "peer2", 1000));
  store->cache_put(bytes_of("c1"), bytes_of("v"), 1000, 1000);
  store->cache_put(bytes_of("c2"), bytes_of("v"), 1000, 100000);

  EXPECT_EQ(store->sweep_expired(1999), 0u);
  EXPECT_EQ(store->sweep_expired(2000), 3u);  // the remote record, one provider, one cache entry
  EXPECT_EQ(store->sweep_expired(2000), 0u);
  StoreStats st = store->stats();
  EXPECT_EQ(st.records, 2u);  // the local record stays until this node removes it
  EXPECT_EQ(st.providers, 1u);
  EXPECT_EQ(st.cache_entries, 1u);
  EXPECT_FALSE(store->get_record(bytes_of("/chorus/mine"), 2000));  // but is not served past expiry
  EXPECT_EQ(store->local_records_older_than(5000, 0).size(), 1u);    // and is still republished
}

TEST_F(RecordStoreTest, StatsCountCommits) {
  auto store = open();
  StoreStats st = store->stats();
  EXPECT_EQ(st.records, 0u);
  EXPECT_EQ(st.commits, 0u);
  store->put_record(record("/chorus/a", "v", 1));
  store->add_provider(provider("cid", "p", 1));
  store->add_local_provide(bytes_of("k"), 1);
  store->cache_put(bytes_of("c"), bytes_of("v"), 1, 10);
  st = store->stats();
  EXPECT_EQ(st.records, 1u);
  EXPECT_EQ(st.providers, 1u);
  EXPECT_EQ(st.local_provides, 1u);
  EXPECT_EQ(st.cache_entries, 1u);
  EXPECT_EQ(st.commits, 4u);  // one thread: one transaction per write
  EXPECT_EQ(st.writes, 4u);
}

}  // namespace
}  // namespace chorus::dht

// dht_store_bench (Google Benchmark): the dht record store (plugins/dht/src/store) on a real file, as
// the node uses it. Every write returns only after its transaction is committed and fsync'd, so the
// figures are bounded by the disk's sync latency and by how many writers share one commit.
//   BM_DurablePut      put_record of a 256-byte value under a fresh key, from N threads at once;
//                      `batch` = writes per commit (group commit), `fsyncs/s` = commits per second
//   BM_DurablePutAsync put_record_async from ONE thread keeping up to `in_flight` puts outstanding (the
//                      dht thread's way); an item counts when its durable callback ran
//   BM_Get             get_record of a present key (10 000 records stored), from N threads
//   BM_AddProvider     add_provider of a fresh (key, provider) pair with two addresses, from N threads
// The store lives in a fresh directory under $TMPDIR (default /tmp): point TMPDIR at the disk the
// state dir will be on, since a tmpfs makes fsync free and the figures meaningless.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

#include "store/record_store.hpp"

namespace {

using namespace chorus::dht;
namespace fs = std::filesystem;

constexpr size_t kValueBytes = 256;
constexpr int kGetRecords = 10000;

std::string g_dir;
std::unique_ptr<RecordStore> g_store;
std::atomic<uint64_t> g_next{0};
StoreStats g_before;

Bytes key_for(const char *prefix, uint64_t i) {
  std::string k = std::string(prefix) + std::to_string(i);
  return Bytes(k.begin(), k.end());
}

Bytes value_for(uint64_t i) {
  Bytes v(kValueBytes);
  for (size_t j = 0; j < v.size(); ++j) v[j] = static_cast<uint8_t>(i * 131 + j);
  return v;
}

void open_store(const benchmark::State &) {
  const char *tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/dht-store-bench-XXXXXX";
  if (!::mkdtemp(tmpl.data())) std::abort();
  g_dir = tmpl;
  StoreOptions options;
  options.path = g_dir + "/records.db";
  g_store = RecordStore::open(options);
  g_next = 0;
  g_before = g_store->stats();
}

void close_store(const benchmark::State &) {
  g_store.reset();
  fs::remove_all(g_dir);
}

// Stores kGetRecords records from 64 threads (so they share commits) for BM_Get.
void open_filled_store(const benchmark::State &state) {
  open_store(state);
  std::vector<std::thread> threads;
  for (int t = 0; t < 64; ++t) {
    threads.emplace_back([t] {
      for (int i = t; i < kGetRecords; i += 64) {
        StoredRecord r;
        r.key = key_for("/chorus/get/", i);
        r.value = value_for(i);
        r.received_ms = 1000;
        g_store->put_record(r);
      }
    });
  }
  for (auto &th : threads) th.join();
  g_before = g_store->stats();
}

// Sets the group-commit counters from thread 0 (Google Benchmark sums counters over threads, and
// only thread 0 sets them).
void report_commits(benchmark::State &state) {
  if (state.thread_index() != 0) return;
  StoreStats now = g_store->stats();
  uint64_t commits = now.commits - g_before.commits;
  uint64_t writes = now.writes - g_before.writes;
  if (commits == 0) return;
  state.counters["batch"] = static_cast<double>(writes) / static_cast<double>(commits);
  state.counters["fsyncs/s"] = benchmark::Counter(static_cast<double>(commits), benchmark::Counter::kIsRate);
}

void BM_DurablePut(benchmark::State &state) {
  StoredRecord r;
  r.received_ms = 1000;
  for (auto _ : state) {
    uint64_t i = g_next.fetch_add(1, std::memory_order_relaxed);
    r.key = key_for("/chorus/bench/", i);
    r.value = value_for(i);
    g_store->put_record(r);
  }
  state.SetItemsProcessed(state.iterations());
  report_commits(state);
}
BENCHMARK(BM_DurablePut)
    ->Setup(open_store)
    ->Teardown(close_store)
    ->Threads(1)
    ->Threads(4)
    ->Threads(16)
    ->Threads(64)
    ->Threads(128)
    ->UseRealTime();

void BM_DurablePutAsync(benchmark::State &state) {
  const auto window = static_cast<ptrdiff_t>(state.range(0));
  std::counting_semaphore<65536> slots(window);
  StoredRecord r;
  r.received_ms = 1000;
  for (auto _ : state) {
    slots.acquire();  // waits for a callback when `window` puts are outstanding
    uint64_t i = g_next.fetch_add(1, std::memory_order_relaxed);
    r.key = key_for("/chorus/async/", i);
    r.value = value_for(i);
    g_store->put_record_async(r, [&slots](std::exception_ptr error) {
      if (error) std::abort();
      slots.release();
    });
  }
  for (ptrdiff_t k = 0; k < window; ++k) slots.acquire();  // the last ones are durable too
  state.SetItemsProcessed(state.iterations());
  report_commits(state);
}
BENCHMARK(BM_DurablePutAsync)
    ->Setup(open_store)
    ->Teardown(close_store)
    ->ArgName("in_flight")
    ->Arg(64)
    ->Arg(256)
    ->Arg(1024)
    ->UseRealTime();

void BM_Get(benchmark::State &state) {
  uint64_t i = static_cast<uint64_t>(state.thread_index()) * 7919;
  for (auto _ : state) {
    auto r = g_store->get_record(key_for("/chorus/get/", i++ % kGetRecords), 2000);
    if (!r) state.SkipWithError("record missing");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Get)->Setup(open_filled_store)->Teardown(close_store)->Threads(1)->Threads(4)->UseRealTime();

void BM_AddProvider(benchmark::State &state) {
  ProviderRecord p;
  p.received_ms = 1000;
  p.addrs = {Bytes(8, 0x04), Bytes(20, 0x29)};
  for (auto _ : state) {
    uint64_t i = g_next.fetch_add(1, std::memory_order_relaxed);
    p.key = key_for("cid-", i / 4);  // four providers per key
    p.provider = key_for("peer-", i);
    if (!g_store->add_provider(p)) state.SkipWithError("provider refused");
  }
  state.SetItemsProcessed(state.iterations());
  report_commits(state);
}
BENCHMARK(BM_AddProvider)
    ->Setup(open_store)
    ->Teardown(close_store)
    ->Threads(1)
    ->Threads(16)
    ->Threads(64)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

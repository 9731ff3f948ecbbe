// bench_service_call: what a service call through the C ABI costs compared with a C++ call.
//
//   BM_DirectCall         non-virtual C++ member call (noinline, other translation unit)
//   BM_VirtualCall        C++ virtual call (object type hidden in another translation unit)
//   BM_CTableCall         table->add(self, x) on the table and self of a real plugin, chorus-bench.adder.so,
//                         loaded with the host's own loader (chorus::host::load_plugin) and created and
//                         started through its C vtable with a minimal host API table
//   BM_CTableCallChecked  the same, with CHORUS_HAS(bench_adder_v1, table, add) checked before each call
//   BM_AcquireRelease     host->service_acquire + service_release through the real registry: the real
//                         chorus::host::Runtime runs in-process with bench.adder and bench.probe; the
//                         benchmark calls the host API with bench.probe's context. Args: the range
//                         string ("^1" or "*", which skips range parsing)
//   BM_AcquireCallRelease the per-request pattern of a swappable service: acquire, one call, release
//   BM_Lifecycle*         not a service call: dispatching one lifecycle call (start) the way the host
//                         does (a new thread per call), via a persistent helper thread, and directly
//
// Every call feeds its result to benchmark::DoNotOptimize, and the argument changes each iteration.
#include <benchmark/benchmark.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "bench_adder.h"
#include "chorus/plugin.h"
#include "config.hpp"
#include "direct_impl.hpp"
#include "logging.hpp"
#include "plugin_loader.hpp"
#include "runtime.hpp"

namespace fs = std::filesystem;
using chorus::bench::DirectAdder;
using chorus::bench::VirtualAdder;

namespace {

std::string plugin_dir() {
  if (const char *d = std::getenv("CHORUS_BENCH_CALL_PLUGIN_DIR"); d && *d) return d;
  return BENCH_CALL_PLUGIN_DIR;
}

// ------------------------------------------------------------------ C++ baselines
void BM_DirectCall(benchmark::State &state) {
  DirectAdder adder;
  int64_t x = 1;
  for (auto _ : state) {
    int64_t r = adder.add(x);
    benchmark::DoNotOptimize(r);
    ++x;
  }
}
BENCHMARK(BM_DirectCall);

void BM_VirtualCall(benchmark::State &state) {
  std::unique_ptr<VirtualAdder> adder = chorus::bench::make_virtual_adder();
  VirtualAdder *p = adder.get();
  benchmark::DoNotOptimize(p);
  int64_t x = 1;
  for (auto _ : state) {
    int64_t r = p->add(x);
    benchmark::DoNotOptimize(r);
    ++x;
  }
}
BENCHMARK(BM_VirtualCall);

// ------------------------------------------------------------------ C ABI through a loaded plugin
// A host API table with every slot NULL: bench.adder never calls the host.
chorus_host_api minimal_host_api() {
  chorus_host_api api{};
  api.struct_size = sizeof api;
  api.abi_major = CHORUS_ABI_MAJOR;
  api.abi_minor = CHORUS_ABI_MINOR;
  return api;
}

struct LoadedAdder {
  std::shared_ptr<chorus::host::PluginImage> image;  // keeps the .so mapped
  chorus_host_api api = minimal_host_api();
  void *instance = nullptr;
  const bench_adder_v1 *table = nullptr;
  void *self = nullptr;
  std::string error;

  LoadedAdder() {
    chorus::host::LoadRequest req;
    req.path = plugin_dir() + "/chorus-bench.adder.so";
    req.expected_id = "bench.adder";
    image = chorus::host::load_plugin(req, &error);
    if (!image) return;
    const chorus_plugin_vtable *vt = image->vtable;
    chorus_error err{};
    err.struct_size = sizeof err;
    // The context is opaque to the plugin; bench.adder never hands it back to the host.
    auto *ctx = reinterpret_cast<chorus_host_ctx *>(&api);
    if (vt->create(&api, ctx, "{}", 2, &instance, &err) != CHORUS_OK || vt->start(instance, &err) != CHORUS_OK) {
      error = std::string("create/start failed: ") + err.message;
      return;
    }
    const void *t = nullptr;
    if (vt->get_service(instance, "bench.adder", 1, &t, &self, &err) != CHORUS_OK || t == nullptr) {
      error = std::string("get_service failed: ") + err.message;
      return;
    }
    table = static_cast<const bench_adder_v1 *>(t);
  }
  ~LoadedAdder() {
    if (image && instance) {
      chorus_error err{};
      err.struct_size = sizeof err;
      image->vtable->stop(instance, 1000, &err);
      image->vtable->destroy(instance);
    }
  }
};

LoadedAdder &loaded_adder() {
  static LoadedAdder adder;
  return adder;
}

void BM_CTableCall(benchmark::State &state) {
  LoadedAdder &a = loaded_adder();
  if (!a.table) {
    state.SkipWithError(a.error.c_str());
    return;
  }
  const bench_adder_v1 *table = a.table;
  void *self = a.self;
  benchmark::DoNotOptimize(table);
  benchmark::DoNotOptimize(self);
  int64_t x = 1;
  for (auto _ : state) {
    int64_t r = table->add(self, x);
    benchmark::DoNotOptimize(r);
    ++x;
  }
}
BENCHMARK(BM_CTableCall);

void BM_CTableCallChecked(benchmark::State &state) {
  LoadedAdder &a = loaded_adder();
  if (!a.table) {
    state.SkipWithError(a.error.c_str());
    return;
  }
  const bench_adder_v1 *table = a.table;
  void *self = a.self;
  benchmark::DoNotOptimize(table);
  benchmark::DoNotOptimize(self);
  int64_t x = 1;
  for (auto _ : state) {
    // The table may be changed by the (opaque) call, so the check and the slot are re-read each time.
    if (CHORUS_HAS(bench_adder_v1, table, add)) {
      int64_t r = table->add(self, x);
      benchmark::DoNotOptimize(r);
    }
    ++x;
  }
}
BENCHMARK(BM_CTableCallChecked);

// ------------------------------------------------------------------ the real host registry
// The real Runtime, in-process, running bench.adder and bench.probe. bench.probe writes its host
// API table and context into `slot` (its config carries the slot's address).
struct InProcessRuntime {
  bench_probe_slot slot{};
  std::unique_ptr<chorus::host::Runtime> runtime;
  std::thread thread;
  std::string state_dir;
  std::string error;

  InProcessRuntime() {
    char tmpl[] = "/tmp/chorus-bench-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      error = "mkdtemp failed";
      return;
    }
    state_dir = tmpl;
    chorus::host::configure_logging(chorus::host::LogLevel::kWarn, "text");
    chorus::host::Config config;
    config.source = "<bench_service_call>";
    config.host.log_level = "warn";
    config.host.plugin_dirs = {plugin_dir()};
    config.host.state_dir = state_dir;
    config.host.http_listen = "";
    config.host.worker_threads = 2;
    chorus::host::PluginEntry adder;
    adder.id = "bench.adder";
    adder.critical = true;
    chorus::host::PluginEntry probe;
    probe.id = "bench.probe";
    probe.critical = true;
    probe.config_json = "{\"slot\":" + std::to_string(reinterpret_cast<uintptr_t>(&slot)) + "}";
    config.plugins = {adder, probe};
    runtime = std::make_unique<chorus::host::Runtime>(std::move(config), "");
    thread = std::thread([this] { runtime->run(); });
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!slot.started && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (!slot.started) error = "the in-process runtime did not start bench.probe (see stderr)";
  }

  void shutdown() {
    if (!thread.joinable()) return;
    if (slot.started) {
      ::kill(::getpid(), SIGTERM);  // Runtime::run() handles it on its control thread and returns
      thread.join();
    } else {
      thread.detach();  // it never got going; leave it
    }
    runtime.reset();
    std::error_code ec;
    if (!state_dir.empty()) fs::remove_all(state_dir, ec);
  }

  const chorus_host_api *host() const { return static_cast<const chorus_host_api *>(slot.host); }
  chorus_host_ctx *ctx() const { return static_cast<chorus_host_ctx *>(slot.ctx); }
};

std::unique_ptr<InProcessRuntime> g_runtime;

InProcessRuntime *runtime() {
  static std::once_flag once;
  std::call_once(once, [] { g_runtime = std::make_unique<InProcessRuntime>(); });
  return g_runtime->error.empty() ? g_runtime.get() : nullptr;
}

const char *range_arg(const benchmark::State &state) { return state.range(0) == 0 ? "^1" : "*"; }

void BM_AcquireRelease(benchmark::State &state) {
  InProcessRuntime *rt = runtime();
  if (rt == nullptr) {
    state.SkipWithError(g_runtime->error.c_str());
    return;
  }
  const chorus_host_api *host = rt->host();
  chorus_host_ctx *ctx = rt->ctx();
  const char *range = range_arg(state);
  state.SetLabel(std::string("range=") + range);
  for (auto _ : state) {
    chorus_service_ref ref{};
    ref.struct_size = sizeof ref;
    chorus_status s = host->service_acquire(ctx, "bench.adder", range, &ref, nullptr);
    if (s != CHORUS_OK) {
      state.SkipWithError("service_acquire failed");
      break;
    }
    benchmark::DoNotOptimize(ref.table);
    host->service_release(ctx, &ref);
  }
}
BENCHMARK(BM_AcquireRelease)->Arg(0)->Arg(1);
BENCHMARK(BM_AcquireRelease)->Arg(0)->Threads(2)->UseRealTime();

void BM_AcquireCallRelease(benchmark::State &state) {
  InProcessRuntime *rt = runtime();
  if (rt == nullptr) {
    state.SkipWithError(g_runtime->error.c_str());
    return;
  }
  const chorus_host_api *host = rt->host();
  chorus_host_ctx *ctx = rt->ctx();
  int64_t x = 1;
  for (auto _ : state) {
    chorus_service_ref ref{};
    ref.struct_size = sizeof ref;
    if (host->service_acquire(ctx, "bench.adder", "^1", &ref, nullptr) != CHORUS_OK) {
      state.SkipWithError("service_acquire failed");
      break;
    }
    const auto *table = static_cast<const bench_adder_v1 *>(ref.table);
    if (CHORUS_HAS(bench_adder_v1, table, add)) {
      int64_t r = table->add(ref.self, x);
      benchmark::DoNotOptimize(r);
    }
    host->service_release(ctx, &ref);
    ++x;
  }
}
BENCHMARK(BM_AcquireCallRelease);

// ------------------------------------------------------------------ lifecycle-call dispatch
// Not a service call: what it costs the host to run one plugin lifecycle call (create, start, stop)
// "with a deadline". The host once started a new std::thread per call and waited
// on a future with wait_for(); BM_LifecycleThreadPerCall reproduces that pattern around bench.adder's
// (empty) start(). BM_LifecyclePersistentHelper hands the same call to one long-lived helper thread
// instead, which is what host/src/lifecycle.cpp now does. Real time: the cost is mostly waiting for the other thread to run.
void BM_LifecycleThreadPerCall(benchmark::State &state) {
  LoadedAdder &a = loaded_adder();
  if (!a.table) {
    state.SkipWithError(a.error.c_str());
    return;
  }
  const chorus_plugin_vtable *vt = a.image->vtable;
  void *inst = a.instance;
  for (auto _ : state) {
    auto status = std::make_shared<chorus_status>(CHORUS_E_INTERNAL);
    auto done = std::make_shared<std::promise<void>>();
    std::future<void> fut = done->get_future();
    std::thread worker([vt, inst, status, done] {
      chorus_error err{};
      err.struct_size = sizeof err;
      *status = vt->start(inst, &err);
      done->set_value();
    });
    if (fut.wait_for(std::chrono::milliseconds(30000)) == std::future_status::ready) worker.join();
    else worker.detach();
    benchmark::DoNotOptimize(*status);
  }
}
BENCHMARK(BM_LifecycleThreadPerCall)->UseRealTime();

void BM_LifecyclePersistentHelper(benchmark::State &state) {
  LoadedAdder &a = loaded_adder();
  if (!a.table) {
    state.SkipWithError(a.error.c_str());
    return;
  }
  const chorus_plugin_vtable *vt = a.image->vtable;
  void *inst = a.instance;
  std::mutex mu;
  std::condition_variable cv;
  uint64_t requested = 0, completed = 0;
  bool quit = false;
  chorus_status status = CHORUS_E_INTERNAL;
  std::thread helper([&] {
    std::unique_lock lk(mu);
    for (;;) {
      cv.wait(lk, [&] { return quit || requested > completed; });
      if (quit) return;
      lk.unlock();
      chorus_error err{};
      err.struct_size = sizeof err;
      chorus_status s = vt->start(inst, &err);
      lk.lock();
      status = s;
      ++completed;
      cv.notify_all();
    }
  });
  for (auto _ : state) {
    std::unique_lock lk(mu);
    uint64_t ticket = ++requested;
    cv.notify_all();
    cv.wait_for(lk, std::chrono::milliseconds(30000), [&] { return completed >= ticket; });
    benchmark::DoNotOptimize(status);
  }
  {
    std::lock_guard lk(mu);
    quit = true;
  }
  cv.notify_all();
  helper.join();
}
BENCHMARK(BM_LifecyclePersistentHelper)->UseRealTime();

void BM_LifecycleDirect(benchmark::State &state) {
  LoadedAdder &a = loaded_adder();
  if (!a.table) {
    state.SkipWithError(a.error.c_str());
    return;
  }
  const chorus_plugin_vtable *vt = a.image->vtable;
  void *inst = a.instance;
  benchmark::DoNotOptimize(vt);
  for (auto _ : state) {
    chorus_error err{};
    err.struct_size = sizeof err;
    chorus_status s = vt->start(inst, &err);
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_LifecycleDirect)->UseRealTime();

}  // namespace

int main(int argc, char **argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  if (g_runtime) g_runtime->shutdown();
  benchmark::Shutdown();
  return 0;
}

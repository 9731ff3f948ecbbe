// Two small raw-C-ABI plugins for bench_service_call, compiled from this file with -DBENCH_PROBE=0/1:
//   bench.adder  provides bench.adder 1.0, a table {struct_size, add(self, x)};
//   bench.probe  requires bench.adder ^1 and, in create, writes its host API table and context into a
//                bench_probe_slot whose address the benchmark passes in the config ({"slot": <addr>}),
//                so the benchmark can call service_acquire/service_release as this plugin would.
// Both share the benchmark's address space (the benchmark runs the real Runtime in-process).
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "bench_adder.h"
#include "chorus/plugin.h"

namespace {

struct Adder {
  int64_t acc = 0;
};

int64_t adder_add(void *self, int64_t x) {
  auto *a = static_cast<Adder *>(self);
  a->acc += x;
  return a->acc;
}

const bench_adder_v1 kAdderTable = {sizeof(bench_adder_v1), adder_add};

chorus_status p_create(const chorus_host_api *host, chorus_host_ctx *ctx, const char *config, size_t len,
                       void **out, chorus_error *) {
#if BENCH_PROBE
  // config is {"slot":<decimal address>} (or {} when loaded without a benchmark driving it).
  const char *key = static_cast<const char *>(std::memchr(config, ':', len));
  if (key != nullptr) {
    auto *slot = reinterpret_cast<bench_probe_slot *>(std::strtoull(key + 1, nullptr, 10));
    if (slot != nullptr) {
      slot->host = host;
      slot->ctx = ctx;
    }
    *out = slot;
  } else {
    *out = nullptr;
  }
#else
  (void)host, (void)ctx, (void)config, (void)len;
  *out = new Adder;
#endif
  return CHORUS_OK;
}

chorus_status p_start(void *inst, chorus_error *) {
#if BENCH_PROBE
  if (inst != nullptr) static_cast<bench_probe_slot *>(inst)->started = 1;
#else
  (void)inst;
#endif
  return CHORUS_OK;
}

chorus_status p_get_service(void *inst, const char *service, uint16_t, const void **table, void **self,
                            chorus_error *) {
  if (std::strcmp(service, "bench.adder") != 0) return CHORUS_E_NOT_FOUND;
  *table = &kAdderTable;
  *self = inst;
  return CHORUS_OK;
}

chorus_status p_stop(void *, uint64_t, chorus_error *) { return CHORUS_OK; }

void p_destroy(void *inst) {
#if BENCH_PROBE
  (void)inst;
#else
  delete static_cast<Adder *>(inst);
#endif
}

const chorus_plugin_vtable kVtable = {sizeof(chorus_plugin_vtable), 0, p_create, p_start, p_get_service,
                                      p_stop, p_destroy, nullptr, nullptr};

#if BENCH_PROBE
const chorus_require kRequires[] = {{sizeof(chorus_require), 0, "bench.adder", "^1"}};
#define BENCH_ID "bench.probe"
#define BENCH_PROVIDES nullptr, 0
#define BENCH_REQUIRES 1, kRequires
#else
const chorus_provide kProvides[] = {{sizeof(chorus_provide), 0, "bench.adder", 1, 0, 0}};
#define BENCH_ID "bench.adder"
#define BENCH_PROVIDES kProvides, 1
#define BENCH_REQUIRES 0, nullptr
#endif

const chorus_plugin_descriptor kDescriptor = {
    sizeof(chorus_plugin_descriptor), CHORUS_ABI_MAJOR, CHORUS_ABI_MINOR, CHORUS_ABI_MINOR, 0, 0, 0,
    BENCH_ID, "1.0.0", "service-call benchmark plugin", "chorus-agent bench", "Apache-2.0",
    BENCH_PROVIDES, BENCH_REQUIRES, nullptr, &kVtable, "bench", {nullptr, nullptr, nullptr, nullptr}};

}  // namespace

extern "C" CHORUS_EXPORT const chorus_plugin_descriptor *chorus_plugin_entry_v1(const chorus_abi_info *) {
  return &kDescriptor;
}

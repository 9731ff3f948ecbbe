// The no-op plugin of the cold-start benchmark, written against the raw C ABI with no dependencies
// (no STL, no JSON). It is compiled once per variant, bench.noop-01 ... bench.noop-50; a generated
// header (-include, see bench/CMakeLists.txt) gives each variant its id, the service it provides and
// the services it requires, so the resolver has a dependency graph to order. create allocates one
// small object, start and stop do nothing, get_service hands out an empty table.
#include <cstdlib>
#include <cstring>

#include "chorus/plugin.h"

#ifndef NOOP_ID
#error "compile with -include <generated variant header> (see bench/CMakeLists.txt)"
#endif

namespace {

struct Noop {
  const chorus_host_api *host;
  chorus_host_ctx *ctx;
};

struct EmptyTable {
  uint32_t struct_size;
};
const EmptyTable kTable = {sizeof(EmptyTable)};

chorus_status noop_create(const chorus_host_api *host, chorus_host_ctx *ctx, const char *, size_t, void **out,
                          chorus_error *) {
  auto *n = static_cast<Noop *>(std::malloc(sizeof(Noop)));
  if (n == nullptr) return CHORUS_E_NO_MEMORY;
  n->host = host;
  n->ctx = ctx;
  *out = n;
  return CHORUS_OK;
}

chorus_status noop_start(void *, chorus_error *) { return CHORUS_OK; }

chorus_status noop_get_service(void *inst, const char *service, uint16_t, const void **table, void **self,
                               chorus_error *) {
  if (NOOP_PROVIDES_COUNT == 0 || std::strcmp(service, noop_provides[0].service) != 0) return CHORUS_E_NOT_FOUND;
  *table = &kTable;
  *self = inst;
  return CHORUS_OK;
}

chorus_status noop_stop(void *, uint64_t, chorus_error *) { return CHORUS_OK; }

void noop_destroy(void *inst) { std::free(inst); }

const chorus_plugin_vtable kVtable = {sizeof(chorus_plugin_vtable), 0,       noop_create, noop_start,
                                      noop_get_service,             noop_stop, noop_destroy, nullptr,
                                      nullptr};

const chorus_plugin_descriptor kDescriptor = {
    sizeof(chorus_plugin_descriptor),
    CHORUS_ABI_MAJOR,
    CHORUS_ABI_MINOR,
    CHORUS_ABI_MINOR,
    0,
    0,
    0,
    NOOP_ID,
    "1.0.0",
    "no-op plugin for the cold-start benchmark",
    "chorus-agent bench",
    "Apache-2.0",
    NOOP_PROVIDES_COUNT ? noop_provides : nullptr,
    NOOP_PROVIDES_COUNT,
    NOOP_REQUIRES_COUNT,
    NOOP_REQUIRES_COUNT ? noop_requires : nullptr,
    nullptr,
    &kVtable,
    "bench",
    {nullptr, nullptr, nullptr, nullptr}};

}  // namespace

extern "C" CHORUS_EXPORT const chorus_plugin_descriptor *chorus_plugin_entry_v1(const chorus_abi_info *) {
  return &kDescriptor;
}

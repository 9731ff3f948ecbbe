/* bench.adder 1.0: the service the service-call benchmark calls through the C ABI. */
#ifndef CHORUS_BENCH_ADDER_H
#define CHORUS_BENCH_ADDER_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bench_adder_v1 {
  uint32_t struct_size;
  int64_t (*add)(void *self, int64_t x); /* returns self's accumulator + x and stores it */
} bench_adder_v1;

/* bench.probe 1.0 (offered by the bench.probe plugin, which requires bench.adder): lets the
 * benchmark drive the real host registry with the probe's own host API table and context. */
typedef struct bench_probe_slot {
  const void *host; /* const chorus_host_api *, set in create */
  void *ctx;        /* chorus_host_ctx *, set in create */
  volatile int started;
} bench_probe_slot;

#ifdef __cplusplus
}
#endif
#endif

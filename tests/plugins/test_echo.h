/* test.echo v1: a swappable request/response service used by the host's hot-swap tests. */
#ifndef CHORUS_TEST_ECHO_H
#define CHORUS_TEST_ECHO_H
#include "chorus/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Called exactly once per accepted call, on a host worker thread. text is JSON
 * {"plugin":..,"version":..,"instance":..} on CHORUS_OK. */
typedef void (*test_echo_done_fn)(void *user, chorus_status status, const char *text, size_t len);

typedef struct test_echo_v1 {
  uint32_t struct_size;
  uint32_t reserved;
  /* Answers after delay_ms. Fails with CHORUS_E_UNAVAILABLE once the provider is stopping. */
  chorus_status (*call)(void *self, uint64_t delay_ms, test_echo_done_fn done, void *user, uint64_t *out_id);
  /* Answers the call now with CHORUS_E_CANCELLED (before returning), unless it already finished. */
  chorus_status (*cancel)(void *self, uint64_t id);
} test_echo_v1;

#ifdef __cplusplus
}
#endif
#endif

/* Deliberately broken plugins for the loader's bad-input tests. BAD_KIND selects the defect. */
#include <stddef.h>

#include "chorus/plugin.h"
#include "chorus/status.h" /* proves the error vocabulary compiles as C */

#define BAD_NOT_A_PLUGIN 1   /* a shared object without the entry symbol */
#define BAD_WRONG_MAJOR 2    /* only chorus_plugin_entry_v2 */
#define BAD_SHORT_STRUCT 3   /* descriptor struct_size too small */
#define BAD_NO_VTABLE 4      /* vtable NULL */
#define BAD_BAD_ID 5         /* id with upper-case letters */
#define BAD_REFUSES 6        /* entry returns NULL */
#define BAD_BAD_RANGE 7      /* requirement with a malformed version range */
#define BAD_MAJOR_FIELD 8    /* v1 symbol, but abi_major 2 in the descriptor */

static chorus_status create(const chorus_host_api *h, chorus_host_ctx *c, const char *j, size_t n, void **out,
                            chorus_error *e) {
  (void)h; (void)c; (void)j; (void)n; (void)e;
  *out = NULL;
  return CHORUS_OK;
}
static chorus_status start(void *i, chorus_error *e) { (void)i; (void)e; return CHORUS_OK; }
static chorus_status stop(void *i, uint64_t b, chorus_error *e) { (void)i; (void)b; (void)e; return CHORUS_OK; }
static void destroy(void *i) { (void)i; }

static const chorus_plugin_vtable vtable = {sizeof(chorus_plugin_vtable), 0, create, start, NULL, stop, destroy, NULL, NULL};
static const chorus_require bad_range[] = {{sizeof(chorus_require), 0, "test.base", "^^1"}};

static const chorus_plugin_descriptor descriptor = {
    .struct_size = BAD_KIND == BAD_SHORT_STRUCT ? 16 : sizeof(chorus_plugin_descriptor),
    .abi_major = BAD_KIND == BAD_MAJOR_FIELD ? 2 : CHORUS_ABI_MAJOR,
    .abi_minor = CHORUS_ABI_MINOR,
    .min_host_minor = CHORUS_ABI_MINOR,
    .id = BAD_KIND == BAD_BAD_ID ? "Bad.ID" : BAD_ID,
    .version = "1.0.0",
    .requirements = BAD_KIND == BAD_BAD_RANGE ? bad_range : NULL,
    .requirements_count = BAD_KIND == BAD_BAD_RANGE ? 1 : 0,
    .vtable = BAD_KIND == BAD_NO_VTABLE ? NULL : &vtable,
};

#if BAD_KIND == BAD_NOT_A_PLUGIN
CHORUS_EXPORT int some_other_function(void) { return descriptor.struct_size > 0; }
#elif BAD_KIND == BAD_WRONG_MAJOR
CHORUS_EXPORT const chorus_plugin_descriptor *chorus_plugin_entry_v2(const chorus_abi_info *host) {
  (void)host;
  return &descriptor;
}
#else
CHORUS_EXPORT const chorus_plugin_descriptor *chorus_plugin_entry_v1(const chorus_abi_info *host) {
  (void)host;
  return BAD_KIND == BAD_REFUSES ? NULL : &descriptor;
}
#endif

// Compatibility proof: a plugin that needs ABI 1.2 (host_api.redact) is refused, with a clear
// reason, by a host of ABI 1.1. This binary compiles the host's own descriptor check
// (host/src/plugin_loader.cpp) with the 1.1 header (tests/compat/abi-1.1, kept verbatim from the
// commit before 1.2) first on the include path, so it is the 1.1 host's check, not a re-implementation.
#include <gtest/gtest.h>

#include "chorus/plugin.h"
#include "plugin_loader.hpp"

static_assert(CHORUS_ABI_MINOR == 1, "this test must see the ABI 1.1 header");

namespace {

void noop(void *) {}
chorus_status create(const chorus_host_api *, chorus_host_ctx *, const char *, size_t, void **, chorus_error *) {
  return CHORUS_OK;
}
chorus_status start(void *, chorus_error *) { return CHORUS_OK; }
chorus_status stop(void *, uint64_t, chorus_error *) { return CHORUS_OK; }

chorus_plugin_descriptor descriptor(uint16_t abi_minor, uint16_t min_host_minor, const chorus_plugin_vtable *vt) {
  chorus_plugin_descriptor d{};
  d.struct_size = sizeof d;
  d.abi_major = 1;
  d.abi_minor = abi_minor;
  d.min_host_minor = min_host_minor;
  d.id = "redactor";
  d.version = "1.0.0";
  d.vtable = vt;
  return d;
}

chorus_plugin_vtable vtable() {
  chorus_plugin_vtable vt{};
  vt.struct_size = sizeof vt;
  vt.create = create;
  vt.start = start;
  vt.stop = stop;
  vt.destroy = noop;
  return vt;
}

TEST(AbiCompat, AHostOf11RefusesAPluginThatNeeds12) {
  const chorus_plugin_vtable vt = vtable();
  const chorus_plugin_descriptor d = descriptor(2, 2, &vt);
  chorus::host::PluginInfo info;
  auto why = chorus::host::validate_descriptor(&d, "/plugins/chorus-redactor.so", &info);
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(*why, "/plugins/chorus-redactor.so: needs host ABI 1.2 or newer, this host has 1.1");
}

// Built against 1.2 but needing only 1.1 (redact used behind CHORUS_HAS): the 1.1 host loads it.
TEST(AbiCompat, AHostOf11AcceptsA12PluginThatNeedsOnly11) {
  const chorus_plugin_vtable vt = vtable();
  const chorus_plugin_descriptor d = descriptor(2, 1, &vt);
  chorus::host::PluginInfo info;
  auto why = chorus::host::validate_descriptor(&d, "/plugins/chorus-redactor.so", &info);
  EXPECT_FALSE(why.has_value()) << *why;
  EXPECT_EQ(info.abi_minor, 2);
  EXPECT_EQ(info.min_host_minor, 1);
}

}  // namespace

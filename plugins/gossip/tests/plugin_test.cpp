// plugin_test: the plugin on the SDK FakeHost (owned by the plugin-glue helper).
#include <gtest/gtest.h>

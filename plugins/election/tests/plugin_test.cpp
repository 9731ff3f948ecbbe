// plugin_test: being written.
#include <gtest/gtest.h>

// router_test: see the helper owning it.
#include <gtest/gtest.h>

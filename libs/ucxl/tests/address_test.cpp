#include <gtest/gtest.h>

#include "ucxl/address.hpp"

TEST(UcxlAddress, Placeholder) { EXPECT_FALSE(chorus::ucxl::parse("").has_value()); }

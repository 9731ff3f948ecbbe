// term_store_test: being written.
#include <gtest/gtest.h>

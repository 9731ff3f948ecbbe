// sim_cluster_test: being written.
#include <gtest/gtest.h>

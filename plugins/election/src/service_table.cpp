// being written
#include "service_table.hpp"

#include "service_table.hpp"

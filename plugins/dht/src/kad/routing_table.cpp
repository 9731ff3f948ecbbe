#include "kad/routing_table.hpp"

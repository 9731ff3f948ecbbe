// being written
#include "http_routes.hpp"

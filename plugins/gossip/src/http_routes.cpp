#include "http_routes.hpp"

#include "router.hpp"

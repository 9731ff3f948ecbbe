// Implementation of store/index.hpp (slice "store").
#include "store/index.hpp"

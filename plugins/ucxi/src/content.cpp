// Implementation of content.hpp (slice "store").
#include "content.hpp"

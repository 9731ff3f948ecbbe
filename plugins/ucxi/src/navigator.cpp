// Implementation of navigator.hpp (slice "store").
#include "navigator.hpp"

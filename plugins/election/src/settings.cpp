// being written
#include "settings.hpp"

// being written
#include "resources.hpp"

// being written
#include "node.hpp"

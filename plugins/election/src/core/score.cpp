// being written
#include "core/score.hpp"

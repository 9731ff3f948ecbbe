// being written
#include "core/election.hpp"

// being written
#include "core/messages.hpp"

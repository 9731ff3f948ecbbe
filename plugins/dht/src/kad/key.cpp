#include "kad/key.hpp"

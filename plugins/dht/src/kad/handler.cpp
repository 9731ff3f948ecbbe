#include "kad/handler.hpp"

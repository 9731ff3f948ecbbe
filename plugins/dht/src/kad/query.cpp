#include "kad/query.hpp"

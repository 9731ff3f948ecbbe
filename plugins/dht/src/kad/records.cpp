#include "kad/records.hpp"

#include "kad/message.hpp"

#include "rpc.hpp"

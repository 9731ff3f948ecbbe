#include "signature.hpp"

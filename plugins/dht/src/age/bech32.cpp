#include "age/bech32.hpp"

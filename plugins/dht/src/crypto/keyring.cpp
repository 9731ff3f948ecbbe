#include "crypto/keyring.hpp"

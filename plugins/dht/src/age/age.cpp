#include "age/age.hpp"

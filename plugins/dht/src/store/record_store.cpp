#include "store/record_store.hpp"

// being written
#include "store/term_store.hpp"

#include "store/audit_log.hpp"

#include "ai_common/dialect.hpp"

namespace chorus_ai {
chorus_status status_for_http(long s) noexcept {
  if (s == 400 || s == 422) return CHORUS_E_INVALID_ARG;
  if (s == 404) return CHORUS_E_NOT_FOUND;
  if (s == 408 || s == 504) return CHORUS_E_TIMEOUT;
  if (s == 413) return CHORUS_E_TOO_LARGE;
  if (s == 429) return CHORUS_E_BUSY;
  if (s == 503) return CHORUS_E_UNAVAILABLE;
  return CHORUS_E_SERVICE_BASE + 0;  // CHORUS_AI_E_UPSTREAM
}
}  // namespace chorus_ai

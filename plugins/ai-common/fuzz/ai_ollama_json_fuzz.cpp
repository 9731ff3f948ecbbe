// Ollama JSON bodies: non-streamed /api/chat answers, /api/tags, error bodies.
#include "fuzz_common.hpp"
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static auto d = chorus_ai::make_ollama_dialect();
  chorus_ai_fuzz::run(*d, chorus_ai::Kind::chat, false, data, size);
  chorus_ai_fuzz::run(*d, chorus_ai::Kind::models, false, data, size);
  return 0;
}

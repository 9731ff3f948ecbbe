// Ollama NDJSON stream parser (/api/chat stream: true).
#include "fuzz_common.hpp"
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static auto d = chorus_ai::make_ollama_dialect();
  chorus_ai_fuzz::run(*d, chorus_ai::Kind::chat, true, data, size);
  return 0;
}

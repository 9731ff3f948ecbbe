// Ollama NDJSON stream parser (/api/chat stream: true).
#include "fuzz_common.hpp"
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static auto d = chorus::ai_common::make_ollama_dialect();
  chorus::ai_common::fuzz::run(*d, chorus::ai_common::Kind::chat, true, data, size);
  return 0;
}

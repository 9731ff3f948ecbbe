// OpenAI SSE stream parser (/v1/chat/completions stream: true), incl. tool call delta accumulation.
#include "fuzz_common.hpp"
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static auto d = chorus::ai_common::make_openai_dialect();
  chorus::ai_common::fuzz::run(*d, chorus::ai_common::Kind::chat, true, data, size);
  return 0;
}

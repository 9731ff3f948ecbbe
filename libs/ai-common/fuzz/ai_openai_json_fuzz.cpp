// OpenAI JSON bodies: non-streamed chat completions, /v1/models, error bodies; and request building
// from untrusted client JSON (the reasoning route forwards client bodies).
#include "fuzz_common.hpp"
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static auto d = chorus::ai_common::make_openai_dialect();
  chorus::ai_common::fuzz::run(*d, chorus::ai_common::Kind::chat, false, data, size);
  chorus::ai_common::fuzz::run(*d, chorus::ai_common::Kind::models, false, data, size);
  try {
    chorus::ai_common::ProviderIdentity who{"ai-fuzz", "0.0.0", "m"};
    (void)d->build(chorus::ai_common::Kind::chat, std::string_view(reinterpret_cast<const char *>(data), size), who);
  } catch (const chorus::Error &) {
  }
  return 0;
}

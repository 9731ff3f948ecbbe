// Shared driver: feeds fuzz input to a dialect's decoder, split at a fuzz-chosen point, the way
// libcurl hands bytes over. Any crash, sanitizer report or leak is a bug; statuses are fine.
#pragma once
#include <chorus/plugin.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ai_common/dialect.hpp"

namespace chorus::ai_common::fuzz {
inline void run(const chorus::ai_common::Dialect &d, chorus::ai_common::Kind kind, bool stream, const uint8_t *data, size_t size) {
  if (size < 1) return;
  const size_t step = 1 + data[0] % 64;
  std::string_view input(reinterpret_cast<const char *>(data + 1), size - 1);
  chorus::ai_common::ProviderIdentity who{"ai-fuzz", "0.0.0", "m"};
  chorus::ai_common::Upstream up = d.build(kind, stream ? R"({"messages":[{"role":"user","content":"x"}],"stream":true})"
                                                : R"({"messages":[{"role":"user","content":"x"}]})",
                                   who);
  if (kind == chorus::ai_common::Kind::models) up = d.build(kind, "", who);
  auto dec = d.decoder(kind, up, who);
  std::vector<std::string> chunks;
  std::string err, done;
  for (size_t i = 0; i < input.size(); i += step)
    if (dec->feed(input.substr(i, step), chunks, err) != CHORUS_OK) return;
  (void)dec->finish(done, err);
  (void)d.error_text(500, input);
}
}  // namespace chorus::ai_common::fuzz

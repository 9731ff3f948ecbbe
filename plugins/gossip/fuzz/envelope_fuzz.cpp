// libFuzzer target `gossip_envelope`: the data of a received pubsub message, through what the node
// does with it - the CHORUS envelope parser (hop limit, the type handed to handlers), and for what
// parses, a rebuild that must parse back to the same envelope. The bytes are also tried as an RFC
// 3339 timestamp. Seed corpus: corpus/gossip_envelope/ (envelopes of known and unknown types, hop
// counts, raw payloads, deep nesting). Run: <build>/fuzz/gossip_envelope_fuzz corpus/gossip_envelope
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "envelope.hpp"

using namespace chorus::gossip;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  (void)parse_rfc3339_ms(text);
  std::string why;
  auto e = parse_envelope(text, &why);
  if (!e) {
    if (why.empty()) std::abort();  // every refusal says why
    return 0;
  }
  (void)e->kind();
  (void)message_type_name(e->kind());
  // What we would publish from it parses back to the same envelope (data {} when it was absent;
  // strings with invalid UTF-8 are replaced on output, so only compare when the output is clean).
  const std::string rebuilt = build_envelope(*e);
  auto again = parse_envelope(rebuilt, &why);
  if (!again) std::abort();
  if (again->hop_count != e->hop_count) std::abort();
  if (rebuilt.find("\xef\xbf\xbd") == std::string::npos &&
      (again->type != e->type || again->from != e->from || again->timestamp != e->timestamp))
    std::abort();
  return 0;
}

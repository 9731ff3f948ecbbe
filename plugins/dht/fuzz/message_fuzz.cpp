// Fuzzes the kad-dht message decoder. Invariants: a decoded message re-encodes to bytes that decode to
// the same message and encode identically again (the encoding is canonical); a rejection always says
// why; and limits are monotonic - what passes tight limits passes the default ones, and what the
// default limits refuse the tight ones refuse too.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "kad/message.hpp"

using namespace chorus::dht;

namespace {

[[noreturn]] void violated(const char *what) {
  std::fprintf(stderr, "dht_message_fuzz: invariant violated: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  BytesView in(data, size);
  Limits defaults;
  Limits tight;
  tight.max_message_bytes = 4096;
  tight.max_value_bytes = 64;
  tight.max_key_bytes = 16;
  tight.max_peers = 3;
  tight.max_addrs_per_peer = 2;
  tight.max_addr_bytes = 8;

  std::string why;
  std::optional<Message> m = decode_message(in, defaults, &why);
  if (!m) {
    if (why.empty()) violated("rejection without a reason");
    if (decode_message(in, tight, &why)) violated("accepted under tight limits, refused under default ones");
    return 0;
  }
  Bytes wire = encode_message(*m);
  std::optional<Message> again = decode_message(wire, defaults, &why);
  if (!again) violated("re-encoded message does not decode");
  if (!(*again == *m)) violated("round trip changed the message");
  if (encode_message(*again) != wire) violated("encoding is not canonical");
  if (wire.size() > in.size()) violated("re-encoding grew the message");  // only drops and shortens

  Bytes frame = encode_frame(*m);
  if (frame.size() < wire.size() || !std::equal(wire.begin(), wire.end(), frame.end() - wire.size()))
    violated("frame does not end with the body");

  if (m->closer_peers.size() > defaults.max_peers || m->provider_peers.size() > defaults.max_peers)
    violated("peer limit not enforced");
  if (m->record && m->record->value.size() > defaults.max_value_bytes) violated("value limit not enforced");

  if (std::optional<Message> t = decode_message(in, tight, &why)) {
    if (!(*t == *m)) violated("tight limits decoded something else");
  }
  return 0;
}

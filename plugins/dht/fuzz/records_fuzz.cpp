// Fuzzes record validation and selection. Input: a mode byte (0: the key as is, 1: "/pk/" + key,
// 2: "/chorus/" + key, so that every validator is reached), a key length byte, the key, the value.
// Invariants: validation never crashes and always explains a refusal; a valid value is selected over
// itself; a decodable /chorus/ record re-encodes to exactly its input (the encoding is canonical).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "kad/records.hpp"

using namespace chorus::dht;

namespace {

[[noreturn]] void violated(const char *what) {
  std::fprintf(stderr, "dht_records_fuzz: invariant violated: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  uint8_t mode = data[0] % 3;
  BytesView rest(data + 2, size - 2);
  size_t key_len = std::min<size_t>(data[1], rest.size());
  BytesView raw_key = rest.first(key_len);
  BytesView value = rest.subspan(key_len);

  std::string prefix = mode == 1 ? "/pk/" : mode == 2 ? "/chorus/" : "";
  Bytes key(prefix.begin(), prefix.end());
  key.insert(key.end(), raw_key.begin(), raw_key.end());

  std::string why;
  if (validate_record(key, value, &why)) {
    if (key_namespace(key) == Namespace::kUnknown) violated("a key of no namespace validated");
    std::vector<Bytes> values = {Bytes(value.begin(), value.end()), Bytes(value.begin(), value.end())};
    if (select_record(key, values) >= values.size()) violated("selection out of range");
  } else if (why.empty()) {
    violated("refusal without a reason");
  }

  if (std::optional<ChorusRecord> r = decode_chorus_record(value, &why)) {
    Bytes again = encode_chorus_record(*r);
    if (!std::equal(again.begin(), again.end(), value.begin(), value.end())) violated("chorus record not canonical");
    std::optional<ChorusRecord> back = decode_chorus_record(again, &why);
    if (!back || !(*back == *r)) violated("chorus record round trip");
    // Signing bytes bind the key: two different keys never share them.
    Bytes other = key;
    other.push_back('x');
    if (chorus_record_signing_bytes(key, *r) == chorus_record_signing_bytes(other, *r))
      violated("signing bytes ignore the key");
  }
  return 0;
}

// Record validation and selection by key namespace (docs/protocols.md, DHT records). A key is
// `/<namespace>/<rest>`; only these namespaces are accepted, every other key is refused:
//
//   /pk/<binary peer id>   value = the PublicKey protobuf whose peer id is <binary peer id>.
//                          Any valid value is as good as another (they are all the same key).
//   /chorus/<rest>         value = a ChorusRecord (below), signed by its author's Ed25519 identity.
//                          Best = highest seq; equal seq: the larger signed payload bytes (then the
//                          larger value bytes), so every node picks the same one.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "kad/key.hpp"

namespace chorus::dht {

// The value of a /chorus/ record, a protobuf:
//   1 author    bytes   the author's binary peer id (Ed25519 ids only: the key is inlined)
//   2 seq       uint64  the author's version of this record; higher replaces lower
//   3 payload   bytes   what the application stored
//   4 signature bytes   Ed25519 over chorus_record_signing_bytes(key, record)
struct ChorusRecord {
  Bytes author;
  uint64_t seq = 0;
  Bytes payload;
  Bytes signature;
  bool operator==(const ChorusRecord &) const = default;
};

// "chorus-dht-record:" || uvarint(key length) || key || the protobuf of fields 1-3 in order.
Bytes chorus_record_signing_bytes(BytesView key, const ChorusRecord &r);
Bytes encode_chorus_record(const ChorusRecord &r);
std::optional<ChorusRecord> decode_chorus_record(BytesView value, std::string *why);

// Builds a signed record; sign(data) returns the 64-byte Ed25519 signature of data with the identity
// key whose peer id is `author` (the p2p host's sign).
using SignFn = std::function<bool(BytesView data, uint8_t sig_out[64])>;
std::optional<Bytes> make_chorus_record(BytesView key, const PeerId &author, uint64_t seq, BytesView payload,
                                        const SignFn &sign, std::string *why);

enum class Namespace { kUnknown, kPublicKey, kChorus };
// The namespace a key belongs to; kUnknown for keys without a known `/<ns>/` prefix or with an empty rest.
Namespace key_namespace(BytesView key);

// Validates value for key. false with *why ("unknown namespace", "bad signature", ...) when invalid.
// Values larger than max_value_bytes are refused; the first form uses Limits' default (1 MiB).
bool validate_record(BytesView key, BytesView value, std::string *why);
bool validate_record(BytesView key, BytesView value, size_t max_value_bytes, std::string *why);

// Index of the best of several values for key, every one of which passed validate_record. values
// must not be empty.
size_t select_record(BytesView key, const std::vector<Bytes> &values);

}  // namespace chorus::dht

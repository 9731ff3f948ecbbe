#include "kad/records.hpp"

#include <sodium.h>

#include <algorithm>
#include <string_view>

#include "kad/message.hpp"
#include "wire/protobuf.hpp"
#include "wire/varint.hpp"

namespace chorus::dht {
namespace {

using chorus::p2p::ProtoReader;
using chorus::p2p::ProtoWriter;

constexpr std::string_view kPublicKeyPrefix = "/pk/";
constexpr std::string_view kChorusPrefix = "/chorus/";
constexpr std::string_view kSigningContext = "chorus-dht-record:";
constexpr size_t kSignatureBytes = 64;

enum : uint32_t { kFieldAuthor = 1, kFieldSeq = 2, kFieldPayload = 3, kFieldSignature = 4 };

bool fail(std::string *why, std::string msg) {
  if (why != nullptr) *why = std::move(msg);
  return false;
}

bool has_prefix(BytesView key, std::string_view prefix) {
  return key.size() > prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), reinterpret_cast<const char *>(key.data()));
}

// Fields 1-3, always all three (seq 0 and an empty payload included), so that the signed bytes and
// the stored bytes have exactly one form.
void write_signed_fields(ProtoWriter &w, const ChorusRecord &r) {
  w.bytes(kFieldAuthor, r.author);
  w.varint(kFieldSeq, r.seq);
  w.bytes(kFieldPayload, r.payload);
}

bool validate_public_key(BytesView key, BytesView value, std::string *why) {
  BytesView id = key.subspan(kPublicKeyPrefix.size());
  uint32_t key_type = 0;
  Bytes data;
  std::string err;
  if (!chorus::p2p::decode_public_key(value, key_type, data, &err)) return fail(why, "/pk/ value: " + err);
  PeerId derived = PeerId::from_public_key(value);
  if (!std::equal(id.begin(), id.end(), derived.bytes().begin(), derived.bytes().end()))
    return fail(why, "/pk/ value: public key does not match the peer id in the key");
  return true;
}

bool validate_chorus(BytesView key, BytesView value, std::string *why) {
  std::string err;
  std::optional<ChorusRecord> rec = decode_chorus_record(value, &err);
  if (!rec) return fail(why, err);
  std::optional<PeerId> author = PeerId::from_bytes(rec->author, &err);
  if (!author) return fail(why, "chorus record: author: " + err);
  std::optional<std::array<uint8_t, 32>> pk = author->ed25519_key();
  if (!pk) return fail(why, "chorus record: author is not an Ed25519 peer id");
  Bytes signed_bytes = chorus_record_signing_bytes(key, *rec);
  if (crypto_sign_verify_detached(rec->signature.data(), signed_bytes.data(), signed_bytes.size(), pk->data()) != 0)
    return fail(why, "bad signature");
  return true;
}

}  // namespace

Bytes chorus_record_signing_bytes(BytesView key, const ChorusRecord &r) {
  Bytes out;
  out.reserve(kSigningContext.size() + chorus::p2p::kMaxUvarintLen + key.size() + r.author.size() +
              r.payload.size() + 3 * chorus::p2p::kMaxUvarintLen + 3);
  chorus::p2p::append(out, chorus::p2p::as_bytes(kSigningContext));
  chorus::p2p::append_uvarint(out, key.size());
  out.insert(out.end(), key.begin(), key.end());
  ProtoWriter w(out);
  write_signed_fields(w, r);
  return out;
}

Bytes encode_chorus_record(const ChorusRecord &r) {
  Bytes out;
  ProtoWriter w(out);
  write_signed_fields(w, r);
  w.bytes(kFieldSignature, r.signature);
  return out;
}

std::optional<ChorusRecord> decode_chorus_record(BytesView value, std::string *why) {
  // Strict: the four fields once each, in order, with their wire types, nothing else. Anything looser
  // would let one signed record be stored under several byte strings.
  ChorusRecord rec;
  ProtoReader r(value);
  uint32_t want = kFieldAuthor;
  while (r.next()) {
    if (r.field() != want || want > kFieldSignature) {
      fail(why, "chorus record: unexpected field " + std::to_string(r.field()) +
                    " (expected author=1, seq=2, payload=3, signature=4 in order, once each)");
      return std::nullopt;
    }
    uint32_t wire = want == kFieldSeq ? chorus::p2p::kWireVarint : chorus::p2p::kWireBytes;
    if (r.wire_type() != wire) {
      fail(why, "chorus record: field " + std::to_string(want) + " has the wrong wire type");
      return std::nullopt;
    }
    switch (want) {
      case kFieldAuthor:
        rec.author.assign(r.bytes().begin(), r.bytes().end());
        break;
      case kFieldSeq:
        rec.seq = r.varint();
        break;
      case kFieldPayload:
        rec.payload.assign(r.bytes().begin(), r.bytes().end());
        break;
      case kFieldSignature:
        rec.signature.assign(r.bytes().begin(), r.bytes().end());
        break;
    }
    ++want;
  }
  if (!r.ok()) {
    fail(why, std::string("chorus record: ") + r.error());
    return std::nullopt;
  }
  if (want <= kFieldSignature) {
    fail(why, "chorus record: missing field " + std::to_string(want));
    return std::nullopt;
  }
  if (rec.author.empty()) {
    fail(why, "chorus record: empty author");
    return std::nullopt;
  }
  if (rec.signature.size() != kSignatureBytes) {
    fail(why, "chorus record: signature is " + std::to_string(rec.signature.size()) + " bytes, not 64");
    return std::nullopt;
  }
  // Padded varints and the like: refuse every encoding but the one we write.
  Bytes canonical = encode_chorus_record(rec);
  if (!std::equal(canonical.begin(), canonical.end(), value.begin(), value.end())) {
    fail(why, "chorus record: non-canonical encoding");
    return std::nullopt;
  }
  return rec;
}

std::optional<Bytes> make_chorus_record(BytesView key, const PeerId &author, uint64_t seq, BytesView payload,
                                        const SignFn &sign, std::string *why) {
  if (key_namespace(key) != Namespace::kChorus) {
    fail(why, "make chorus record: key is not in the /chorus/ namespace");
    return std::nullopt;
  }
  if (!author.ed25519_key()) {
    fail(why, "make chorus record: author is not an Ed25519 peer id");
    return std::nullopt;
  }
  ChorusRecord rec;
  rec.author = author.bytes();
  rec.seq = seq;
  rec.payload.assign(payload.begin(), payload.end());
  rec.signature.assign(kSignatureBytes, 0);
  Bytes signed_bytes = chorus_record_signing_bytes(key, rec);
  if (!sign || !sign(signed_bytes, rec.signature.data())) {
    fail(why, "make chorus record: signing failed");
    return std::nullopt;
  }
  return encode_chorus_record(rec);
}

Namespace key_namespace(BytesView key) {
  if (has_prefix(key, kPublicKeyPrefix)) return Namespace::kPublicKey;
  if (has_prefix(key, kChorusPrefix)) return Namespace::kChorus;
  return Namespace::kUnknown;
}

bool validate_record(BytesView key, BytesView value, std::string *why) {
  return validate_record(key, value, Limits{}.max_value_bytes, why);
}

bool validate_record(BytesView key, BytesView value, size_t max_value_bytes, std::string *why) {
  Namespace ns = key_namespace(key);
  if (ns == Namespace::kUnknown) return fail(why, "unknown namespace");
  if (value.size() > max_value_bytes)
    return fail(why, "value: " + std::to_string(value.size()) + " bytes exceeds max_value_bytes (" +
                         std::to_string(max_value_bytes) + ")");
  return ns == Namespace::kPublicKey ? validate_public_key(key, value, why) : validate_chorus(key, value, why);
}

size_t select_record(BytesView key, const std::vector<Bytes> &values) {
  // /pk/ values for one key are all the same key, so the first is as good as any.
  if (values.empty() || key_namespace(key) != Namespace::kChorus) return 0;
  size_t best = 0;
  std::optional<ChorusRecord> best_rec;
  for (size_t i = 0; i < values.size(); ++i) {
    std::optional<ChorusRecord> rec = decode_chorus_record(values[i], nullptr);
    if (!rec) continue;  // callers pass validated values; an undecodable one never wins
    bool better = false;
    if (!best_rec) {
      better = true;
    } else if (rec->seq != best_rec->seq) {
      better = rec->seq > best_rec->seq;
    } else if (rec->payload != best_rec->payload) {
      better = rec->payload > best_rec->payload;  // lexicographic, unsigned bytes
    } else {
      // Same seq and payload from different authors or signatures: the larger value bytes win, so
      // the choice never depends on the order values arrived in.
      better = values[i] > values[best];
    }
    if (better) {
      best = i;
      best_rec = std::move(rec);
    }
  }
  return best;
}

}  // namespace chorus::dht

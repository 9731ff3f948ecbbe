#include "wire/peer_record.hpp"

#include <string_view>

#include "wire/protobuf.hpp"
#include "wire/varint.hpp"

namespace chorus::p2p {
namespace {

constexpr std::string_view kDomain = "libp2p-peer-record";
constexpr uint8_t kPayloadType[] = {0x03, 0x01};  // multicodec libp2p-peer-record (0x0301), as bytes

// Envelope fields (RFC 0002).
enum : uint32_t { kEnvPublicKey = 1, kEnvPayloadType = 2, kEnvPayload = 3, kEnvSignature = 5 };
// PeerRecord fields (RFC 0003).
enum : uint32_t { kRecPeerId = 1, kRecSeq = 2, kRecAddresses = 3, kAddrMultiaddr = 1 };

// What the signature covers: each of domain, payload type and payload prefixed by its uvarint length.
Bytes signed_bytes(BytesView payload_type, BytesView payload) {
  Bytes out;
  out.reserve(kDomain.size() + payload_type.size() + payload.size() + 12);
  append_uvarint(out, kDomain.size());
  out.insert(out.end(), kDomain.begin(), kDomain.end());
  append_uvarint(out, payload_type.size());
  out.insert(out.end(), payload_type.begin(), payload_type.end());
  append_uvarint(out, payload.size());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

bool fail(std::string *why, const char *text) {
  if (why != nullptr) *why = text;
  return false;
}

bool decode_record(BytesView payload, PeerRecord &rec, std::string *why) {
  ProtoReader r(payload);
  bool have_peer = false;
  while (r.next()) {
    if (r.field() == kRecPeerId && r.wire_type() == kWireBytes) {
      auto id = PeerId::from_bytes(r.bytes(), why);
      if (!id) return false;
      rec.peer = *id;
      have_peer = true;
    } else if (r.field() == kRecSeq && r.wire_type() == kWireVarint) {
      rec.seq = r.varint();
    } else if (r.field() == kRecAddresses && r.wire_type() == kWireBytes) {
      ProtoReader a(r.bytes());
      while (a.next())
        if (a.field() == kAddrMultiaddr && a.wire_type() == kWireBytes)
          if (auto ma = Multiaddr::from_bytes(a.bytes(), nullptr)) rec.addrs.push_back(std::move(*ma));
      if (!a.ok()) return fail(why, "peer record: malformed address entry");
    }
  }
  if (!r.ok()) return fail(why, "peer record: malformed protobuf");
  if (!have_peer) return fail(why, "peer record: no peer id");
  return true;
}

}  // namespace

std::optional<PeerRecord> open_peer_record(BytesView envelope, std::string *why) {
  if (envelope.size() > kMaxPeerRecordEnvelope) return fail(why, "envelope too large"), std::nullopt;
  ProtoReader r(envelope);
  BytesView public_key, payload_type, payload, signature;
  bool have_key = false, have_type = false, have_payload = false, have_sig = false;
  while (r.next()) {
    if (r.wire_type() != kWireBytes) continue;
    switch (r.field()) {
      case kEnvPublicKey: public_key = r.bytes(); have_key = true; break;
      case kEnvPayloadType: payload_type = r.bytes(); have_type = true; break;
      case kEnvPayload: payload = r.bytes(); have_payload = true; break;
      case kEnvSignature: signature = r.bytes(); have_sig = true; break;
      default: break;
    }
  }
  if (!r.ok()) return fail(why, "envelope: malformed protobuf"), std::nullopt;
  if (!have_key || !have_type || !have_payload || !have_sig) return fail(why, "envelope: a field is missing"), std::nullopt;
  if (payload_type.size() != sizeof kPayloadType || !std::equal(payload_type.begin(), payload_type.end(), kPayloadType))
    return fail(why, "envelope: not a peer record"), std::nullopt;
  uint32_t key_type = 0;
  Bytes key;
  std::string key_why;
  if (!decode_public_key(public_key, key_type, key, &key_why)) return fail(why, "envelope: bad public key"), std::nullopt;
  if (key_type != 1 || key.size() != 32) return fail(why, "envelope: the signer is not an Ed25519 key"), std::nullopt;
  if (signature.size() != 64) return fail(why, "envelope: bad signature length"), std::nullopt;
  if (!Identity::verify(key.data(), signed_bytes(payload_type, payload), signature.data()))
    return fail(why, "envelope: bad signature"), std::nullopt;
  PeerRecord rec;
  if (!decode_record(payload, rec, why)) return std::nullopt;
  if (rec.peer != PeerId::from_public_key(public_key))
    return fail(why, "peer record: the record's peer id is not the signer's"), std::nullopt;
  return rec;
}

Bytes seal_peer_record(const Identity &id, uint64_t seq, const std::vector<Multiaddr> &addrs) {
  Bytes payload;
  {
    ProtoWriter w(payload);
    w.bytes(kRecPeerId, id.peer_id().bytes());
    w.varint(kRecSeq, seq);
    for (const auto &ma : addrs) {
      Bytes entry;
      ProtoWriter(entry).bytes(kAddrMultiaddr, ma.bytes());
      w.bytes(kRecAddresses, entry);
    }
  }
  const BytesView type(kPayloadType, sizeof kPayloadType);
  const auto sig = id.sign(signed_bytes(type, payload));
  Bytes out;
  ProtoWriter w(out);
  w.bytes(kEnvPublicKey, id.public_key_protobuf());
  w.bytes(kEnvPayloadType, type);
  w.bytes(kEnvPayload, payload);
  w.bytes(kEnvSignature, BytesView(sig.data(), sig.size()));
  return out;
}

}  // namespace chorus::p2p

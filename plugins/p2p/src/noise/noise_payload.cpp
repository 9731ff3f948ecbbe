#include "noise/noise_payload.hpp"

#include "wire/protobuf.hpp"

namespace chorus::p2p::noise {

namespace {

enum PayloadField : uint32_t { kIdentityKey = 1, kIdentitySig = 2, kExtensions = 4 };
enum ExtensionsField : uint32_t { kWebtransportCerthashes = 1, kStreamMuxers = 2 };

bool decode_extensions(BytesView data, HandshakePayload &payload, std::string &why) {
  ProtoReader r(data);
  while (r.next()) {
    if (r.field() != kStreamMuxers) continue;  // webtransport_certhashes and unknown fields: not ours
    if (r.wire_type() != kWireBytes) {
      why = "noise extensions: stream_muxers has the wrong wire type";
      return false;
    }
    if (payload.stream_muxers.size() >= kMaxStreamMuxers) {
      why = "noise extensions: more than " + std::to_string(kMaxStreamMuxers) + " stream muxers";
      return false;
    }
    payload.stream_muxers.emplace_back(r.string());
  }
  if (!r.ok()) {
    why = std::string("noise extensions: ") + r.error();
    return false;
  }
  return true;
}

}  // namespace

void encode_payload(const HandshakePayload &payload, Bytes &out) {
  ProtoWriter w(out);
  w.bytes(kIdentityKey, payload.identity_key);
  w.bytes(kIdentitySig, payload.identity_sig);
  if (!payload.stream_muxers.empty()) {
    Bytes extensions;
    ProtoWriter e(extensions);
    for (const std::string &m : payload.stream_muxers) e.string(kStreamMuxers, m);
    w.bytes(kExtensions, extensions);
  }
}

bool decode_payload(BytesView data, HandshakePayload &payload, std::string &why) {
  payload = HandshakePayload{};
  ProtoReader r(data);
  while (r.next()) {
    uint32_t field = r.field();
    if (field != kIdentityKey && field != kIdentitySig && field != kExtensions) continue;
    if (r.wire_type() != kWireBytes) {
      why = "noise payload: field " + std::to_string(field) + " has the wrong wire type";
      return false;
    }
    switch (field) {
      case kIdentityKey:
        payload.identity_key.assign(r.bytes().begin(), r.bytes().end());
        break;
      case kIdentitySig:
        payload.identity_sig.assign(r.bytes().begin(), r.bytes().end());
        break;
      case kExtensions:
        // Repeated occurrences of an embedded message merge; appending the lists does exactly that.
        if (!decode_extensions(r.bytes(), payload, why)) return false;
        break;
    }
  }
  if (!r.ok()) {
    why = std::string("noise payload: ") + r.error();
    return false;
  }
  return true;
}

Bytes static_key_signature_message(BytesView static_public_key) {
  Bytes msg;
  msg.reserve(kStaticKeySignaturePrefix.size() + static_public_key.size());
  append(msg, as_bytes(kStaticKeySignaturePrefix));
  append(msg, static_public_key);
  return msg;
}

}  // namespace chorus::p2p::noise

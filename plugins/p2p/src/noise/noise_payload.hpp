// NoiseHandshakePayload, the libp2p message carried encrypted in Noise XX messages 2 and 3:
//
//   message NoiseExtensions { repeated bytes webtransport_certhashes = 1; repeated string stream_muxers = 2; }
//   message NoiseHandshakePayload {
//     optional bytes identity_key = 1;          // PublicKey protobuf
//     optional bytes identity_sig = 2;          // sign(identity, "noise-libp2p-static-key:" || static X25519 pub)
//     optional NoiseExtensions extensions = 4;
//   }
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "wire/bytes.hpp"

namespace chorus::p2p::noise {

inline constexpr std::string_view kStaticKeySignaturePrefix = "noise-libp2p-static-key:";
// More than any real peer sends; bounds the work a hostile payload can cause.
inline constexpr size_t kMaxStreamMuxers = 64;

struct HandshakePayload {
  Bytes identity_key;  // serialized PublicKey protobuf
  Bytes identity_sig;
  std::vector<std::string> stream_muxers;  // empty: no extensions sent / none listed
};

// Appends the protobuf encoding. Extensions are written only when stream_muxers is non-empty.
void encode_payload(const HandshakePayload &payload, Bytes &out);

// Parses a payload; unknown fields are skipped. On failure returns false and sets `why`.
bool decode_payload(BytesView data, HandshakePayload &payload, std::string &why);

// The message an identity signs: prefix || static X25519 public key.
Bytes static_key_signature_message(BytesView static_public_key);

}  // namespace chorus::p2p::noise

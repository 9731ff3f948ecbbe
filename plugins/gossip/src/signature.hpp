// Message signing, the signature policies and message ids (docs/protocols.md, PubSub messages).
//
// StrictSign: a message carries `from` (the author's binary peer id), an 8-byte `seqno` and an Ed25519
// signature over signing_bytes(m); `key` (a PublicKey protobuf) is only needed when the key is not
// inlined in `from`, and when present it must belong to `from`. StrictNoSign: none of the four fields
// may be present. Only Ed25519 keys are verifiable here (every libp2p implementation defaults to them).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "rpc.hpp"
#include "score.hpp"

namespace chorus::gossip {

enum class SignaturePolicy { kStrictSign, kStrictNoSign };

// How a signed message's id is formed (all peers of a topic must agree):
//   kFromSeqno  from || seqno (go-libp2p-pubsub's default)
//   kKeySeqno   PublicKey protobuf || seqno (js-libp2p gossipsub's default; for Ed25519 ids the
//               identity multihash without its 2-byte prefix)
// StrictNoSign messages always use sha256(data).
enum class MessageIdFn { kFromSeqno, kKeySeqno };

// Produces a 64-byte Ed25519 signature over the bytes; false when the key is unavailable.
using SignFn = std::function<bool(BytesView data, uint8_t signature[64])>;

// Fills m.signature with a signature over signing_bytes(m); from, seqno and topic must be set.
bool sign_message(Message &m, const SignFn &sign);

// Checks a received message against the policy. Returns nothing when it passes; otherwise the reason
// (kMissingSignature, kInvalidSignature) with *why naming the defect. `verify_signature` false does the
// structural checks only (fields present, seqno length, key matching from): the cheap part, run before
// the seen check so that a copy of a known message costs no signature verification.
std::optional<RejectReason> check_message(const Message &m, SignaturePolicy policy, bool verify_signature,
                                          std::string *why);

// The message id under the policy and id function.
Bytes message_id(const Message &m, SignaturePolicy policy, MessageIdFn fn);

// SHA-256 of the bytes (32 bytes).
Bytes sha256(BytesView data);

// The big-endian 8-byte seqno of a counter value, and back (nothing unless exactly 8 bytes).
Bytes seqno_bytes(uint64_t counter);
std::optional<uint64_t> seqno_value(const std::optional<Bytes> &seqno);

}  // namespace chorus::gossip

// Message signing and verification with libsodium; message ids.
#include "signature.hpp"

#include <sodium.h>

#include <array>
#include <cstdlib>

#include "wire/peer_id.hpp"

namespace chorus::gossip {

namespace {

using chorus::p2p::PeerId;

void ensure_sodium() {
  // sodium_init is idempotent and thread-safe; it fails only without any entropy source.
  static const bool ready = [] {
    if (sodium_init() < 0) std::abort();
    return true;
  }();
  (void)ready;
}

// The Ed25519 key that must have signed m: from `key` when present (it must hash to `from`), else the
// key inlined in the identity peer id.
std::optional<std::array<uint8_t, 32>> signer_key(const Message &m, std::string *why) {
  auto from = PeerId::from_bytes(*m.from, nullptr);
  if (!from) {
    if (why) *why = "from is not a peer id";
    return std::nullopt;
  }
  if (m.key) {
    uint32_t type = 0;
    Bytes data;
    if (!chorus::p2p::decode_public_key(*m.key, type, data, nullptr)) {
      if (why) *why = "key is not a PublicKey";
      return std::nullopt;
    }
    if (PeerId::from_public_key(*m.key) != *from) {
      if (why) *why = "key does not match from";
      return std::nullopt;
    }
    if (type != chorus::p2p::kKeyEd25519 || data.size() != 32) {
      if (why) *why = "key type is not verifiable (only Ed25519)";
      return std::nullopt;
    }
    std::array<uint8_t, 32> pk{};
    std::copy(data.begin(), data.end(), pk.begin());
    return pk;
  }
  auto pk = from->ed25519_key();
  if (!pk && why) *why = "from has no inlined Ed25519 key and no key field is present";
  return pk;
}

}  // namespace

bool sign_message(Message &m, const SignFn &sign) {
  Bytes to_sign = signing_bytes(m);
  std::array<uint8_t, 64> sig{};
  if (!sign(to_sign, sig.data())) return false;
  m.signature.emplace(sig.begin(), sig.end());
  return true;
}

std::optional<RejectReason> check_message(const Message &m, SignaturePolicy policy, bool verify_signature,
                                          std::string *why) {
  if (policy == SignaturePolicy::kStrictNoSign) {
    if (m.from || m.seqno || m.signature || m.key) {
      if (why) *why = "StrictNoSign message carries from, seqno, signature or key";
      return RejectReason::kInvalidSignature;
    }
    return std::nullopt;
  }
  if (!m.signature) {
    if (why) *why = "missing signature";
    return RejectReason::kMissingSignature;
  }
  if (!m.from) {
    if (why) *why = "missing from";
    return RejectReason::kMissingSignature;
  }
  if (!m.seqno || m.seqno->size() != 8) {
    if (why) *why = m.seqno ? "seqno is not 8 bytes" : "missing seqno";
    return RejectReason::kInvalidSignature;
  }
  if (m.signature->size() != crypto_sign_BYTES) {
    if (why) *why = "signature is not 64 bytes";
    return RejectReason::kInvalidSignature;
  }
  auto pk = signer_key(m, why);
  if (!pk) return RejectReason::kInvalidSignature;
  if (!verify_signature) return std::nullopt;
  ensure_sodium();
  Bytes signed_bytes = signing_bytes(m);
  if (crypto_sign_verify_detached(m.signature->data(), signed_bytes.data(), signed_bytes.size(), pk->data()) != 0) {
    if (why) *why = "invalid signature";
    return RejectReason::kInvalidSignature;
  }
  return std::nullopt;
}

Bytes message_id(const Message &m, SignaturePolicy policy, MessageIdFn fn) {
  if (policy == SignaturePolicy::kStrictNoSign) return sha256(m.data ? BytesView(*m.data) : BytesView());
  Bytes id;
  if (fn == MessageIdFn::kKeySeqno) {
    if (m.key) {
      id = *m.key;
    } else if (m.from && m.from->size() > 2 && (*m.from)[0] == 0x00) {
      // identity multihash: 00 <len> <PublicKey protobuf>
      id.assign(m.from->begin() + 2, m.from->end());
    } else if (m.from) {
      id = *m.from;
    }
  } else if (m.from) {
    id = *m.from;
  }
  if (m.seqno) id.insert(id.end(), m.seqno->begin(), m.seqno->end());
  return id;
}

Bytes sha256(BytesView data) {
  Bytes out(crypto_hash_sha256_BYTES);
  crypto_hash_sha256(out.data(), data.data(), data.size());
  return out;
}

Bytes seqno_bytes(uint64_t counter) {
  Bytes out(8);
  for (int i = 7; i >= 0; --i, counter >>= 8) out[i] = static_cast<uint8_t>(counter);
  return out;
}

std::optional<uint64_t> seqno_value(const std::optional<Bytes> &seqno) {
  if (!seqno || seqno->size() != 8) return std::nullopt;
  uint64_t v = 0;
  for (uint8_t b : *seqno) v = v << 8 | b;
  return v;
}

}  // namespace chorus::gossip

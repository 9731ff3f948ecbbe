#include "noise/noise_handshake.hpp"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "wire/identity.hpp"
#include "noise/noise_payload.hpp"

namespace chorus::p2p {

namespace {

constexpr size_t kDhLen = noise::kKeyLen;                              // 32
constexpr size_t kEncryptedStaticLen = noise::kKeyLen + noise::kTagLen;  // 48
constexpr size_t kMsg1Min = kDhLen;
constexpr size_t kMsg2Min = kDhLen + kEncryptedStaticLen + noise::kTagLen;  // 96
constexpr size_t kMsg3Min = kEncryptedStaticLen + noise::kTagLen;           // 64

const char *key_type_name(uint32_t type) {
  switch (type) {
    case kKeyRsa: return "RSA";
    case kKeyEd25519: return "Ed25519";
    case kKeySecp256k1: return "Secp256k1";
    case kKeyEcdsa: return "ECDSA";
    default: return "unknown";
  }
}

void copy_key(BytesView from, noise::Key &to) { std::memcpy(to.data(), from.data(), to.size()); }

}  // namespace

NoiseHandshake::NoiseHandshake(NoiseConfig config) { start(config, nullptr, nullptr); }

NoiseHandshake::NoiseHandshake(NoiseConfig config, const noise::Key *static_private,
                               const noise::Key *ephemeral_private) {
  start(config, static_private, ephemeral_private);
}

NoiseHandshake::~NoiseHandshake() { wipe_secrets(); }

void NoiseHandshake::start(NoiseConfig &config, const noise::Key *static_private,
                           const noise::Key *ephemeral_private) {
  initiator_ = config.initiator;
  expected_remote_ = std::move(config.expected_remote);
  local_stream_muxers_ = std::move(config.stream_muxers);
  if (config.identity == nullptr) {
    fail("noise: no local identity configured");
    return;
  }

  if (static_private != nullptr) {
    static_private_ = *static_private;
    crypto_scalarmult_curve25519_base(static_public_.data(), static_private_.data());
  } else {
    noise::generate_keypair(static_private_, static_public_);
  }
  if (ephemeral_private != nullptr) {
    ephemeral_private_ = *ephemeral_private;
    crypto_scalarmult_curve25519_base(ephemeral_public_.data(), ephemeral_private_.data());
  } else {
    noise::generate_keypair(ephemeral_private_, ephemeral_public_);
  }

  // The name is exactly HASHLEN bytes, so h = name and ck = h; then MixHash(prologue) with an empty
  // prologue, which still changes h.
  symmetric_.initialize(kNoiseProtocolName);
  symmetric_.mix_hash({});

  // Our payload does not depend on anything the peer sends, so build and sign it now: this also lets an
  // oversized configuration fail before anything is written.
  noise::HandshakePayload payload;
  payload.identity_key = config.identity->public_key_protobuf();
  auto sig = config.identity->sign(noise::static_key_signature_message(static_public_));
  payload.identity_sig.assign(sig.begin(), sig.end());
  payload.stream_muxers = local_stream_muxers_;
  noise::encode_payload(payload, local_payload_);
  size_t message_len = (initiator_ ? kMsg3Min : kMsg2Min) + local_payload_.size();
  if (message_len > noise::kMaxMessage) {
    fail("handshake message too large: our payload would make a " + std::to_string(message_len) +
         "-byte noise message (limit " + std::to_string(noise::kMaxMessage) + ")");
    return;
  }

  output_.reserve(2 + kMsg2Min + local_payload_.size());
  if (initiator_) {
    write_msg1();
    step_ = Step::read_msg2;
  } else {
    step_ = Step::read_msg1;
  }
}

NoiseHandshake::State NoiseHandshake::feed(BytesView in, size_t &consumed) {
  consumed = 0;
  while (state_ == State::running && in.size() - consumed >= 2) {
    size_t len = static_cast<size_t>(in[consumed]) << 8 | in[consumed + 1];
    if (in.size() - consumed - 2 < len) break;  // partial frame: wait for the rest
    BytesView msg = in.subspan(consumed + 2, len);
    consumed += 2 + len;
    process(msg);
  }
  return state_;
}

void NoiseHandshake::take_output(Bytes &out) {
  if (output_.empty()) return;
  if (out.empty()) {
    out.swap(output_);
  } else {
    append(out, output_);
  }
  output_.clear();
}

NoiseTransport NoiseHandshake::split() {
  if (state_ != State::done || split_done_) return NoiseTransport();
  split_done_ = true;
  return NoiseTransport(std::move(send_), std::move(recv_));
}

bool NoiseHandshake::process(BytesView msg) {
  switch (step_) {
    case Step::read_msg1: return read_msg1(msg);
    case Step::read_msg2: return read_msg2(msg);
    case Step::read_msg3: return read_msg3(msg);
    case Step::finished: break;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Messages. Each follows the token list of its line in the XX pattern.

bool NoiseHandshake::write_msg1() {  // -> e
  size_t start = output_.size();
  output_.resize(start + 2);
  append(output_, ephemeral_public_);
  symmetric_.mix_hash(ephemeral_public_);
  symmetric_.encrypt_and_hash({}, output_);  // empty payload, no key yet: only hashed
  queue_frame(start);
  return true;
}

bool NoiseHandshake::read_msg1(BytesView msg) {  // -> e
  if (msg.size() < kMsg1Min)
    return fail("noise message 1 too short (" + std::to_string(msg.size()) + " bytes, at least 32 expected)");
  copy_key(msg.first(kDhLen), remote_ephemeral_);
  symmetric_.mix_hash(remote_ephemeral_);
  // The payload should be empty, but some implementations have sent one; it is unencrypted here and
  // carries nothing we use, so it is only hashed.
  scratch_.clear();
  symmetric_.decrypt_and_hash(msg.subspan(kDhLen), scratch_);
  scratch_.clear();
  return write_msg2();
}

bool NoiseHandshake::write_msg2() {  // <- e, ee, s, es + payload
  size_t start = output_.size();
  output_.resize(start + 2);
  append(output_, ephemeral_public_);
  symmetric_.mix_hash(ephemeral_public_);
  if (!mix_dh(ephemeral_private_, remote_ephemeral_, "ee")) return false;
  symmetric_.encrypt_and_hash(static_public_, output_);
  if (!mix_dh(static_private_, remote_ephemeral_, "es")) return false;
  symmetric_.encrypt_and_hash(local_payload_, output_);
  queue_frame(start);
  step_ = Step::read_msg3;
  return true;
}

bool NoiseHandshake::read_msg2(BytesView msg) {  // <- e, ee, s, es + payload
  if (msg.size() < kMsg2Min)
    return fail("noise message 2 too short (" + std::to_string(msg.size()) + " bytes, at least 96 expected)");
  copy_key(msg.first(kDhLen), remote_ephemeral_);
  symmetric_.mix_hash(remote_ephemeral_);
  if (!mix_dh(ephemeral_private_, remote_ephemeral_, "ee")) return false;
  scratch_.clear();
  if (!symmetric_.decrypt_and_hash(msg.subspan(kDhLen, kEncryptedStaticLen), scratch_))
    return fail("noise message 2: the responder's static key failed authentication");
  copy_key(scratch_, remote_static_);
  if (!mix_dh(ephemeral_private_, remote_static_, "es")) return false;
  scratch_.clear();
  if (!symmetric_.decrypt_and_hash(msg.subspan(kDhLen + kEncryptedStaticLen), scratch_))
    return fail("noise message 2: the payload failed authentication");
  if (!check_remote_payload(scratch_) || !select_stream_muxer()) return false;
  return write_msg3();
}

bool NoiseHandshake::write_msg3() {  // -> s, se + payload
  size_t start = output_.size();
  output_.resize(start + 2);
  symmetric_.encrypt_and_hash(static_public_, output_);
  if (!mix_dh(static_private_, remote_ephemeral_, "se")) return false;
  symmetric_.encrypt_and_hash(local_payload_, output_);
  queue_frame(start);
  finish();
  return true;
}

bool NoiseHandshake::read_msg3(BytesView msg) {  // -> s, se + payload
  if (msg.size() < kMsg3Min)
    return fail("noise message 3 too short (" + std::to_string(msg.size()) + " bytes, at least 64 expected)");
  scratch_.clear();
  if (!symmetric_.decrypt_and_hash(msg.first(kEncryptedStaticLen), scratch_))
    return fail("noise message 3: the initiator's static key failed authentication");
  copy_key(scratch_, remote_static_);
  if (!mix_dh(ephemeral_private_, remote_static_, "se")) return false;
  scratch_.clear();
  if (!symmetric_.decrypt_and_hash(msg.subspan(kEncryptedStaticLen), scratch_))
    return fail("noise message 3: the payload failed authentication");
  if (!check_remote_payload(scratch_) || !select_stream_muxer()) return false;
  finish();
  return true;
}

// ---------------------------------------------------------------------------------------------

bool NoiseHandshake::mix_dh(const noise::Key &private_key, const noise::Key &public_key, const char *what) {
  noise::Key shared;
  bool ok = noise::dh(private_key, public_key, shared);
  if (ok) symmetric_.mix_key(shared);
  sodium_memzero(shared.data(), shared.size());
  if (!ok) return fail(std::string("noise: the remote sent a low-order X25519 key (") + what + " is zero)");
  return true;
}

bool NoiseHandshake::check_remote_payload(BytesView plaintext) {
  noise::HandshakePayload payload;
  std::string why;
  if (!noise::decode_payload(plaintext, payload, why)) return fail(why);
  if (payload.identity_key.empty()) return fail("noise payload carries no identity key");
  uint32_t key_type = 0;
  Bytes key_data;
  if (!decode_public_key(payload.identity_key, key_type, key_data, &why))
    return fail("noise payload: bad identity key: " + why);
  if (key_type != kKeyEd25519)
    return fail(std::string("unsupported identity key type ") + key_type_name(key_type) +
                " (only Ed25519 identities can be verified)");
  if (key_data.size() != crypto_sign_PUBLICKEYBYTES) return fail("noise payload: bad Ed25519 key length");
  if (payload.identity_sig.size() != crypto_sign_BYTES)
    return fail("bad identity signature (" + std::to_string(payload.identity_sig.size()) +
                " bytes, 64 expected)");
  // The signature must cover the static key received in *this* handshake, which binds the libp2p identity
  // to the Noise session.
  Bytes signed_message = noise::static_key_signature_message(remote_static_);
  if (crypto_sign_verify_detached(payload.identity_sig.data(), signed_message.data(), signed_message.size(),
                                  key_data.data()) != 0)
    return fail("bad identity signature");
  PeerId remote = PeerId::from_ed25519(key_data.data());
  if (expected_remote_ && *expected_remote_ != remote)
    return fail("peer id mismatch: expected " + expected_remote_->to_string() + ", got " + remote.to_string(),
                Failure::peer_id_mismatch);
  remote_peer_ = std::move(remote);
  std::memcpy(remote_identity_key_.data(), key_data.data(), remote_identity_key_.size());
  remote_stream_muxers_ = std::move(payload.stream_muxers);
  return true;
}

bool NoiseHandshake::select_stream_muxer() {
  if (local_stream_muxers_.empty() || remote_stream_muxers_.empty()) return true;
  const auto &preferred = initiator_ ? local_stream_muxers_ : remote_stream_muxers_;
  const auto &other = initiator_ ? remote_stream_muxers_ : local_stream_muxers_;
  for (const std::string &m : preferred) {
    if (std::find(other.begin(), other.end(), m) != other.end()) {
      selected_stream_muxer_ = m;
      return true;
    }
  }
  return fail("no common stream muxer in the noise extensions");
}

void NoiseHandshake::queue_frame(size_t start) {
  // Sizes were bounded in start(): our messages never exceed kMaxMessage.
  size_t len = output_.size() - start - 2;
  output_[start] = static_cast<uint8_t>(len >> 8);
  output_[start + 1] = static_cast<uint8_t>(len);
}

void NoiseHandshake::finish() {
  noise::CipherState c1, c2;
  symmetric_.split(c1, c2);
  // c1 protects initiator -> responder traffic, c2 the other direction.
  if (initiator_) {
    send_ = std::move(c1);
    recv_ = std::move(c2);
  } else {
    send_ = std::move(c2);
    recv_ = std::move(c1);
  }
  state_ = State::done;
  step_ = Step::finished;
  wipe_secrets();
}

bool NoiseHandshake::fail(std::string why, Failure kind) {
  if (state_ == State::failed) return false;
  state_ = State::failed;
  failure_ = kind;
  step_ = Step::finished;
  error_ = std::move(why);
  output_.clear();  // a failed handshake sends nothing more
  wipe_secrets();
  symmetric_.clear();
  send_.clear();
  recv_.clear();
  return false;
}

void NoiseHandshake::wipe_secrets() {
  sodium_memzero(static_private_.data(), static_private_.size());
  sodium_memzero(ephemeral_private_.data(), ephemeral_private_.size());
  if (!scratch_.empty()) sodium_memzero(scratch_.data(), scratch_.size());
  if (!local_payload_.empty() && state_ != State::running) local_payload_.clear();
}

}  // namespace chorus::p2p

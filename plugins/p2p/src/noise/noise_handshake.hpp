// The libp2p Noise handshake (Noise_XX_25519_ChaChaPoly_SHA256, empty prologue), sans I/O.
//
//   -> e                      msg1: initiator's ephemeral key, empty payload
//   <- e, ee, s, es + payload msg2: responder's identity (and its stream muxers)
//   -> s, se + payload        msg3: initiator's identity (and its stream muxers)
//
// Every message travels as `u16 big-endian length || message`. Usage:
//
//   NoiseHandshake hs(config);           // an initiator queues msg1 here
//   loop: hs.take_output(to_socket);     // write whatever is queued
//         hs.feed(from_socket, used);    // then drop `used` bytes from your buffer
//   until hs.state() != running;
//   NoiseTransport t = hs.split();       // bytes left in your buffer belong to the transport
//
// feed() does not buffer: it consumes whole frames only and leaves a partial frame (and anything after
// the last handshake message) in the caller's buffer. A failed handshake queues nothing more; just close.
// The static X25519 key is generated per handshake. libsodium must be initialised (Identity does it).
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "wire/bytes.hpp"
#include "noise/noise_cipher.hpp"
#include "noise/noise_transport.hpp"
#include "wire/peer_id.hpp"

namespace chorus::p2p {

class Identity;

inline constexpr std::string_view kNoiseProtocolName = "Noise_XX_25519_ChaChaPoly_SHA256";

struct NoiseConfig {
  bool initiator = false;
  // Our libp2p identity; must be non-null. Only used inside the constructor (signing the static key).
  const Identity *identity = nullptr;
  // Sent in the payload's extensions, in preference order. Empty (the default) sends no extensions, so
  // the muxer is negotiated with multistream-select after the handshake.
  std::vector<std::string> stream_muxers;
  // Dialer: the id from the /p2p/ component of the dialed address. Checked whenever set.
  std::optional<PeerId> expected_remote;
};

class NoiseHandshake {
 public:
  explicit NoiseHandshake(NoiseConfig config);
  ~NoiseHandshake();
  NoiseHandshake(const NoiseHandshake &) = delete;
  NoiseHandshake &operator=(const NoiseHandshake &) = delete;

  enum class State { running, done, failed };
  // What kind of failure (valid once failed): the peer proved another identity than the one we
  // dialled, or anything else (malformed or unauthenticated messages, bad keys, no common muxer).
  enum class Failure { none, invalid, peer_id_mismatch };

  // Processes the whole handshake frames at the front of `in`; `consumed` = bytes used. Stops after the
  // last handshake message, so transport frames that arrive in the same read stay with the caller.
  State feed(BytesView in, size_t &consumed);
  // Appends the frames queued for the peer (if any) to `out` and forgets them.
  void take_output(Bytes &out);
  bool has_output() const { return !output_.empty(); }

  State state() const { return state_; }
  bool initiator() const { return initiator_; }
  // Why the handshake failed ("peer id mismatch: expected X, got Y", "bad identity signature", ...).
  const std::string &error() const { return error_; }
  Failure failure() const { return failure_; }

  // Valid once done (empty before).
  const PeerId &remote_peer() const { return remote_peer_; }
  const std::array<uint8_t, 32> &remote_identity_key() const { return remote_identity_key_; }
  // The muxers the remote listed in its extensions (empty when it sent none).
  const std::vector<std::string> &remote_stream_muxers() const { return remote_stream_muxers_; }
  // Early muxer negotiation (inlined-muxer-negotiation): the first muxer of the initiator's list that
  // the responder also listed, or nullopt when either side sent no list (negotiate with
  // multistream-select then). Both lists non-empty without overlap fails the handshake.
  const std::optional<std::string> &selected_stream_muxer() const { return selected_stream_muxer_; }

  // After done: the transport for this connection (once; later calls and calls before done return a
  // transport that refuses everything).
  NoiseTransport split();

 private:
  friend struct NoiseHandshakeTestAccess;
  // Tests inject fixed keys to reproduce a transcript; production code always uses random keys.
  NoiseHandshake(NoiseConfig config, const noise::Key *static_private, const noise::Key *ephemeral_private);

  enum class Step { read_msg1, read_msg2, read_msg3, finished };

  void start(NoiseConfig &config, const noise::Key *static_private, const noise::Key *ephemeral_private);
  bool process(BytesView msg);
  bool read_msg1(BytesView msg);
  bool read_msg2(BytesView msg);
  bool read_msg3(BytesView msg);
  bool write_msg1();
  bool write_msg2();
  bool write_msg3();
  bool mix_dh(const noise::Key &private_key, const noise::Key &public_key, const char *what);
  bool check_remote_payload(BytesView plaintext);
  bool select_stream_muxer();
  void queue_frame(size_t message_start);
  void finish();
  bool fail(std::string why, Failure kind = Failure::invalid);
  void wipe_secrets();

  bool initiator_ = false;
  State state_ = State::running;
  Step step_ = Step::finished;
  std::string error_;
  Failure failure_ = Failure::none;

  noise::SymmetricState symmetric_;
  noise::Key static_private_{}, static_public_{};
  noise::Key ephemeral_private_{}, ephemeral_public_{};
  noise::Key remote_static_{}, remote_ephemeral_{};
  Bytes local_payload_;  // NoiseHandshakePayload, built (and signed) in the constructor
  std::vector<std::string> local_stream_muxers_;
  std::optional<PeerId> expected_remote_;

  Bytes output_;
  Bytes scratch_;  // decrypted static keys and payloads

  PeerId remote_peer_;
  std::array<uint8_t, 32> remote_identity_key_{};
  std::vector<std::string> remote_stream_muxers_;
  std::optional<std::string> selected_stream_muxer_;

  noise::CipherState send_, recv_;
  bool split_done_ = false;
};

}  // namespace chorus::p2p

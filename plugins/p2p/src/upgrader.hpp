// The upgrade of a raw TCP connection to a secured, multiplexed one: multistream-select /noise, the
// Noise XX handshake, then (inside the encrypted channel) multistream-select /yamux. Sans I/O: the
// connection feeds it bytes and sends what it produces; it never touches a socket.
#pragma once

#include <chorus/status.h>

#include <memory>
#include <optional>
#include <string>

#include "noise/noise_handshake.hpp"
#include "noise/noise_transport.hpp"
#include "wire/bytes.hpp"
#include "wire/identity.hpp"
#include "wire/multistream.hpp"
#include "wire/peer_id.hpp"

namespace chorus::p2p {

inline constexpr const char *kNoiseProtocol = "/noise";
inline constexpr const char *kYamuxProtocol = "/yamux/1.0.0";

// Why a connection failed before it was muxed.
enum class UpgradeError {
  timeout,               // the handshake did not finish in time (slow or silent peer)
  io,                    // the socket failed or closed during the upgrade
  security_negotiation,  // multistream-select found no common security protocol
  noise,                 // the Noise handshake failed, or a Noise frame did not decrypt
  peer_id_mismatch,      // the peer proved another identity than the one we dialled
  muxer_negotiation,     // multistream-select found no common stream muxer
};

// The status a connection's owners see for the failure.
chorus_status upgrade_error_status(UpgradeError e);
// The `reason` label of chorus_p2p_handshake_failures_total: timeout, noise, multistream,
// peer_id_mismatch or io.
const char *upgrade_error_label(UpgradeError e);

class Upgrader {
 public:
  enum class Status { running, secured, muxed, failed };

  Upgrader(bool initiator, const Identity &identity, std::optional<PeerId> expected_peer);
  ~Upgrader();
  Upgrader(const Upgrader &) = delete;
  Upgrader &operator=(const Upgrader &) = delete;

  // The opening bytes (our multistream header and, initiator, the /noise proposal), plaintext.
  void start(Bytes &out);

  // Before the connection is secured: security negotiation and the Noise handshake over the raw
  // bytes. Appends what must go to the socket as is to `out`. `used` = bytes of `in` consumed.
  // secured: remote_peer() and take_transport() are valid; call start_muxer next.
  Status feed_insecure(BytesView in, size_t &used, Bytes &out);
  const PeerId &remote_peer() const { return remote_peer_; }
  // The Noise transport that carries the rest of the connection (once, after secured).
  NoiseTransport take_transport();

  // Inside the encrypted channel: the muxer negotiation over decrypted bytes. Appends plaintext the
  // caller encrypts to `out`. muxed: the connection speaks yamux from the next byte.
  void start_muxer(Bytes &out);
  Status feed_muxer(BytesView plain, size_t &used, Bytes &out);

  // Valid once failed.
  UpgradeError error() const { return error_; }
  const std::string &error_text() const { return error_text_; }

 private:
  Status fail(UpgradeError e, std::string why);

  const bool initiator_;
  const Identity &identity_;
  std::optional<PeerId> expected_peer_;
  std::unique_ptr<Multistream> select_;
  std::unique_ptr<NoiseHandshake> handshake_;
  PeerId remote_peer_;
  UpgradeError error_ = UpgradeError::io;
  std::string error_text_;
};

}  // namespace chorus::p2p

#include "upgrader.hpp"

#include <utility>

namespace chorus::p2p {

chorus_status upgrade_error_status(UpgradeError e) {
  switch (e) {
    case UpgradeError::timeout:
      return CHORUS_E_TIMEOUT;
    case UpgradeError::io:
      return CHORUS_E_IO;
    case UpgradeError::security_negotiation:
    case UpgradeError::noise:
    case UpgradeError::peer_id_mismatch:
    case UpgradeError::muxer_negotiation:
      return CHORUS_E_PROTOCOL;
  }
  return CHORUS_E_PROTOCOL;
}

const char *upgrade_error_label(UpgradeError e) {
  switch (e) {
    case UpgradeError::timeout:
      return "timeout";
    case UpgradeError::io:
      return "io";
    case UpgradeError::security_negotiation:
    case UpgradeError::muxer_negotiation:
      return "multistream";
    case UpgradeError::noise:
      return "noise";
    case UpgradeError::peer_id_mismatch:
      return "peer_id_mismatch";
  }
  return "io";
}

Upgrader::Upgrader(bool initiator, const Identity &identity, std::optional<PeerId> expected_peer)
    : initiator_(initiator), identity_(identity), expected_peer_(std::move(expected_peer)) {}

Upgrader::~Upgrader() = default;

void Upgrader::start(Bytes &out) {
  select_ = std::make_unique<Multistream>(initiator_ ? Multistream::initiator({kNoiseProtocol})
                                                     : Multistream::responder({kNoiseProtocol}));
  select_->take_output(out);
}

Upgrader::Status Upgrader::feed_insecure(BytesView in, size_t &used, Bytes &out) {
  used = 0;
  if (select_) {  // multistream-select /noise
    size_t n = 0;
    const auto st = select_->feed(in, n);
    used += n;
    select_->take_output(out);
    if (st == Multistream::State::failed)
      return fail(UpgradeError::security_negotiation, "security negotiation failed: " + select_->error());
    if (st == Multistream::State::negotiating) return Status::running;
    NoiseConfig cfg;
    cfg.initiator = initiator_;
    cfg.identity = &identity_;
    cfg.expected_remote = expected_peer_;
    handshake_ = std::make_unique<NoiseHandshake>(std::move(cfg));
    handshake_->take_output(out);
    select_.reset();
  }
  if (!handshake_) return fail(UpgradeError::noise, "Noise handshake failed: not running");
  size_t n = 0;
  const auto st = handshake_->feed(in.subspan(used), n);
  used += n;
  handshake_->take_output(out);
  if (st == NoiseHandshake::State::failed) {
    const bool mismatch = handshake_->failure() == NoiseHandshake::Failure::peer_id_mismatch;
    return fail(mismatch ? UpgradeError::peer_id_mismatch : UpgradeError::noise,
                "Noise handshake failed: " + handshake_->error());
  }
  if (st == NoiseHandshake::State::running) return Status::running;
  remote_peer_ = handshake_->remote_peer();
  return Status::secured;
}

NoiseTransport Upgrader::take_transport() {
  NoiseTransport t = handshake_->split();
  handshake_.reset();
  return t;
}

void Upgrader::start_muxer(Bytes &out) {
  select_ = std::make_unique<Multistream>(initiator_ ? Multistream::initiator({kYamuxProtocol})
                                                     : Multistream::responder({kYamuxProtocol}));
  select_->take_output(out);
}

Upgrader::Status Upgrader::feed_muxer(BytesView plain, size_t &used, Bytes &out) {
  used = 0;
  const auto st = select_->feed(plain, used);
  select_->take_output(out);
  if (st == Multistream::State::failed)
    return fail(UpgradeError::muxer_negotiation, "muxer negotiation failed: " + select_->error());
  if (st == Multistream::State::done) {
    select_.reset();
    return Status::muxed;
  }
  return Status::running;
}

Upgrader::Status Upgrader::fail(UpgradeError e, std::string why) {
  error_ = e;
  error_text_ = std::move(why);
  return Status::failed;
}

}  // namespace chorus::p2p

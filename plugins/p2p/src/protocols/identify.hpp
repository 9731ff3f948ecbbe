// Identify (/ipfs/id/1.0.0) and identify push (/ipfs/id/push/1.0.0): each side asks the other who it
// is on every new connection; the answer fills the peerstore and raises CHORUS_P2P_EVENT_IDENTIFIED.
// Network thread only.
#pragma once

#include <memory>

#include "stream.hpp"
#include "wire/identify.hpp"

namespace chorus::p2p {

inline constexpr const char *kIdentifyProtocol = "/ipfs/id/1.0.0";
inline constexpr const char *kIdentifyPushProtocol = "/ipfs/id/push/1.0.0";

class NodeImpl;

class IdentifyService {
 public:
  explicit IdentifyService(NodeImpl &node) : node_(node) {}

  // A connection was opened: ask the peer who it is (both directions do this, as js and go do).
  void ask(Connection &c);
  // An inbound stream of one of our protocols: answers /ipfs/id/1.0.0, reads /ipfs/id/push/1.0.0.
  // nullptr when s.protocol is neither.
  std::unique_ptr<StreamSink> accept(Stream &s);
  // What we tell the peer on `c`.
  IdentifyMessage message_for(const Connection &c) const;
  // An answer or push from c's peer: checked against the key Noise authenticated, then merged.
  void received(Connection &c, IdentifyMessage msg);

 private:
  NodeImpl &node_;
};

}  // namespace chorus::p2p

#include "wire/identify.hpp"

#include "wire/protobuf.hpp"

namespace chorus::p2p {
namespace {

enum Field : uint32_t {
  kPublicKey = 1,
  kListenAddrs = 2,
  kProtocols = 3,
  kObservedAddr = 4,
  kProtocolVersion = 5,
  kAgentVersion = 6,
  kSignedPeerRecord = 8,
};

bool fail(std::string *why, std::string msg) {
  if (why != nullptr) *why = "identify: " + std::move(msg);
  return false;
}

}  // namespace

Bytes IdentifyMessage::encode() const {
  Bytes out;
  ProtoWriter w(out);
  if (public_key) w.bytes(kPublicKey, *public_key);
  for (const auto &a : listen_addrs) w.bytes(kListenAddrs, a);
  for (const auto &p : protocols) w.string(kProtocols, p);
  if (observed_addr) w.bytes(kObservedAddr, *observed_addr);
  if (protocol_version) w.string(kProtocolVersion, *protocol_version);
  if (agent_version) w.string(kAgentVersion, *agent_version);
  if (signed_peer_record) w.bytes(kSignedPeerRecord, *signed_peer_record);
  return out;
}

bool IdentifyMessage::merge_from(BytesView in, std::string *why) {
  if (in.size() > kIdentifyMaxMessage) return fail(why, "message larger than 8 KiB");
  IdentifyMessage m = *this;  // commit only if the whole input is good
  ProtoReader r(in);
  while (r.next()) {
    // Every known field is length-delimited; a known number with another wire type is treated as an
    // unknown field, as protobuf implementations do.
    if (r.wire_type() != kWireBytes) continue;
    BytesView v = r.bytes();
    switch (r.field()) {
      case kPublicKey:
        m.public_key = to_bytes(v);
        break;
      case kListenAddrs:
        if (m.listen_addrs.size() >= kIdentifyMaxAddrs) return fail(why, "more than 128 listen addresses");
        m.listen_addrs.push_back(to_bytes(v));
        break;
      case kProtocols:
        if (m.protocols.size() >= kIdentifyMaxProtocols) return fail(why, "more than 256 protocols");
        m.protocols.emplace_back(as_string_view(v));
        break;
      case kObservedAddr:
        m.observed_addr = to_bytes(v);
        break;
      case kProtocolVersion:
        m.protocol_version = std::string(as_string_view(v));
        break;
      case kAgentVersion:
        m.agent_version = std::string(as_string_view(v));
        break;
      case kSignedPeerRecord:
        m.signed_peer_record = to_bytes(v);
        break;
      default:
        break;
    }
  }
  if (!r.ok()) return fail(why, r.error());
  *this = std::move(m);
  return true;
}

}  // namespace chorus::p2p

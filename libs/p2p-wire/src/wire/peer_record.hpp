// Signed peer records: a libp2p signed envelope (RFC 0002) holding a peer record (RFC 0003), the form in
// which peers vouch for their own addresses - gossipsub's peer exchange and identify carry them.
// docs/protocols.md (Peer records) has the byte layout.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "wire/bytes.hpp"
#include "wire/identity.hpp"
#include "wire/multiaddr.hpp"
#include "wire/peer_id.hpp"

namespace chorus::p2p {

struct PeerRecord {
  PeerId peer;
  uint64_t seq = 0;
  std::vector<Multiaddr> addrs;
};

// Envelopes larger than this are refused unopened (a record lists a handful of addresses).
inline constexpr size_t kMaxPeerRecordEnvelope = 8192;

// Opens an envelope: checks its structure, that the payload type is a peer record, the Ed25519
// signature over the domain "libp2p-peer-record", and that the record's peer id is the signer's.
// Addresses that do not decode are skipped (the rest of the record stays usable). Only Ed25519
// signers are accepted (the only key type chorus-agent peers use). nullopt and *why on failure.
std::optional<PeerRecord> open_peer_record(BytesView envelope, std::string *why);

// Seals a record of `id`'s own addresses (record.peer is set to id's peer id).
Bytes seal_peer_record(const Identity &id, uint64_t seq, const std::vector<Multiaddr> &addrs);

}  // namespace chorus::p2p

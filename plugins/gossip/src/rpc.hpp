// The pubsub RPC: what one length-prefixed frame on a /meshsub or /floodsub stream carries
// (docs/protocols.md, PubSub wire format). Sans I/O: decode bytes into these structs, encode them back.
//
// Decoding is strict where a peer could make us work or allocate: the caller's Limits bound the
// frame, the message, and the counts of every repeated field, and a violation is an error naming the
// limit, never a truncated read. Unknown fields are skipped (newer peers add fields: IDONTWANT, ...).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "wire/bytes.hpp"

namespace chorus::gossip {

using Bytes = chorus::p2p::Bytes;
using BytesView = chorus::p2p::BytesView;

// A pubsub message. Optional protobuf fields keep their presence: StrictNoSign requires `from`,
// `seqno`, `signature` and `key` to be absent (not empty), and the signed bytes encode an empty but
// present `data`.
struct Message {
  std::optional<Bytes> from;       // field 1: the author's binary peer id
  std::optional<Bytes> data;       // field 2
  std::optional<Bytes> seqno;      // field 3: 8 bytes, big-endian
  std::string topic;               // field 4 (required)
  std::optional<Bytes> signature;  // field 5
  std::optional<Bytes> key;        // field 6: PublicKey protobuf, when not inlined in `from`

  bool operator==(const Message &) const = default;
};

struct SubOpts {
  bool subscribe = false;
  std::string topic;
  bool operator==(const SubOpts &) const = default;
};

struct PeerInfo {  // peer exchange in PRUNE
  Bytes peer_id;
  std::optional<Bytes> signed_peer_record;
  bool operator==(const PeerInfo &) const = default;
};

struct ControlIHave {
  std::string topic;
  std::vector<Bytes> message_ids;
  bool operator==(const ControlIHave &) const = default;
};
struct ControlIWant {
  std::vector<Bytes> message_ids;
  bool operator==(const ControlIWant &) const = default;
};
struct ControlGraft {
  std::string topic;
  bool operator==(const ControlGraft &) const = default;
};
struct ControlPrune {
  std::string topic;
  std::vector<PeerInfo> peers;
  std::optional<uint64_t> backoff_s;
  bool operator==(const ControlPrune &) const = default;
};
struct ControlIDontWant {  // v1.2; decoded and ignored
  std::vector<Bytes> message_ids;
  bool operator==(const ControlIDontWant &) const = default;
};

struct Control {
  std::vector<ControlIHave> ihave;
  std::vector<ControlIWant> iwant;
  std::vector<ControlGraft> graft;
  std::vector<ControlPrune> prune;
  std::vector<ControlIDontWant> idontwant;
  bool empty() const { return ihave.empty() && iwant.empty() && graft.empty() && prune.empty() && idontwant.empty(); }
  bool operator==(const Control &) const = default;
};

struct Rpc {
  std::vector<SubOpts> subscriptions;  // field 1
  std::vector<Message> publish;        // field 2
  std::optional<Control> control;      // field 3
  bool empty() const { return subscriptions.empty() && publish.empty() && (!control || control->empty()); }
  bool operator==(const Rpc &) const = default;
};

// Bounds on what one decoded RPC may hold. Defaults follow go-libp2p-pubsub's and the plugin's config.
struct RpcLimits {
  size_t max_rpc_bytes = 1 << 20 | 4096;  // a 1 MiB message plus its framing and control
  size_t max_message_bytes = 1 << 20;     // data of one message
  size_t max_topic_bytes = 1024;
  size_t max_subscriptions = 1000;        // SubOpts per RPC
  size_t max_messages = 1000;             // messages per RPC
  size_t max_control_entries = 5000;      // IHAVE + IWANT + GRAFT + PRUNE + IDONTWANT entries per RPC
  size_t max_message_ids = 5000;          // ids across all IHAVE / IWANT / IDONTWANT of one RPC
  size_t max_prune_peers = 64;            // PeerInfo per PRUNE
  size_t max_message_id_bytes = 256;
};

// Decodes one RPC (the frame's payload, without its length prefix). On failure returns nothing and
// sets *why to a short reason ("message data exceeds 1048576 bytes", "truncated varint", ...).
std::optional<Rpc> decode_rpc(BytesView frame, const RpcLimits &limits, std::string *why);

// Encodes an RPC deterministically (fields in ascending number order).
Bytes encode_rpc(const Rpc &rpc);
// Appends the uvarint length prefix and the encoded RPC to out: one frame for the stream.
void append_frame(Bytes &out, const Rpc &rpc);

// The bytes a signature covers: "libp2p-pubsub:" followed by the message encoded with fields 1-4 only
// (from, data, seqno, topic; presence preserved).
Bytes signing_bytes(const Message &m);

}  // namespace chorus::gossip

// The kad-dht RPC message (docs/protocols.md, DHT wire format): what one length-prefixed frame on a
// `<prefix>/kad/1.0.0` stream carries, requests and replies alike. Sans I/O: decode bytes into these
// structs, encode them back.
//
// Decoding is strict where a peer could make us work or allocate: Limits bound the message, the record
// value and the counts of peers and addresses, and a violation is an error naming the limit. Unknown
// fields (clusterLevelRaw = 10, retired record fields 3 and 4) are skipped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kad/key.hpp"

namespace chorus::dht {

enum class MessageType : uint32_t {
  kPutValue = 0,
  kGetValue = 1,
  kAddProvider = 2,
  kGetProviders = 3,
  kFindNode = 4,
  kPing = 5,  // deprecated: answered, never sent
};
const char *message_type_name(MessageType t);  // "PUT_VALUE", ...

enum class ConnectionType : uint32_t { kNotConnected = 0, kConnected = 1, kCanConnect = 2, kCannotConnect = 3 };

struct Record {
  Bytes key;                  // field 1
  Bytes value;                // field 2
  std::string time_received;  // field 5: RFC 3339, set by the receiver; "" when absent
  bool operator==(const Record &) const = default;
};

struct PeerEntry {
  Bytes id;                  // field 1: binary peer id (multihash)
  std::vector<Bytes> addrs;  // field 2: binary multiaddrs
  ConnectionType connection = ConnectionType::kNotConnected;  // field 3
  bool operator==(const PeerEntry &) const = default;
};

struct Message {
  MessageType type = MessageType::kPing;  // field 1
  Bytes key;                              // field 2
  std::optional<Record> record;           // field 3
  std::vector<PeerEntry> closer_peers;    // field 8
  std::vector<PeerEntry> provider_peers;  // field 9
  bool operator==(const Message &) const = default;
};

struct Limits {
  size_t max_message_bytes = 4u << 20;  // a whole frame (go's network.MessageSizeMax)
  size_t max_value_bytes = 1u << 20;    // record.value
  size_t max_key_bytes = 1024;          // key and record.key
  size_t max_peers = 64;                // closer_peers and provider_peers, each
  size_t max_addrs_per_peer = 32;
  size_t max_addr_bytes = 256;
};

// Decodes one message body (without the length prefix). On error returns nullopt and sets *why.
std::optional<Message> decode_message(BytesView body, const Limits &limits, std::string *why);

// Encodes a message body in ascending field order (no length prefix).
Bytes encode_message(const Message &m);

// Encodes body with its uvarint length prefix, as written on the stream.
Bytes encode_frame(const Message &m);

}  // namespace chorus::dht

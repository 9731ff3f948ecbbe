// The identify message (/ipfs/id/1.0.0 and /ipfs/id/push/1.0.0), docs/protocols.md, identify.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "wire/bytes.hpp"

namespace chorus::p2p {

constexpr size_t kIdentifyMaxMessage = 8 * 1024;
constexpr size_t kIdentifyMaxAddrs = 128;
constexpr size_t kIdentifyMaxProtocols = 256;

struct IdentifyMessage {
  std::optional<std::string> protocol_version;  // field 5
  std::optional<std::string> agent_version;     // field 6
  std::optional<Bytes> public_key;              // field 1, PublicKey protobuf
  std::optional<Bytes> observed_addr;           // field 4, binary multiaddr
  std::optional<Bytes> signed_peer_record;      // field 8, Envelope (not interpreted here)
  std::vector<Bytes> listen_addrs;              // field 2, binary multiaddrs
  std::vector<std::string> protocols;           // field 3

  // Fields in ascending field-number order.
  Bytes encode() const;
  // Protobuf merge: present scalars overwrite, repeated fields append, unknown fields are skipped.
  // On error (malformed, over 8 KiB, more than 128 addresses or 256 protocols in total) the message is
  // left unchanged and why says what was wrong. Values are not validated here: multiaddrs and keys are
  // checked by whoever uses them.
  bool merge_from(BytesView in, std::string *why);

  bool operator==(const IdentifyMessage &) const = default;
};

}  // namespace chorus::p2p

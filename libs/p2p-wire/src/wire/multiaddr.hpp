// Multiaddrs: self-describing network addresses ("/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...").
//
// The binary form, uvarint(code) || value per component, is the canonical one and is what a Multiaddr
// stores. Only the protocols a TCP libp2p node meets are known (docs/protocols.md, Multiaddr);
// anything else is refused with a reason naming it. Every accepted binary form prints to text that
// parses back to the same bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wire/bytes.hpp"
#include "wire/peer_id.hpp"

namespace chorus::p2p {

enum MultiaddrCode : uint32_t {
  kMaIp4 = 4,
  kMaTcp = 6,
  kMaUdp = 273,
  kMaIp6 = 41,
  kMaIp6Zone = 42,
  kMaDns = 53,
  kMaDns4 = 54,
  kMaDns6 = 55,
  kMaDnsaddr = 56,
  kMaP2p = 421,
  kMaP2pCircuit = 290,
  kMaQuicV1 = 461,
  kMaWs = 477,
};

constexpr size_t kMaxMultiaddrBytes = 1024;

class Multiaddr {
 public:
  struct Component {
    uint32_t code;
    BytesView value;  // points into the Multiaddr's bytes
  };

  struct TcpTarget {
    enum Kind { ip4, ip6, dns, dns4, dns6 };
    std::string host;  // IP literal (no brackets) or DNS name
    uint16_t port = 0;
    Kind kind = ip4;
  };

  Multiaddr() = default;  // empty; to_string() gives ""

  static std::optional<Multiaddr> parse(std::string_view text, std::string *why);
  static std::optional<Multiaddr> from_bytes(BytesView bytes, std::string *why);
  // /ip4/A/tcp/P or /ip6/A/tcp/P (with /ip6zone/Z first for "fe80::1%eth0"); IPv4-mapped IPv6
  // addresses become /ip4. An unparsable literal gives an empty Multiaddr.
  static Multiaddr from_tcp(const std::string &ip_literal, uint16_t port);

  const Bytes &bytes() const { return bytes_; }
  bool empty() const { return bytes_.empty(); }
  std::string to_string() const;
  std::vector<Component> components() const;

  // The peer id of a trailing /p2p/ component.
  std::optional<PeerId> peer_id() const;
  Multiaddr without_peer_id() const;
  Multiaddr with_peer_id(const PeerId &id) const;  // replaces a trailing /p2p/ if present

  // For /ip4|ip6|dns|dns4|dns6/X/tcp/N with an optional trailing /p2p/ID; nullopt for anything else.
  std::optional<TcpTarget> tcp_target() const;

  bool operator==(const Multiaddr &o) const { return bytes_ == o.bytes_; }
  bool operator!=(const Multiaddr &o) const { return bytes_ != o.bytes_; }
  bool operator<(const Multiaddr &o) const { return bytes_ < o.bytes_; }

 private:
  explicit Multiaddr(Bytes b) : bytes_(std::move(b)) {}
  Bytes bytes_;
};

}  // namespace chorus::p2p

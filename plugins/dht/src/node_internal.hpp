// Small helpers shared by node.cpp, node_server.cpp and node_ops.cpp (not part of the node's API).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <boost/asio/steady_timer.hpp>

#include <chorus/plugin.hpp>

#include "kad/key.hpp"
#include "node.hpp"

namespace chorus::dht {

// Fills err through chorus::set_error and returns code.
chorus_status fail(chorus_error *err, chorus_status code, const std::string &message);
// Bytes as a std::string (keys in messages and logs).
std::string text_of(BytesView b);
// The p2p host's listen addresses (binary multiaddrs without /p2p/), from get_info_json.
std::vector<Bytes> listen_addrs(const chorus_p2p_host_v1 &t, void *self);

// ---- per-stream state ----

// The arg of one stream's p2p handler: lives from accept/open until on_closed (p2p thread only).
struct Node::StreamCtx {
  std::weak_ptr<Node> node;
  PeerId peer;
  bool inbound = false;
  uint64_t call = 0;  // outbound: the call it carries
};

// An inbound (server) stream: requests in, replies out, in order.
struct Node::Inbound {
  PeerId peer;
  Bytes buf;
  bool busy = false;  // a request waits for the store thread: later frames wait too
  bool eof = false;
};

// One outbound request: open, write, read one reply (or none), close.
struct Node::Call {
  PeerId peer;
  MessageType type;
  Bytes frame;
  bool expect_reply = true;
  uint64_t stream = 0;
  Bytes buf;
  RpcDone done;
  std::unique_ptr<boost::asio::steady_timer> timer;
};

// One running lookup (node_ops.cpp drives it).
struct Node::LookupOp {
  LookupKind kind;
  Bytes key;
  std::unique_ptr<Lookup> q;
  LookupDone done;
  std::unique_ptr<boost::asio::steady_timer> wake;
  std::optional<PeerId> want;  // FIND_NODE for a peer: ends as soon as a reply names it
};

}  // namespace chorus::dht

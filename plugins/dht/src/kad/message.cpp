#include "kad/message.hpp"

#include "wire/protobuf.hpp"
#include "wire/varint.hpp"

namespace chorus::dht {
namespace {

using chorus::p2p::ProtoReader;
using chorus::p2p::ProtoWriter;
using chorus::p2p::kWireBytes;
using chorus::p2p::kWireVarint;

// Field numbers of the kad-dht protobuf.
enum : uint32_t {
  kMsgType = 1,
  kMsgKey = 2,
  kMsgRecord = 3,
  kMsgCloserPeers = 8,
  kMsgProviderPeers = 9,
  kRecordKey = 1,
  kRecordValue = 2,
  kRecordTimeReceived = 5,
  kPeerId = 1,
  kPeerAddrs = 2,
  kPeerConnection = 3,
};

bool fail(std::string *why, std::string msg) {
  if (why != nullptr) *why = std::move(msg);
  return false;
}

std::string over(const char *what, size_t got, const char *limit, size_t max) {
  return std::string(what) + ": " + std::to_string(got) + " exceeds " + limit + " (" + std::to_string(max) + ")";
}

// A known field number must carry the wire type its schema says; anything else is a malformed message
// rather than an unknown field.
bool expect_wire(const ProtoReader &r, uint32_t want, const char *what, std::string *why) {
  if (r.wire_type() == want) return true;
  return fail(why, std::string(what) + ": wrong wire type " + std::to_string(r.wire_type()));
}

bool decode_record(BytesView in, const Limits &limits, Record &out, std::string *why) {
  out = Record{};
  ProtoReader r(in);
  while (r.next()) {
    switch (r.field()) {
      case kRecordKey:
        if (!expect_wire(r, kWireBytes, "record.key", why)) return false;
        if (r.bytes().size() > limits.max_key_bytes)
          return fail(why, over("record.key bytes", r.bytes().size(), "max_key_bytes", limits.max_key_bytes));
        out.key.assign(r.bytes().begin(), r.bytes().end());
        break;
      case kRecordValue:
        if (!expect_wire(r, kWireBytes, "record.value", why)) return false;
        if (r.bytes().size() > limits.max_value_bytes)
          return fail(why,
                      over("record.value bytes", r.bytes().size(), "max_value_bytes", limits.max_value_bytes));
        out.value.assign(r.bytes().begin(), r.bytes().end());
        break;
      case kRecordTimeReceived:
        // An RFC 3339 time is ~30 characters; the key limit is a generous bound for it.
        if (!expect_wire(r, kWireBytes, "record.timeReceived", why)) return false;
        if (r.bytes().size() > limits.max_key_bytes)
          return fail(why, over("record.timeReceived bytes", r.bytes().size(), "max_key_bytes",
                                limits.max_key_bytes));
        out.time_received.assign(r.string());
        break;
      default:
        break;  // retired author (3) and signature (4), and anything newer
    }
  }
  if (!r.ok()) return fail(why, std::string("record: ") + r.error());
  return true;
}

bool decode_peer(BytesView in, const Limits &limits, const char *what, PeerEntry &out, std::string *why) {
  out = PeerEntry{};
  ProtoReader r(in);
  while (r.next()) {
    switch (r.field()) {
      case kPeerId:
        if (!expect_wire(r, kWireBytes, what, why)) return false;
        // Peer ids are at most a few dozen bytes; the key limit bounds them like any other key.
        if (r.bytes().size() > limits.max_key_bytes)
          return fail(why, std::string(what) + ": " +
                               over("peer id bytes", r.bytes().size(), "max_key_bytes", limits.max_key_bytes));
        out.id.assign(r.bytes().begin(), r.bytes().end());
        break;
      case kPeerAddrs:
        if (!expect_wire(r, kWireBytes, what, why)) return false;
        if (out.addrs.size() >= limits.max_addrs_per_peer)
          return fail(why, std::string(what) + ": " +
                               over("addrs", out.addrs.size() + 1, "max_addrs_per_peer", limits.max_addrs_per_peer));
        if (r.bytes().size() > limits.max_addr_bytes)
          return fail(why, std::string(what) + ": " +
                               over("addr bytes", r.bytes().size(), "max_addr_bytes", limits.max_addr_bytes));
        out.addrs.emplace_back(r.bytes().begin(), r.bytes().end());
        break;
      case kPeerConnection:
        if (!expect_wire(r, kWireVarint, what, why)) return false;
        // Only a hint about the sender's view of the peer: an unknown value means "no information".
        out.connection = r.varint() <= static_cast<uint64_t>(ConnectionType::kCannotConnect)
                             ? static_cast<ConnectionType>(r.varint())
                             : ConnectionType::kNotConnected;
        break;
      default:
        break;
    }
  }
  if (!r.ok()) return fail(why, std::string(what) + ": " + r.error());
  return true;
}

void encode_peer(ProtoWriter &w, uint32_t field, const PeerEntry &p) {
  Bytes body;
  ProtoWriter pw(body);
  if (!p.id.empty()) pw.bytes(kPeerId, p.id);
  for (const Bytes &a : p.addrs) pw.bytes(kPeerAddrs, a);
  if (p.connection != ConnectionType::kNotConnected) pw.varint(kPeerConnection, static_cast<uint64_t>(p.connection));
  w.bytes(field, body);
}

}  // namespace

const char *message_type_name(MessageType t) {
  switch (t) {
    case MessageType::kPutValue:
      return "PUT_VALUE";
    case MessageType::kGetValue:
      return "GET_VALUE";
    case MessageType::kAddProvider:
      return "ADD_PROVIDER";
    case MessageType::kGetProviders:
      return "GET_PROVIDERS";
    case MessageType::kFindNode:
      return "FIND_NODE";
    case MessageType::kPing:
      return "PING";
  }
  return "UNKNOWN";
}

std::optional<Message> decode_message(BytesView body, const Limits &limits, std::string *why) {
  if (body.size() > limits.max_message_bytes) {
    fail(why, over("message bytes", body.size(), "max_message_bytes", limits.max_message_bytes));
    return std::nullopt;
  }
  // proto3: an absent type is its zero value, PUT_VALUE (go and js both leave it out).
  Message m;
  m.type = MessageType::kPutValue;
  ProtoReader r(body);
  while (r.next()) {
    switch (r.field()) {
      case kMsgType:
        if (!expect_wire(r, kWireVarint, "type", why)) return std::nullopt;
        if (r.varint() > static_cast<uint64_t>(MessageType::kPing)) {
          fail(why, "type: unknown message type " + std::to_string(r.varint()));
          return std::nullopt;
        }
        m.type = static_cast<MessageType>(r.varint());
        break;
      case kMsgKey:
        if (!expect_wire(r, kWireBytes, "key", why)) return std::nullopt;
        if (r.bytes().size() > limits.max_key_bytes) {
          fail(why, over("key bytes", r.bytes().size(), "max_key_bytes", limits.max_key_bytes));
          return std::nullopt;
        }
        m.key.assign(r.bytes().begin(), r.bytes().end());
        break;
      case kMsgRecord: {
        // A repeated singular field replaces the earlier one (protobuf's last-one-wins for our purposes).
        if (!expect_wire(r, kWireBytes, "record", why)) return std::nullopt;
        Record rec;
        if (!decode_record(r.bytes(), limits, rec, why)) return std::nullopt;
        m.record = std::move(rec);
        break;
      }
      case kMsgCloserPeers:
      case kMsgProviderPeers: {
        bool closer = r.field() == kMsgCloserPeers;
        const char *what = closer ? "closerPeers" : "providerPeers";
        std::vector<PeerEntry> &list = closer ? m.closer_peers : m.provider_peers;
        if (!expect_wire(r, kWireBytes, what, why)) return std::nullopt;
        if (list.size() >= limits.max_peers) {
          fail(why, std::string(what) + ": " + over("peers", list.size() + 1, "max_peers", limits.max_peers));
          return std::nullopt;
        }
        PeerEntry p;
        if (!decode_peer(r.bytes(), limits, what, p, why)) return std::nullopt;
        list.push_back(std::move(p));
        break;
      }
      default:
        break;  // clusterLevelRaw (10) and anything newer
    }
  }
  if (!r.ok()) {
    fail(why, std::string("message: ") + r.error());
    return std::nullopt;
  }
  return m;
}

Bytes encode_message(const Message &m) {
  // Proto3 as go writes it: zero and empty fields are left out, fields in ascending number order.
  Bytes out;
  ProtoWriter w(out);
  if (m.type != MessageType::kPutValue) w.varint(kMsgType, static_cast<uint64_t>(m.type));
  if (!m.key.empty()) w.bytes(kMsgKey, m.key);
  if (m.record) {
    Bytes rec;
    ProtoWriter rw(rec);
    if (!m.record->key.empty()) rw.bytes(kRecordKey, m.record->key);
    if (!m.record->value.empty()) rw.bytes(kRecordValue, m.record->value);
    if (!m.record->time_received.empty()) rw.string(kRecordTimeReceived, m.record->time_received);
    w.bytes(kMsgRecord, rec);
  }
  for (const PeerEntry &p : m.closer_peers) encode_peer(w, kMsgCloserPeers, p);
  for (const PeerEntry &p : m.provider_peers) encode_peer(w, kMsgProviderPeers, p);
  return out;
}

Bytes encode_frame(const Message &m) {
  Bytes body = encode_message(m);
  Bytes out;
  out.reserve(body.size() + chorus::p2p::uvarint_size(body.size()));
  chorus::p2p::append_lp(out, body);
  return out;
}

}  // namespace chorus::dht

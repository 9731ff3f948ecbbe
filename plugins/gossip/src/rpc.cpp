// The pubsub RPC protobuf (docs/protocols.md, PubSub wire format): a strict decoder bounded by
// RpcLimits and a deterministic encoder.
//
// Decoding follows protobuf semantics where peers rely on them (unknown fields skipped, a repeated
// `control` merges, a later scalar wins) and refuses everything a peer could use to make us allocate
// without bound: every count and size is checked before the value is stored.
#include "rpc.hpp"

#include <string_view>

#include "wire/protobuf.hpp"
#include "wire/varint.hpp"

namespace chorus::gossip {

namespace {

using chorus::p2p::kWireBytes;
using chorus::p2p::kWireVarint;
using chorus::p2p::ProtoReader;
using chorus::p2p::ProtoWriter;

// Field numbers (libp2p pubsub rpc.proto).
enum : uint32_t {
  kRpcSubscriptions = 1,
  kRpcPublish = 2,
  kRpcControl = 3,
  kSubSubscribe = 1,
  kSubTopic = 2,
  kMsgFrom = 1,
  kMsgData = 2,
  kMsgSeqno = 3,
  kMsgTopic = 4,
  kMsgSignature = 5,
  kMsgKey = 6,
  kCtlIHave = 1,
  kCtlIWant = 2,
  kCtlGraft = 3,
  kCtlPrune = 4,
  kCtlIDontWant = 5,
  kIHaveTopic = 1,
  kIHaveIds = 2,
  kIWantIds = 1,
  kGraftTopic = 1,
  kPruneTopic = 1,
  kPrunePeers = 2,
  kPruneBackoff = 3,
  kPeerInfoId = 1,
  kPeerInfoRecord = 2,
  kIDontWantIds = 1,
};

// Decoding state for one RPC: the limits and the running totals they bound.
class Decoder {
 public:
  Decoder(const RpcLimits &limits, std::string *why) : limits_(limits), why_(why) {}

  bool rpc(BytesView in, Rpc &out) {
    if (in.size() > limits_.max_rpc_bytes) return fail("rpc exceeds " + std::to_string(limits_.max_rpc_bytes) + " bytes");
    ProtoReader r(in);
    while (r.next()) {
      switch (r.field()) {
        case kRpcSubscriptions: {
          if (!expect(r, kWireBytes, "subscriptions")) return false;
          if (out.subscriptions.size() >= limits_.max_subscriptions)
            return fail("more than " + std::to_string(limits_.max_subscriptions) + " subscriptions");
          SubOpts s;
          if (!sub_opts(r.bytes(), s)) return false;
          out.subscriptions.push_back(std::move(s));
          break;
        }
        case kRpcPublish: {
          if (!expect(r, kWireBytes, "publish")) return false;
          if (out.publish.size() >= limits_.max_messages)
            return fail("more than " + std::to_string(limits_.max_messages) + " messages");
          Message m;
          if (!message(r.bytes(), m)) return false;
          out.publish.push_back(std::move(m));
          break;
        }
        case kRpcControl:
          if (!expect(r, kWireBytes, "control")) return false;
          if (!out.control) out.control.emplace();
          if (!control(r.bytes(), *out.control)) return false;
          break;
        default:
          break;  // unknown field: skipped
      }
    }
    return reader_ok(r);
  }

 private:
  bool fail(std::string why) {
    if (why_ != nullptr) *why_ = std::move(why);
    return false;
  }
  bool reader_ok(const ProtoReader &r) { return r.ok() || fail(r.error()); }
  bool expect(const ProtoReader &r, uint32_t wire_type, const char *name) {
    if (r.wire_type() == wire_type) return true;
    return fail(std::string("field ") + name + " has the wrong wire type");
  }
  bool topic(const ProtoReader &r, std::string &out) {
    if (!expect(r, kWireBytes, "topic")) return false;
    if (r.bytes().size() > limits_.max_topic_bytes)
      return fail("topic exceeds " + std::to_string(limits_.max_topic_bytes) + " bytes");
    out.assign(r.string());
    return true;
  }
  bool control_entry() {
    if (++control_entries_ > limits_.max_control_entries)
      return fail("more than " + std::to_string(limits_.max_control_entries) + " control entries");
    return true;
  }
  bool message_id(const ProtoReader &r, std::vector<Bytes> &out) {
    if (!expect(r, kWireBytes, "message id")) return false;
    if (++message_ids_ > limits_.max_message_ids)
      return fail("more than " + std::to_string(limits_.max_message_ids) + " message ids");
    if (r.bytes().size() > limits_.max_message_id_bytes)
      return fail("message id exceeds " + std::to_string(limits_.max_message_id_bytes) + " bytes");
    out.emplace_back(r.bytes().begin(), r.bytes().end());
    return true;
  }
  // An optional bytes field; `limit` bounds it (0: bounded by the frame only).
  bool bytes_field(const ProtoReader &r, const char *name, size_t limit, std::optional<Bytes> &out) {
    if (!expect(r, kWireBytes, name)) return false;
    if (limit != 0 && r.bytes().size() > limit)
      return fail(std::string("message ") + name + " exceeds " + std::to_string(limit) + " bytes");
    out.emplace(r.bytes().begin(), r.bytes().end());
    return true;
  }

  bool sub_opts(BytesView in, SubOpts &out) {
    ProtoReader r(in);
    while (r.next()) {
      if (r.field() == kSubSubscribe) {
        if (!expect(r, kWireVarint, "subscribe")) return false;
        out.subscribe = r.varint() != 0;
      } else if (r.field() == kSubTopic) {
        if (!topic(r, out.topic)) return false;
      }
    }
    return reader_ok(r);
  }

  bool message(BytesView in, Message &out) {
    ProtoReader r(in);
    while (r.next()) {
      switch (r.field()) {
        case kMsgFrom:
          if (!bytes_field(r, "from", kMaxIdBytes, out.from)) return false;
          break;
        case kMsgData:
          if (!bytes_field(r, "data", limits_.max_message_bytes, out.data)) return false;
          break;
        case kMsgSeqno:
          if (!bytes_field(r, "seqno", kMaxIdBytes, out.seqno)) return false;
          break;
        case kMsgTopic:
          if (!topic(r, out.topic)) return false;
          break;
        case kMsgSignature:
          if (!bytes_field(r, "signature", kMaxIdBytes, out.signature)) return false;
          break;
        case kMsgKey:
          if (!bytes_field(r, "key", kMaxKeyBytes, out.key)) return false;
          break;
        default:
          break;
      }
    }
    return reader_ok(r);
  }

  bool control(BytesView in, Control &out) {
    ProtoReader r(in);
    while (r.next()) {
      switch (r.field()) {
        case kCtlIHave: {
          if (!expect(r, kWireBytes, "ihave") || !control_entry()) return false;
          ControlIHave e;
          ProtoReader s(r.bytes());
          while (s.next()) {
            if (s.field() == kIHaveTopic && !topic(s, e.topic)) return false;
            if (s.field() == kIHaveIds && !message_id(s, e.message_ids)) return false;
          }
          if (!reader_ok(s)) return false;
          out.ihave.push_back(std::move(e));
          break;
        }
        case kCtlIWant: {
          if (!expect(r, kWireBytes, "iwant") || !control_entry()) return false;
          ControlIWant e;
          if (!id_list(r.bytes(), kIWantIds, e.message_ids)) return false;
          out.iwant.push_back(std::move(e));
          break;
        }
        case kCtlGraft: {
          if (!expect(r, kWireBytes, "graft") || !control_entry()) return false;
          ControlGraft e;
          ProtoReader s(r.bytes());
          while (s.next())
            if (s.field() == kGraftTopic && !topic(s, e.topic)) return false;
          if (!reader_ok(s)) return false;
          out.graft.push_back(std::move(e));
          break;
        }
        case kCtlPrune: {
          if (!expect(r, kWireBytes, "prune") || !control_entry()) return false;
          ControlPrune e;
          if (!prune(r.bytes(), e)) return false;
          out.prune.push_back(std::move(e));
          break;
        }
        case kCtlIDontWant: {
          if (!expect(r, kWireBytes, "idontwant") || !control_entry()) return false;
          ControlIDontWant e;
          if (!id_list(r.bytes(), kIDontWantIds, e.message_ids)) return false;
          out.idontwant.push_back(std::move(e));
          break;
        }
        default:
          break;
      }
    }
    return reader_ok(r);
  }

  bool id_list(BytesView in, uint32_t field, std::vector<Bytes> &out) {
    ProtoReader s(in);
    while (s.next())
      if (s.field() == field && !message_id(s, out)) return false;
    return reader_ok(s);
  }

  bool prune(BytesView in, ControlPrune &out) {
    ProtoReader s(in);
    while (s.next()) {
      switch (s.field()) {
        case kPruneTopic:
          if (!topic(s, out.topic)) return false;
          break;
        case kPrunePeers: {
          if (!expect(s, kWireBytes, "prune peers")) return false;
          if (out.peers.size() >= limits_.max_prune_peers)
            return fail("more than " + std::to_string(limits_.max_prune_peers) + " peers in a prune");
          PeerInfo pi;
          ProtoReader p(s.bytes());
          while (p.next()) {
            if (p.field() == kPeerInfoId) {
              if (!expect(p, kWireBytes, "peer id")) return false;
              if (p.bytes().size() > kMaxIdBytes) return fail("prune peer id too long");
              pi.peer_id.assign(p.bytes().begin(), p.bytes().end());
            } else if (p.field() == kPeerInfoRecord) {
              if (!expect(p, kWireBytes, "signed peer record")) return false;
              if (p.bytes().size() > kMaxRecordBytes) return fail("signed peer record too long");
              pi.signed_peer_record.emplace(p.bytes().begin(), p.bytes().end());
            }
          }
          if (!reader_ok(p)) return false;
          out.peers.push_back(std::move(pi));
          break;
        }
        case kPruneBackoff:
          if (!expect(s, kWireVarint, "backoff")) return false;
          out.backoff_s = s.varint();
          break;
        default:
          break;
      }
    }
    return reader_ok(s);
  }

  // Peer ids, seqnos and signatures are tens of bytes; these caps only stop absurd values.
  static constexpr size_t kMaxIdBytes = 256;
  static constexpr size_t kMaxKeyBytes = 1024;  // RSA-4096 PublicKey protobuf is ~550 bytes
  static constexpr size_t kMaxRecordBytes = 8192;

  const RpcLimits &limits_;
  std::string *why_;
  size_t control_entries_ = 0;
  size_t message_ids_ = 0;
};

// Submessages are encoded into a scratch buffer first; the length prefix needs their size.
void put_message(ProtoWriter &w, uint32_t field, const Bytes &body) { w.bytes(field, body); }

void encode_message_fields(Bytes &out, const Message &m, bool with_signature) {
  ProtoWriter w(out);
  if (m.from) w.bytes(kMsgFrom, *m.from);
  if (m.data) w.bytes(kMsgData, *m.data);
  if (m.seqno) w.bytes(kMsgSeqno, *m.seqno);
  w.string(kMsgTopic, m.topic);
  if (with_signature) {
    if (m.signature) w.bytes(kMsgSignature, *m.signature);
    if (m.key) w.bytes(kMsgKey, *m.key);
  }
}

void encode_control(Bytes &out, const Control &c) {
  ProtoWriter w(out);
  Bytes sub;
  for (const auto &e : c.ihave) {
    sub.clear();
    ProtoWriter s(sub);
    s.string(kIHaveTopic, e.topic);
    for (const auto &id : e.message_ids) s.bytes(kIHaveIds, id);
    put_message(w, kCtlIHave, sub);
  }
  for (const auto &e : c.iwant) {
    sub.clear();
    ProtoWriter s(sub);
    for (const auto &id : e.message_ids) s.bytes(kIWantIds, id);
    put_message(w, kCtlIWant, sub);
  }
  for (const auto &e : c.graft) {
    sub.clear();
    ProtoWriter s(sub);
    s.string(kGraftTopic, e.topic);
    put_message(w, kCtlGraft, sub);
  }
  for (const auto &e : c.prune) {
    sub.clear();
    ProtoWriter s(sub);
    s.string(kPruneTopic, e.topic);
    Bytes info;
    for (const auto &pi : e.peers) {
      info.clear();
      ProtoWriter p(info);
      p.bytes(kPeerInfoId, pi.peer_id);
      if (pi.signed_peer_record) p.bytes(kPeerInfoRecord, *pi.signed_peer_record);
      s.bytes(kPrunePeers, info);
    }
    if (e.backoff_s) s.varint(kPruneBackoff, *e.backoff_s);
    put_message(w, kCtlPrune, sub);
  }
  for (const auto &e : c.idontwant) {
    sub.clear();
    ProtoWriter s(sub);
    for (const auto &id : e.message_ids) s.bytes(kIDontWantIds, id);
    put_message(w, kCtlIDontWant, sub);
  }
}

void encode_rpc_into(Bytes &out, const Rpc &rpc) {
  ProtoWriter w(out);
  Bytes sub;
  for (const auto &s : rpc.subscriptions) {
    sub.clear();
    ProtoWriter sw(sub);
    sw.varint(kSubSubscribe, s.subscribe ? 1 : 0);
    sw.string(kSubTopic, s.topic);
    put_message(w, kRpcSubscriptions, sub);
  }
  for (const auto &m : rpc.publish) {
    sub.clear();
    encode_message_fields(sub, m, true);
    put_message(w, kRpcPublish, sub);
  }
  if (rpc.control) {
    sub.clear();
    encode_control(sub, *rpc.control);
    put_message(w, kRpcControl, sub);
  }
}

}  // namespace

std::optional<Rpc> decode_rpc(BytesView frame, const RpcLimits &limits, std::string *why) {
  Rpc rpc;
  Decoder d(limits, why);
  if (!d.rpc(frame, rpc)) return std::nullopt;
  return rpc;
}

Bytes encode_rpc(const Rpc &rpc) {
  Bytes out;
  encode_rpc_into(out, rpc);
  return out;
}

void append_frame(Bytes &out, const Rpc &rpc) {
  Bytes body = encode_rpc(rpc);
  chorus::p2p::append_lp(out, body);
}

Bytes signing_bytes(const Message &m) {
  static constexpr std::string_view kPrefix = "libp2p-pubsub:";
  Bytes out(kPrefix.begin(), kPrefix.end());
  encode_message_fields(out, m, false);
  return out;
}

}  // namespace chorus::gossip

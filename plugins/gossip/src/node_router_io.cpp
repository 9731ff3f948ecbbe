// The RouterIo the router calls on the gossip thread, and the hand-out of accepted messages to
// handlers (node_internal.hpp lists the parts of the node).
#include "node_internal.hpp"

#include <algorithm>

#include "envelope.hpp"
#include "wire/peer_record.hpp"

namespace chorus::gossip {

// ---- RouterIo ----

static chorus_pubsub_message c_message(const std::string &topic, const Bytes &data, const std::optional<Bytes> &from,
                                       const std::string &from_text, const std::optional<Bytes> &seqno, const Bytes &id,
                                       const std::string &received_from, bool local, const char *type) {
  chorus_pubsub_message msg{};
  msg.struct_size = sizeof msg;
  msg.local = local ? 1 : 0;
  msg.topic = topic.c_str();
  msg.data = data.data();
  msg.data_len = data.size();
  msg.from = from ? from->data() : nullptr;
  msg.from_len = from ? from->size() : 0;
  msg.from_text = from_text.c_str();
  msg.seqno = seqno ? seqno->data() : nullptr;
  msg.seqno_len = seqno ? seqno->size() : 0;
  msg.message_id = id.data();
  msg.message_id_len = id.size();
  msg.received_from = received_from.c_str();
  msg.type = type;
  return msg;
}

const std::string &Node::peer_text(const Bytes &peer) {
  static const std::string kNone;
  auto it = peer_texts_.find(peer);
  if (it != peer_texts_.end()) return it->second;
  auto id = PeerId::from_bytes(peer, nullptr);
  if (!id) return kNone;
  if (peer_texts_.size() >= 4096) peer_texts_.clear();
  return peer_texts_.emplace(peer, id->to_base58()).first->second;
}

Validation Node::validate(const ReceivedMessage &m) {
  static const Bytes kEmpty;
  const Bytes &data = m.message.data ? *m.message.data : kEmpty;
  // HMMM loops: an envelope relayed more than hop_limit times is dropped (not the sender's fault).
  if (!m.local && !data.empty() && data[0] == '{') {
    static constexpr std::string_view kKey = "\"hop_count\"";
    const std::string_view text(reinterpret_cast<const char *>(data.data()), data.size());
    if (text.find(kKey) != std::string_view::npos) {
      auto e = parse_envelope(text, nullptr);
      if (e && e->hop_count > s_.hop_limit) {
        ignore_reason_ = "hop_limit";
        return Validation::kIgnore;
      }
    }
  }
  std::lock_guard lk(vals_mu_);
  bool any = false;
  for (const auto &v : vals_)
    if (v.live && v.topic == m.message.topic) any = true;
  if (!any) return Validation::kAccept;
  static const std::string kNone;
  const std::string &from_text = m.message.from ? peer_text(*m.message.from) : kNone;
  const std::string &received = peer_text(m.received_from.bytes());
  std::string type;
  if (auto e = parse_envelope(std::string_view(reinterpret_cast<const char *>(data.data()), data.size()), nullptr)) type = e->type;
  const chorus_pubsub_message msg = c_message(m.message.topic, data, m.message.from, from_text, m.message.seqno, m.id,
                                              received, m.local, type.c_str());
  Validation verdict = Validation::kAccept;
  ++vals_depth_;
  ++validator_depth_;
  for (auto &v : vals_) {
    if (!v.live || v.topic != m.message.topic) continue;
    const int r = v.fn(msg);
    if (r == CHORUS_PUBSUB_REJECT) {
      verdict = Validation::kReject;
      break;
    }
    if (r != CHORUS_PUBSUB_ACCEPT) verdict = Validation::kIgnore;  // keep looking for a REJECT
  }
  --validator_depth_;
  if (--vals_depth_ == 0) std::erase_if(vals_, [](const Val &v) { return !v.live; });
  return verdict;
}

void Node::deliver(const ReceivedMessage &m) {
  Delivery d;
  d.topic = m.message.topic;
  if (m.message.data) d.data = *m.message.data;
  d.from = m.message.from;
  d.seqno = m.message.seqno;
  d.id = m.id;
  d.received_from = m.received_from;
  d.local = m.local;
  deliveries_.push_back(std::move(d));
  schedule_drain();
}

bool Node::sign(BytesView data, uint8_t signature[64]) {
  return p2p_.table()->sign(p2p_.self(), data.data(), data.size(), signature) == CHORUS_OK;
}

void Node::connect_to(const std::vector<PeerInfo> &peers) {
  auto *t = p2p_.table();
  for (const auto &info : peers) {
    auto id = PeerId::from_bytes(info.peer_id, nullptr);
    if (!id || *id == self_ || t->is_connected(p2p_.self(), id->bytes().data(), id->bytes().size()) != 0) continue;
    // A signed peer record, when the PRUNE carries one, gives the peer's own addresses (vouched for
    // by its signature); without one only peers the address book already holds can be reached.
    if (info.signed_peer_record) learn_addresses(*id, *info.signed_peer_record);
    const std::string text = id->to_base58();
    t->connect(p2p_.self(), text.c_str(), text.size(), 0, [](void *, chorus_status, const char *, const chorus_error *) {},
               nullptr, nullptr);
  }
}

// Addresses learnt from peer exchange are kept for a while only: the record may be old.
constexpr uint64_t kPxAddressTtlMs = 10 * 60 * 1000;

void Node::learn_addresses(const PeerId &id, const Bytes &envelope) {
  std::string why;
  auto rec = p2p::open_peer_record(envelope, &why);
  if (!rec || rec->peer != id) {
    m_.rpcs_rejected.inc("bad_peer_record");
    host_.debug("gossip: PX peer record for " + id.to_base58() + " refused: " + (rec ? "names another peer" : why));
    return;
  }
  std::vector<std::string> texts;
  for (const auto &ma : rec->addrs)
    if (ma.tcp_target()) texts.push_back(ma.without_peer_id().to_string());
  if (texts.empty()) return;
  std::vector<const char *> ptrs;
  for (const auto &s : texts) ptrs.push_back(s.c_str());
  p2p_.table()->add_addrs(p2p_.self(), id.bytes().data(), id.bytes().size(), ptrs.data(), ptrs.size(), kPxAddressTtlMs, nullptr);
}

uint64_t Node::now_ms() { return host_.now_ms(); }

void Node::count(RouterEvent e, const std::string &topic, const char *reason) {
  const std::string &l = label(topic);
  switch (e) {
    case RouterEvent::kPublished: m_.published.inc(l); break;
    case RouterEvent::kDelivered: m_.delivered.inc(l); break;
    case RouterEvent::kDuplicate: m_.duplicate.inc(l); break;
    case RouterEvent::kRejected: m_.rejected.inc(l, reason != nullptr ? reason : ""); break;
    case RouterEvent::kIgnored:
      m_.ignored.inc(l, ignore_reason_ != nullptr ? ignore_reason_ : (reason != nullptr ? reason : ""));
      ignore_reason_ = nullptr;
      break;
    case RouterEvent::kIwantBroken: m_.ignored.inc(l, "iwant_broken"); break;
    case RouterEvent::kGraftBackoff: m_.rejected.inc(l, "graft_backoff"); break;
  }
}

// ---- delivery ----

void Node::drain_deliveries() {
  drain_posted_ = false;
  // Handlers may publish (appending here): take what is queued now, the rest runs next round.
  std::deque<Delivery> batch;
  batch.swap(deliveries_);
  for (const auto &d : batch) {
    if (d.local && d.topic == probe_topic_) {
      const std::string expected = "probe " + std::to_string(probe_nonce_);
      if (probe_outstanding_ && std::string_view(reinterpret_cast<const char *>(d.data.data()), d.data.size()) == expected) {
        probe_outstanding_ = false;
        probe_timeout_.cancel();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - probe_sent_).count();
        m_.probe_latency.observe(s);
        probe_ok_ = true;
        probe_note_ = "loopback probe delivered in " + std::to_string(static_cast<int>(s * 1e6)) + " us";
        report_health();
      }
      continue;
    }
    dispatch(d);
  }
}

void Node::dispatch(const Delivery &d) {
  std::lock_guard lk(subs_mu_);
  const size_t n = subs_.size();
  bool any = false;
  auto it = subs_.begin();
  for (size_t i = 0; i < n; ++i, ++it)
    if (it->live && it->topic == d.topic) any = true;
  if (!any) return;
  std::string type;
  if (auto e = parse_envelope(std::string_view(reinterpret_cast<const char *>(d.data.data()), d.data.size()), nullptr))
    type = e->type;
  static const std::string kNone;
  const std::string &from_text = d.from ? peer_text(*d.from) : kNone;
  const std::string &received_from = d.local ? self_text_ : peer_text(d.received_from.bytes());
  const chorus_pubsub_message msg =
      c_message(d.topic, d.data, d.from, from_text, d.seqno, d.id, received_from, d.local, type.c_str());
  ++subs_depth_;
  it = subs_.begin();
  for (size_t i = 0; i < n; ++i, ++it) {  // subscriptions added by a handler start with the next message
    if (!it->live || it->topic != d.topic) continue;
    try {
      it->fn(msg);
    } catch (const std::exception &e) {
      host_.warn(std::string("gossip: a message handler threw: ") + e.what());
    }
  }
  if (--subs_depth_ == 0) std::erase_if(subs_, [](const Sub &s) { return !s.live; });
}

}  // namespace chorus::gossip

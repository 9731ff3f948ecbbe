// The p2p side of the node: stream callbacks, peers, their streams, framing and the per-peer send
// queue (node_internal.hpp lists the parts of the node).
#include "node_internal.hpp"

#include "wire/varint.hpp"

namespace chorus::gossip {

// ---- send queue (gossip thread) ----

void Node::send(const PeerId &peer, Rpc rpc) {
  auto it = peers_.find(peer);
  if (it == peers_.end() || it->second->out_stream == 0) {
    m_.rpcs_dropped.inc("no_stream");
    return;
  }
  Peer &p = *it->second;
  Bytes frame;
  append_frame(frame, rpc);
  if (p.queued_bytes + frame.size() > s_.peer_queue_bytes) {
    m_.rpcs_dropped.inc("queue_full");
    return;
  }
  p.queued_bytes += frame.size();
  p.queue.push_back(std::move(frame));
  flush(p);
}

void Node::note_queue(Peer &p) {
  const bool open = p.out_stream != 0;
  const size_t high = s_.peer_queue_bytes / 2, low = s_.peer_queue_bytes / 4;
  const bool congested = open && (p.congested ? p.queued_bytes > low : p.queued_bytes >= high);
  if (open != p.counted_open) {
    open_peers_ += open ? 1 : -1;
    p.counted_open = open;
  }
  if (congested != p.congested) {
    congested_peers_ += congested ? 1 : -1;
    p.congested = congested;
  }
  set_all_congested(open_peers_ > 0 && congested_peers_ == open_peers_);
}

void Node::set_all_congested(bool v) {
  if (all_congested_.load(std::memory_order_relaxed) == v) return;
  {
    std::lock_guard lk(congestion_mu_);
    all_congested_.store(v, std::memory_order_relaxed);
  }
  if (!v) congestion_cv_.notify_all();
}

void Node::wait_while_congested() {
  if (!all_congested_.load(std::memory_order_relaxed) || s_.publish_wait_ms == 0) return;
  std::unique_lock lk(congestion_mu_);
  const bool resumed = congestion_cv_.wait_for(lk, std::chrono::milliseconds(s_.publish_wait_ms), [this] {
    return !all_congested_.load(std::memory_order_relaxed) || stopping_.load();
  });
  m_.publish_waits.inc(resumed ? "resumed" : "timeout");
}

void Node::flush(Peer &p) {
  auto *t = p2p_.table();
  while (!p.blocked && !p.queue.empty()) {
    const Bytes &f = p.queue.front();
    const chorus_status st = t->write(p2p_.self(), p.out_stream, f.data(), f.size());
    if (st == CHORUS_E_BUSY) {
      p.blocked = true;  // on_writable resumes
      break;
    }
    if (st != CHORUS_OK) m_.rpcs_dropped.inc("stream_error");
    p.queued_bytes -= f.size();
    p.queue.pop_front();
  }
  note_queue(p);
}

void Node::writable(uint64_t stream) {
  auto it = outbound_.find(stream);
  if (it == outbound_.end()) return;
  auto p = peers_.find(it->second);
  if (p == peers_.end() || p->second->out_stream != stream) return;
  p->second->blocked = false;
  flush(*p->second);
}


// ---- p2p callbacks (p2p thread): copy and post ----

void Node::on_p2p_event(void *arg, const chorus_p2p_event *ev) {
  auto *n = static_cast<Node *>(arg);
  if (ev == nullptr) return;
  auto id = peer_of(ev->peer, ev->peer_len);
  if (!id) return;
  switch (ev->type) {
    case CHORUS_P2P_EVENT_CONNECTED:
      n->post([n, id = *id, text = std::string(ev->peer_text != nullptr ? ev->peer_text : ""),
               addr = std::string(ev->addr != nullptr ? ev->addr : ""), out = ev->direction == CHORUS_P2P_DIR_OUTBOUND] {
        n->peer_connected(id, text, addr, out);
      });
      break;
    case CHORUS_P2P_EVENT_IDENTIFIED:
      n->post([n, id = *id, j = std::string(ev->identify_json != nullptr ? ev->identify_json : "{}")] {
        n->peer_identified(id, j);
      });
      break;
    case CHORUS_P2P_EVENT_DISCONNECTED:
      n->post([n, id = *id] { n->peer_disconnected(id); });
      break;
    default:
      break;
  }
}

void Node::fill_handler(chorus_p2p_stream_handler *h, StreamCtx *ctx) {
  h->arg = ctx;
  h->on_data = &Node::on_data;
  h->on_eof = nullptr;
  h->on_writable = &Node::on_writable;
  h->on_closed = &Node::on_closed;
}

chorus_status Node::on_accept(void *arg, const chorus_p2p_stream_info *info, chorus_p2p_stream_handler *h) {
  auto n = static_cast<std::weak_ptr<Node> *>(arg)->lock();
  if (!n || n->stopping_.load() || info == nullptr) return CHORUS_E_UNAVAILABLE;
  auto id = peer_of(info->peer, info->peer_len);
  if (!id) return CHORUS_E_INVALID_ARG;
  auto *ctx = new StreamCtx{n, *id, info->peer_text != nullptr ? info->peer_text : "", true};
  fill_handler(h, ctx);
  Node *raw = n.get();
  raw->post([raw, stream = info->stream, id = *id, text = ctx->peer_text, incoming = ctx->incoming,
             addr = std::string(info->remote_addr != nullptr ? info->remote_addr : "")] {
    raw->inbound_opened(stream, id, text, addr, incoming);
  });
  return CHORUS_OK;
}

void Node::on_open(void *arg, chorus_status st, const chorus_p2p_stream_info *info, const chorus_error *err) {
  auto *ctx = static_cast<StreamCtx *>(arg);
  auto n = ctx->node.lock();
  if (st != CHORUS_OK || info == nullptr) {
    if (n) {
      Node *raw = n.get();
      raw->post([raw, id = ctx->peer, why = std::string(err != nullptr ? err->message : chorus_status_name(st))] {
        raw->outbound_failed(id, why);
      });
    }
    delete ctx;  // the handler is never called after a failed open
    return;
  }
  if (!n) return;  // on_closed still follows and frees ctx
  Node *raw = n.get();
  raw->post([raw, id = ctx->peer, stream = info->stream, proto = std::string(info->protocol != nullptr ? info->protocol : "")] {
    raw->outbound_opened(id, stream, proto);
  });
}

void Node::on_data(void *arg, uint64_t stream, const uint8_t *data, size_t len) {
  auto *ctx = static_cast<StreamCtx *>(arg);
  if (!ctx->inbound) return;  // our streams are write-only; a peer writing back is ignored
  auto n = ctx->node.lock();
  if (!n) return;
  Node *raw = n.get();
  Incoming &q = *ctx->incoming;
  bool schedule = false, pause = false;
  {
    std::lock_guard lk(q.mu);
    q.bytes.insert(q.bytes.end(), data, data + len);
    q.size.fetch_add(len, std::memory_order_relaxed);
    schedule = !q.scheduled;
    q.scheduled = true;
    if (!q.overflow_paused && q.bytes.size() > kIncomingCap) pause = q.overflow_paused = true;
  }
  // The gossip thread can be busy for a while (a heal's backlog from every peer at once), and the
  // yamux window reopens as soon as this returns: stop reading here rather than pile bytes up. On
  // the network thread the pause takes effect before the next read.
  if (pause) raw->p2p_.table()->set_read_paused(raw->p2p_.self(), stream, 1);
  if (!schedule) return;
  raw->post([raw, stream, incoming = ctx->incoming] {
    Bytes bytes;
    bool overflow_paused = false;
    {
      std::lock_guard lk(incoming->mu);
      bytes.swap(incoming->bytes);
      incoming->scheduled = false;
      overflow_paused = std::exchange(incoming->overflow_paused, false);
    }
    raw->inbound_data(stream, std::move(bytes), overflow_paused);
  });
}

void Node::on_writable(void *arg, uint64_t stream) {
  auto n = static_cast<StreamCtx *>(arg)->node.lock();
  if (!n) return;
  Node *raw = n.get();
  raw->post([raw, stream] { raw->writable(stream); });
}

void Node::on_closed(void *arg, uint64_t stream, chorus_status, const char *) {
  std::unique_ptr<StreamCtx> ctx(static_cast<StreamCtx *>(arg));
  auto n = ctx->node.lock();
  if (!n) return;
  Node *raw = n.get();
  raw->post([raw, stream, inbound = ctx->inbound] { raw->stream_closed(stream, inbound); });
}

// ---- peers and streams (gossip thread) ----

void Node::peer_connected(const PeerId &id, std::string text, std::string addr, bool outbound) {
  if (id == self_) return;
  auto &slot = peers_[id];
  if (!slot) {
    slot = std::make_unique<Peer>();
    slot->outbound = outbound;
    slot->ip = ip_of(addr);
  }
  slot->text = std::move(text);
  slot->connected = true;
  maybe_open(id);
}

void Node::peer_identified(const PeerId &id, const std::string &identify_json) {
  if (id == self_) return;
  auto j = json::parse(identify_json, nullptr, false);
  bool pubsub = false;
  if (j.is_object() && j.contains("protocols") && j["protocols"].is_array())
    for (const auto &p : j["protocols"])
      if (p.is_string() && protocol_from(p.get<std::string>())) pubsub = true;
  if (!pubsub) return;
  auto &slot = peers_[id];
  if (!slot) {
    slot = std::make_unique<Peer>();
    slot->text = id.to_base58();
  }
  slot->connected = true;
  slot->speaks_pubsub = true;
  maybe_open(id);
}

void Node::peer_disconnected(const PeerId &id) {
  auto it = peers_.find(id);
  if (it == peers_.end()) return;
  Peer &p = *it->second;
  if (p.in_router) router_->remove_peer(id);
  if (p.out_stream != 0) outbound_.erase(p.out_stream);
  if (p.in_stream != 0) inbound_.erase(p.in_stream);
  p.out_stream = 0;
  note_queue(p);
  peers_.erase(it);
}

void Node::maybe_open(const PeerId &id) {
  if (stopping_.load()) return;
  auto it = peers_.find(id);
  if (it == peers_.end()) return;
  Peer &p = *it->second;
  if (p.out_stream != 0 || p.opening || p.open_failed) return;
  if (!p.speaks_pubsub && p.in_stream == 0) return;
  p.opening = true;
  auto *ctx = new StreamCtx{weak_from_this(), id, p.text, false};
  chorus_p2p_stream_handler h{};
  h.struct_size = sizeof h;
  fill_handler(&h, ctx);
  chorus::ErrorBuffer err;
  const chorus_status st = p2p_.table()->open_stream(p2p_.self(), id.bytes().data(), id.bytes().size(), kPubsubProtocols,
                                                     std::size(kPubsubProtocols), &h, 0, &Node::on_open, ctx, err.get());
  if (st != CHORUS_OK) {
    delete ctx;
    p.opening = false;
    host_.debug("gossip: cannot open a pubsub stream to " + p.text + ": " + std::string(err.text()));
  }
}

void Node::outbound_opened(const PeerId &id, uint64_t stream, std::string protocol) {
  auto it = peers_.find(id);
  const auto proto = protocol_from(protocol);
  if (it == peers_.end() || stopping_.load() || !proto) {  // gone meanwhile
    p2p_.table()->reset(p2p_.self(), stream);
    return;
  }
  Peer &p = *it->second;
  p.opening = false;
  p.out_stream = stream;
  note_queue(p);
  outbound_[stream] = id;
  p.in_router = true;
  if (host_.log_enabled(chorus::LogLevel::debug)) host_.debug("gossip: peer " + p.text + " speaks " + protocol);
  router_->add_peer(id, *proto, p.outbound, p.ip);
  // Frames that arrived before the router knew the peer.
  if (p.in_stream != 0) {
    const uint64_t stream = p.in_stream;
    parse_frames(stream);
    send_verify_batch();
    auto in = inbound_.find(stream);
    if (in != inbound_.end()) update_read_pause(stream, *in->second);
  }
}

void Node::outbound_failed(const PeerId &id, const std::string &why) {
  auto it = peers_.find(id);
  if (it == peers_.end()) return;
  it->second->opening = false;
  it->second->open_failed = true;
  host_.debug("gossip: no pubsub stream to " + it->second->text + ": " + why);
}

void Node::inbound_opened(uint64_t stream, const PeerId &id, std::string text, std::string addr,
                          std::shared_ptr<Incoming> incoming) {
  if (stopping_.load()) return;
  auto &slot = peers_[id];
  if (!slot) {
    slot = std::make_unique<Peer>();
    slot->text = std::move(text);
    slot->ip = ip_of(addr);
    slot->connected = true;
  }
  Peer &p = *slot;
  if (p.in_stream != 0 && p.in_stream != stream) {  // a newer stream replaces the old one
    inbound_.erase(p.in_stream);
    p2p_.table()->reset(p2p_.self(), p.in_stream);
  }
  p.in_stream = stream;
  p.open_failed = false;  // it speaks pubsub after all
  auto in = std::make_unique<Inbound>();
  in->peer = id;
  in->incoming = std::move(incoming);
  inbound_[stream] = std::move(in);
  maybe_open(id);
}

void Node::inbound_data(uint64_t stream, Bytes bytes, bool overflow_paused) {
  auto it = inbound_.find(stream);
  if (it == inbound_.end()) return;
  Inbound &in = *it->second;
  if (overflow_paused) in.paused = true;  // update_read_pause below resumes it when the backlog allows
  in.incoming->size.fetch_sub(bytes.size(), std::memory_order_relaxed);
  if (in.buf.empty()) in.buf = std::move(bytes);
  else in.buf.insert(in.buf.end(), bytes.begin(), bytes.end());
  parse_frames(stream);
  send_verify_batch();
  it = inbound_.find(stream);
  if (it != inbound_.end()) update_read_pause(stream, *it->second);
}

void Node::update_read_pause(uint64_t stream, Inbound &in) {
  auto peer = peers_.find(in.peer);
  const bool waiting = peer == peers_.end() || !peer->second->in_router;
  const size_t backlog = in.incoming->size.load(std::memory_order_relaxed) + verifying_bytes_;
  const bool held_full = waiting && in.buf.size() > s_.max_rpc_bytes();  // nothing parses until the peer is routed
  bool pause = in.paused;
  if (backlog > kBacklogHigh || held_full) pause = true;
  else if (backlog < kBacklogLow) pause = false;
  if (pause == in.paused) return;
  in.paused = pause;
  p2p_.table()->set_read_paused(p2p_.self(), stream, pause ? 1 : 0);
}

void Node::parse_frames(uint64_t stream) {
  auto it = inbound_.find(stream);
  if (it == inbound_.end()) return;
  Inbound &in = *it->second;
  auto peer = peers_.find(in.peer);
  if (peer == peers_.end()) return;
  if (!peer->second->in_router) return;  // held until our stream to the peer is open
  RpcLimits limits;
  limits.max_rpc_bytes = s_.max_rpc_bytes();
  limits.max_message_bytes = s_.max_message_bytes;
  limits.max_subscriptions = s_.max_topics;
  size_t off = 0;
  const PeerId from = in.peer;
  while (off < in.buf.size()) {
    uint64_t len = 0;
    size_t used = 0;
    const auto st = p2p::read_uvarint(BytesView(in.buf).subspan(off), len, used);
    if (st == p2p::VarintStatus::need_more) break;
    if (st == p2p::VarintStatus::invalid) return reject_stream(stream, "bad_frame", "invalid length prefix");
    if (len > limits.max_rpc_bytes)
      return reject_stream(stream, "too_large", "a frame of " + std::to_string(len) + " bytes");
    if (in.buf.size() - off - used < len) break;
    std::string why;
    auto rpc = decode_rpc(BytesView(in.buf).subspan(off + used, len), limits, &why);
    if (!rpc) return reject_stream(stream, "malformed", why);
    off += used + len;
    route_rpc(from, std::move(*rpc));
    // handle_rpc may have removed the peer or this stream (it never does today; stay safe).
    it = inbound_.find(stream);
    if (it == inbound_.end()) return;
  }
  Bytes &buf = it->second->buf;
  if (off == buf.size()) buf.clear();
  else if (off > 0) buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(off));
}


void Node::reject_stream(uint64_t stream, const char *reason, const std::string &why) {
  m_.rpcs_rejected.inc(reason);
  auto it = inbound_.find(stream);
  if (it == inbound_.end()) return;
  auto p = peers_.find(it->second->peer);
  if (p != peers_.end()) {
    host_.debug("gossip: reset the pubsub stream of " + p->second->text + ": " + why);
    if (p->second->in_stream == stream) p->second->in_stream = 0;
  }
  inbound_.erase(it);
  p2p_.table()->reset(p2p_.self(), stream);
}

void Node::stream_closed(uint64_t stream, bool inbound) {
  if (inbound) {
    auto it = inbound_.find(stream);
    if (it == inbound_.end()) return;
    auto p = peers_.find(it->second->peer);
    if (p != peers_.end() && p->second->in_stream == stream) p->second->in_stream = 0;
    inbound_.erase(it);
    return;
  }
  auto it = outbound_.find(stream);
  if (it == outbound_.end()) return;
  const PeerId id = it->second;
  outbound_.erase(it);
  auto p = peers_.find(id);
  if (p == peers_.end() || p->second->out_stream != stream) return;
  Peer &peer = *p->second;
  if (peer.in_router) router_->remove_peer(id);
  peer.in_router = false;
  peer.out_stream = 0;
  peer.queue.clear();
  peer.queued_bytes = 0;
  peer.blocked = false;
  note_queue(peer);
}

}  // namespace chorus::gossip

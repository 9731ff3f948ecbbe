// The server side of `<prefix>/kad/1.0.0`: length-prefixed requests in, replies out, several per
// stream and in order. A frame that is too large or does not decode resets the stream (counted in
// chorus_dht_frames_rejected_total). Writes to the store (PUT_VALUE, ADD_PROVIDER) run on the store
// thread; the stream's later requests wait for them, so replies keep their order.
#include <algorithm>

#include "node.hpp"
#include "node_internal.hpp"
#include "wire/varint.hpp"

namespace chorus::dht {

namespace {

// RFC 3339 UTC with milliseconds, for Record.timeReceived.
std::string rfc3339(int64_t ms) {
  const time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

}  // namespace

void Node::inbound_opened(uint64_t stream, const PeerId &peer) {
  if (stopping_.load()) return;
  auto in = std::make_unique<Inbound>();
  in->peer = peer;
  inbound_[stream] = std::move(in);
}

void Node::inbound_data(uint64_t stream, Bytes bytes) {
  auto it = inbound_.find(stream);
  if (it == inbound_.end()) return;
  Inbound &in = *it->second;
  if (in.buf.empty()) in.buf = std::move(bytes);
  else in.buf.insert(in.buf.end(), bytes.begin(), bytes.end());
  parse_requests(stream);
}

void Node::reject_stream(uint64_t stream, const char *reason, const std::string &why) {
  m_.frames_rejected.inc(reason);
  auto it = inbound_.find(stream);
  if (it == inbound_.end()) return;
  host_.debug("dht: reset the kad stream of " + it->second->peer.to_base58() + ": " + why);
  inbound_.erase(it);
  p2p_.table()->reset(p2p_.self(), stream);
}

void Node::parse_requests(uint64_t stream) {
  Limits limits;
  limits.max_value_bytes = s_.max_value_bytes;
  limits.max_message_bytes = s_.max_frame_bytes();
  for (;;) {
    auto it = inbound_.find(stream);
    if (it == inbound_.end()) return;
    Inbound &in = *it->second;
    if (in.busy) return;
    if (in.buf.empty()) {
      if (in.eof) p2p_.table()->close_write(p2p_.self(), stream);
      return;
    }
    uint64_t len = 0;
    size_t used = 0;
    const auto vs = p2p::read_uvarint(BytesView(in.buf), len, used);
    if (vs == p2p::VarintStatus::need_more) return;
    if (vs == p2p::VarintStatus::invalid) return reject_stream(stream, "bad_frame", "invalid length prefix");
    if (len > limits.max_message_bytes)
      return reject_stream(stream, "too_large", "a frame of " + std::to_string(len) + " bytes");
    if (in.buf.size() - used < len) return;
    std::string why;
    auto req = decode_message(BytesView(in.buf).subspan(used, len), limits, &why);
    in.buf.erase(in.buf.begin(), in.buf.begin() + static_cast<std::ptrdiff_t>(used + len));
    if (!req) return reject_stream(stream, "malformed", why);
    const PeerId from = in.peer;
    in.busy = true;
    const bool done_now = handle_request(from, std::move(*req), [this, stream](std::optional<Message> reply) {
      auto it = inbound_.find(stream);
      if (it == inbound_.end()) return;
      it->second->busy = false;
      if (reply) {
        const Bytes frame = encode_frame(*reply);
        if (p2p_.table()->write(p2p_.self(), stream, frame.data(), frame.size()) != CHORUS_OK) {
          inbound_.erase(it);
          p2p_.table()->reset(p2p_.self(), stream);
          return;
        }
      }
    });
    if (!done_now) return;  // the store thread resumes this stream
  }
}

void Node::resume_streams() {
  std::vector<uint64_t> ready;
  for (const auto &[stream, in] : inbound_)
    if (!in->busy) ready.push_back(stream);
  for (uint64_t stream : ready) parse_requests(stream);
}

std::vector<PeerEntry> Node::closer_entries(const KadId &target, const PeerId &exclude) {
  std::vector<PeerEntry> out;
  for (const auto &p : table_->closest(target, s_.k + 1)) {
    if (p == exclude || out.size() >= s_.k) continue;
    PeerEntry e;
    e.id = p.bytes();
    e.addrs = known_addrs(p);
    const bool connected = p2p_.table()->is_connected(p2p_.self(), p.bytes().data(), p.bytes().size()) != 0;
    e.connection = connected ? ConnectionType::kConnected : ConnectionType::kNotConnected;
    out.push_back(std::move(e));
  }
  return out;
}

bool Node::handle_request(const PeerId &from, Message req, std::function<void(std::optional<Message>)> reply) {
  const char *type = message_type_name(req.type);
  const int64_t now = now_ms();
  // A request is evidence the peer is alive. One not in the table may be a server whose identify
  // predates its kad handler (identify runs when the connection opens, plugins start after): ask it.
  if (table_->contains(from)) table_->mark_seen(from, now);
  else check_server(from);
  auto answer = [&](std::optional<Message> msg, const char *result) {
    m_.requests.inc(type, result);
    reply(std::move(msg));
    return true;
  };
  switch (req.type) {
    case MessageType::kPing: {
      Message r;
      r.type = MessageType::kPing;
      return answer(std::move(r), "ok");
    }
    case MessageType::kFindNode: {
      Message r;
      r.type = MessageType::kFindNode;
      r.key = req.key;
      r.closer_peers = closer_entries(KadId::of_key(req.key), from);
      return answer(std::move(r), "ok");
    }
    case MessageType::kGetValue: {
      if (req.key.empty()) return answer(std::nullopt, "invalid");
      Message r;
      r.type = MessageType::kGetValue;
      r.key = req.key;
      if (auto rec = store_->get_record(req.key, wall_ms())) {
        std::string why;
        if (validate_record(rec->key, rec->value, &why)) {
          Record out;
          out.key = rec->key;
          out.value = rec->value;
          out.time_received = rfc3339(rec->received_ms);
          r.record = std::move(out);
        }
      }
      r.closer_peers = closer_entries(KadId::of_key(req.key), from);
      return answer(std::move(r), r.record ? "found" : "not_found");
    }
    case MessageType::kGetProviders: {
      if (req.key.empty()) return answer(std::nullopt, "invalid");
      Message r;
      r.type = MessageType::kGetProviders;
      r.key = req.key;
      // Every provider, bounded by the frame: Limits.max_peers is what a peer's decoder accepts.
      const Limits limits;
      for (const auto &p : store_->providers(req.key, wall_ms(), limits.max_peers)) {
        PeerEntry e;
        e.id = p.provider;
        e.addrs = p.addrs;
        if (e.addrs.size() > limits.max_addrs_per_peer) e.addrs.resize(limits.max_addrs_per_peer);
        r.provider_peers.push_back(std::move(e));
      }
      r.closer_peers = closer_entries(KadId::of_key(req.key), from);
      return answer(std::move(r), r.provider_peers.empty() ? "not_found" : "found");
    }
    case MessageType::kPutValue: {
      std::string why;
      if (!req.record || req.record->key != req.key || req.key.empty()) return answer(std::nullopt, "invalid");
      if (req.record->value.size() > s_.max_value_bytes) return answer(std::nullopt, "too_large");
      if (!validate_record(req.key, req.record->value, &why)) {
        host_.debug("dht: refused a PUT_VALUE from " + from.to_base58() + ": " + why);
        return answer(std::nullopt, "invalid");
      }
      // Stored only when better than what we hold; the echo is sent either way (the value is valid).
      if (auto cur = store_->get_record(req.key, wall_ms()); cur && cur->value != req.record->value &&
                                                      validate_record(cur->key, cur->value, nullptr)) {
        if (select_record(req.key, {cur->value, req.record->value}) == 0) return answer(req, "stale");
      }
      StoredRecord rec;
      rec.key = req.key;
      rec.value = req.record->value;
      rec.received_ms = wall_ms();
      rec.local = false;
      m_.requests.inc(type, "stored");
      store_then([this, rec] { store_->put_record(rec); },
                 [this, req = std::move(req), reply = std::move(reply), stream_type = type](bool ok, const std::string &why) mutable {
                   if (!ok) host_.warn("dht: cannot store a record: " + why);
                   reply(ok ? std::optional<Message>(std::move(req)) : std::nullopt);
                   update_gauges();
                   resume_streams();  // the stream may have more requests queued behind this one
                 });
      return false;
    }
    case MessageType::kAddProvider: {
      if (req.key.empty()) return answer(std::nullopt, "invalid");
      std::vector<ProviderRecord> recs;
      for (const auto &p : req.provider_peers) {
        if (p.id != from.bytes()) continue;  // a peer announces only itself
        ProviderRecord rec;
        rec.key = req.key;
        rec.provider = p.id;
        rec.addrs = p.addrs;
        if (rec.addrs.empty()) rec.addrs = known_addrs(from);
        rec.received_ms = wall_ms();
        recs.push_back(std::move(rec));
        break;
      }
      if (recs.empty()) return answer(std::nullopt, "invalid");
      m_.requests.inc(type, "stored");
      auto refused = std::make_shared<bool>(false);
      store_then(
          [this, recs, refused] {
            for (const auto &r : recs)
              if (!store_->add_provider(r)) *refused = true;
          },
          [this, reply = std::move(reply), from, refused](bool ok, const std::string &why) mutable {
            if (!ok) host_.warn("dht: cannot store a provider record: " + why);
            if (*refused) host_.debug("dht: " + from.to_base58() + " provides too many keys; refused");
            reply(std::nullopt);
            update_gauges();
            resume_streams();
          });
      return false;
    }
  }
  return answer(std::nullopt, "unknown_type");
}

}  // namespace chorus::dht
